"""Lecture mode: every notebook's reveal.js slide metadata makes a sensible lecture, the stored notebooks
carry the same metadata as their sources, resync carries metadata without touching outputs, and the
offline slide export (tools/slides.py, `course.py slides`) opens in headless Chromium with no request to
another host.

The conventions checked here are the ones CONTRIBUTING.md states ("Lecture mode"); a new cell needs a
slide type in its header (`python tools/slides.py suggest NN` proposes one, then `tools/resync.py NN`).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import slides  # noqa: E402
from nbtools import resync  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}
MAX_LINES = 40          # what one slide may hold (a slide and its fragments / "-" cells)
FIGURE = 12             # a stored figure counts as this many lines
LONG_CODE = 25          # a longer code cell starts its own slide or subslide


def _kind(cell) -> str | None:
    return cell.metadata.get("slideshow", {}).get("slide_type")


def _headings(source: str) -> list[tuple[int, int]]:
    """(line index, level) of every markdown heading line outside code fences."""
    out, fence = [], False
    for i, line in enumerate(source.splitlines()):
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"^(#{1,6}) \S", line)):
            out.append((i, len(m.group(1))))
    return out


def _first_content_line(source: str) -> int:
    for i, line in enumerate(source.splitlines()):
        if line.strip() and not re.fullmatch(r'\s*<a id="[^"]*"></a>\s*', line):
            return i
    return -1


def _lines(cell) -> int:
    """Lines a cell fills on a slide: source, printed output (a rendered table: one line per row), figures."""
    n = len(cell.source.strip("\n").splitlines())
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        if "image/png" in data:
            n += FIGURE
        elif o.get("output_type") == "stream":
            n += o["text"].count("\n")
        elif "text/markdown" in data:
            n += data["text/markdown"].count("\n") + 1
        elif "text/html" in data:
            n += data["text/html"].count("<tr") + 1
        elif "text/plain" in data:
            n += data["text/plain"].count("\n") + 1
    return n


def _load(path: Path):
    nb = nbformat.read(str(path), as_version=4)
    return [c for c in nb.cells if c.source.strip()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_slide_types_equal_the_source(path):
    import jupytext

    src = ROOT / "notebooks" / "src" / f"{path.stem}.py"
    want = [_kind(c) for c in jupytext.read(str(src), fmt="py:percent").cells if c.source.strip()]
    assert [_kind(c) for c in _load(path)] == want, \
        f"{path.name}: slide types differ from {src.name}; run `python tools/resync.py {path.name[:2]}`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_a_slide_type_and_the_deck_opens_with_the_title(path):
    cells = _load(path)
    missing = [i for i, c in enumerate(cells) if _kind(c) not in TYPES]
    assert not missing, (f"{path.name}: cells {missing} have no valid slide type "
                         f"(run `python tools/slides.py suggest {path.name[:2]}`, review, then resync)")
    assert _kind(cells[0]) == "slide" and cells[0].cell_type == "markdown", "the first cell is the title slide"
    assert _headings(cells[0].source)[0][1] == 1, "the first cell starts with the chapter's # title"
    assert sum(_kind(c) == "fragment" for c in cells) >= 1, "a lecture reveals some steps (fragments)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_section_starts_a_slide(path):
    cells = _load(path)
    n_sections = 0
    for i, c in enumerate(cells):
        if c.cell_type != "markdown":
            continue
        for line_i, level in _headings(c.source):
            if level == 1 and i == 0:
                continue
            where = f"{path.name} cell {i}, heading {c.source.splitlines()[line_i]!r}"
            assert line_i == _first_content_line(c.source), f"{where}: a heading starts its own cell"
            if level <= 2:
                n_sections += 1
                assert _kind(c) == "slide", f"{where}: a ## section starts a slide, got {_kind(c)!r}"
            elif level == 3:
                assert _kind(c) in ("slide", "subslide"), f"{where}: a ### subsection starts a (sub)slide"
    n_slides = sum(_kind(c) == "slide" for c in cells)
    assert n_sections >= 2 and n_slides >= n_sections + 1, (path.name, n_sections, n_slides)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_is_skipped_and_no_slide_is_crammed(path):
    cells = _load(path)
    code = [c for c in cells if c.cell_type == "code"]
    assert _kind(code[0]) == "skip", f"{path.name}: the setup cell (imports, %config) is skipped"
    for c in code:
        body = [ln for ln in c.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if body and all(re.match(r"(import |from \S+ import |%config )", ln) for ln in body):
            assert _kind(c) == "skip", f"{path.name}: an imports-only cell is shown: {c.source[:60]!r}"
        if len(c.source.splitlines()) > LONG_CODE:
            assert _kind(c) in ("slide", "subslide", "skip"), \
                f"{path.name}: a {len(c.source.splitlines())}-line code cell shares a slide: {c.source[:60]!r}"
    groups, current = [], None
    for i, c in enumerate(cells):
        k = _kind(c)
        if k in ("slide", "subslide"):
            current = [i]
            groups.append(current)
        elif k in ("fragment", "-") and current is not None:
            current.append(i)
    for g in groups:
        total = sum(_lines(cells[i]) for i in g)
        assert len(g) == 1 or total <= MAX_LINES, (
            f"{path.name}: the slide at cell {g[0]} holds {total} lines in cells {g} (at most {MAX_LINES}); "
            f"make a later cell a subslide")


def test_resync_carries_slide_types_and_keeps_outputs(tmp_path):
    src = tmp_path / "99_demo.py"
    src.write_text('# %% [markdown] slideshow={"slide_type": "slide"}\n# # Demo\n\n'
                   '# %% slideshow={"slide_type": "skip"}\nx = 1\n\n# %%\nprint(x)\n', encoding="utf-8")
    stored = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Demo"),
                                             nbformat.v4.new_code_cell("x = 1"),
                                             nbformat.v4.new_code_cell("print(x)")])
    stored.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    stored.cells[2].execution_count = 2
    src.write_text(src.read_text().replace("# %%\nprint", '# %% slideshow={"slide_type": "fragment"}\nprint'))
    new = resync(src, stored)
    assert [_kind(c) for c in new.cells] == ["slide", "skip", "fragment"]
    assert new.cells[2].outputs[0]["text"] == "1\n" and new.cells[2].execution_count == 2


def test_suggest_moves_inner_headings_to_their_own_cell():
    text = "# %% [markdown]\n# text\n#\n# ## 2. Next\n# more\n\n# %%\nx = 1\n"
    assert slides.split_headings(text) == "# %% [markdown]\n# text\n\n# %% [markdown]\n# ## 2. Next\n# more\n\n# %%\nx = 1\n"
    fenced = "# %% [markdown]\n# text\n# ```\n# ## not a heading\n# ```\n"
    assert slides.split_headings(fenced) == fenced


# ---------------------------------------------------------------- the offline export, in a browser
EXPORTED = ["01", "09"]


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    """The documented command, `python3 course.py slides NN ...`, into a temporary folder."""
    import os
    import subprocess

    out = tmp_path_factory.mktemp("slides")
    res = subprocess.run([sys.executable, str(ROOT / "course.py"), "slides", *EXPORTED, "--out", str(out)],
                         env=dict(os.environ, TINYATTN_NO_VENV="1"), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return sorted(out.glob("*.slides.html"))


def test_exported_decks_load_only_local_files(decks):
    assert [p.name[:2] for p in decks] == EXPORTED
    for deck in decks:
        html = deck.read_text(encoding="utf-8")
        refs = re.findall(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="([^"]+)"', html)
        assert any(r.endswith("reveal.js/dist/reveal.js") for r in refs), refs
        assert any(r.endswith("mathjax/tex-chtml.js") for r in refs), refs
        for ref in refs:
            if ref.startswith("data:"):
                continue
            assert not re.match(r"[a-z]+://|//", ref), f"{deck.name} loads {ref} from another host"
            assert (deck.parent / ref).exists(), f"{deck.name} refers to {ref}, missing beside it"
        assert "import mermaid" not in html and "require.js" not in html


@pytest.fixture(scope="module")
def chromium():
    from _browser import launch
    yield from launch("the slides")


def test_exported_decks_run_in_a_browser(decks, chromium):
    for deck in decks:
        cells = _load(next((ROOT / "notebooks").glob(f"{deck.name[:2]}_*.ipynb")))
        count = {k: sum(_kind(c) == k for c in cells) for k in TYPES}
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        errors, remote = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(deck.as_uri())
        page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=20000)
        page.evaluate("() => MathJax.startup.promise")
        # the deck has the structure the metadata asks for: one stack per slide, one page per (sub)slide
        assert page.evaluate("Reveal.getHorizontalSlides().length") == count["slide"], deck.name
        assert page.evaluate("Reveal.getTotalSlides()") == count["slide"] + count["subslide"], deck.name
        assert page.eval_on_selector_all(".fragment", "e => e.length") == count["fragment"], deck.name
        assert page.eval_on_selector_all("aside.notes", "e => e.length") == count["notes"], deck.name
        assert page.eval_on_selector_all("mjx-container", "e => e.length") >= 1, f"{deck.name}: math not typeset"
        assert page.eval_on_selector_all("mjx-merror", "e => e.length") == 0, f"{deck.name}: a MathJax error"
        prose = " ".join(page.eval_on_selector_all(".jp-MarkdownCell", "els => els.map(e => e.textContent)"))
        assert "$$" not in prose, f"{deck.name}: raw $$ left on a slide"
        widths = page.eval_on_selector_all(".jp-OutputArea-output img", "els => els.map(e => e.naturalWidth)")
        assert widths and min(widths) > 0, f"{deck.name}: figures not loaded {widths}"
        page.evaluate("Reveal.slide(Reveal.getHorizontalSlides().length - 1)")
        assert page.evaluate("Reveal.getIndices().h") == count["slide"] - 1, deck.name
        if deck.name.startswith("01"):
            shots = ROOT / "build" / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.evaluate("Reveal.slide(1, 0)")
            page.screenshot(path=str(shots / f"slides_{deck.stem}.png"))
        assert errors == [], f"{deck.name}: console errors {errors[:3]}"
        assert remote == [], f"{deck.name}: requests to other hosts {remote[:3]}"
        page.close()


def test_jupyterlab_presents_live_with_rise():
    """`course.py lab` can present a notebook as slides: jupyterlab-rise's extension is installed."""
    import os
    from importlib import metadata

    try:
        metadata.version("jupyterlab_rise")
    except metadata.PackageNotFoundError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("jupyterlab-rise (pyproject's dev extra) is not installed")
        pytest.skip("jupyterlab-rise not installed in this environment")
    ext = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "jupyterlab-rise" / "package.json"
    assert ext.exists(), f"jupyterlab-rise is installed but its lab extension is missing: {ext}"
