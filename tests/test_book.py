"""The static HTML edition (tools/book.py) built from the stored notebooks and opened in a real headless
browser: every chapter page loads without console errors or requests to other hosts, shows its
figures, renders its math (no raw `$$`), and the contents links work. Screenshots of two pages are
written to build/screenshots/ for review.

Needs Chromium from the system packages (`course.py test` installs Debian's `chromium` when it runs
as root with apt); without it the test is skipped locally and fails in CI.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import book  # noqa: E402
from _browser import launch  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    index = book.build(out)
    assert index.exists()
    return out


@pytest.fixture(scope="module")
def browser():
    yield from launch("the book")


def test_book_has_every_chapter_and_the_exercises_page(site):
    pages = {p.name for p in site.glob("*.html")}
    for num, nb, _ in book.chapters():
        assert f"{nb.stem}.html" in pages, f"chapter {num} missing from the book"
    assert "exercises.html" in pages
    # offline: nothing in the site refers to another host for scripts, styles or math
    for page in site.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        for bad in ("cdn.jsdelivr", "cdnjs", "unpkg.com", "googleapis"):
            assert bad not in html, f"{page.name} loads from {bad}"


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, remote = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
    page.goto(url)
    page.wait_for_load_state("load")
    if page.evaluate("() => !!(window.MathJax && MathJax.startup && MathJax.startup.promise)"):
        page.evaluate("() => MathJax.startup.promise")
    return page, errors, remote


def test_every_chapter_page_in_a_browser(site, browser):
    shots = ROOT / "build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for num, nb, title in book.chapters():
        page, errors, remote = _open(browser, (site / f"{nb.stem}.html").as_uri())
        assert errors == [], f"{nb.stem}: console errors {errors[:3]}"
        assert remote == [], f"{nb.stem}: requests to other hosts {remote[:3]}"
        widths = page.eval_on_selector_all("article img", "els => els.map(e => e.naturalWidth)")
        assert widths and min(widths) > 0, f"{nb.stem}: {len(widths)} figures, some not loaded: {widths}"
        text = page.inner_text("article")
        assert "$$" not in text, f"{nb.stem}: raw $$ left in the page"
        n_math = page.eval_on_selector_all(".math", "e => e.length")
        n_rendered = page.eval_on_selector_all("mjx-container", "e => e.length")
        assert n_rendered >= n_math, f"{nb.stem}: {n_math} math spans but {n_rendered} rendered by MathJax"
        assert page.inner_text("h1").strip(), f"{nb.stem}: no title"
        if num in ("01", "06"):
            page.screenshot(path=str(shots / f"book_{nb.stem}.png"))
        page.close()


def test_contents_links_work(site, browser):
    page, errors, _ = _open(browser, (site / "index.html").as_uri())
    hrefs = page.eval_on_selector_all("article a.reference.internal", "els => els.map(e => e.href)")
    pages = [h for h in hrefs if h.endswith(".html")]
    assert len(pages) >= len(book.chapters()), f"contents page links only {pages}"
    page.screenshot(path=str(ROOT / "build" / "screenshots" / "book_index.png"))
    for href in pages:
        p2, errs, _ = _open(browser, href)
        assert p2.inner_text("h1").strip() and errs == [], f"{href}: no title or errors {errs[:2]}"
        p2.close()
    downloads = [h for h in hrefs if "/_downloads/" in h]
    assert downloads and all(Path(h.removeprefix("file://")).exists() for h in downloads)
    assert errors == []
