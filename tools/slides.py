"""Lecture mode: reveal.js slides from the stored, executed notebooks, served offline.

    python tools/slides.py export [NN ...] [--out build/slides]   (also: python3 course.py slides [NN ...])
    python tools/slides.py suggest NN [NN ...]                    fill in missing slide types of a source

``export`` runs ``jupyter nbconvert --to slides`` on notebooks/NN_*.ipynb (no re-execution) with the
template tools/nbconvert/reveal_offline and copies reveal.js (shipped by the ``sphinx-revealjs``
package) and MathJax 3 (shipped by ``sphinx-mathjax-offline``, as for the book) next to the decks:
open build/slides/NN_topic.slides.html straight from disk, no network needed. Speaker notes: press S.

``suggest`` applies the course's slide conventions (CONTRIBUTING.md, "Lecture mode") to the cells of
notebooks/src/NN_*.py whose header has no ``slideshow=`` yet, and moves a ``##``/``###`` heading that
sits inside a markdown cell to a cell of its own. Review the result: the rules are a first draft of a
lecture, not a substitute for one. Then ``python tools/resync.py NN`` carries the metadata into the
stored notebook without re-executing it.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "tools" / "nbconvert"
ANCHOR = re.compile(r"^\s*<a id=\"[^\"]*\"></a>\s*$")
HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?P<rest>.*)$")
SETUP = re.compile(r"^\s*(%config|%matplotlib|import |from \S+ import |setup_notebook\(|#|$)")
LONG_CODE = 25           # a code cell longer than this starts its own (sub)slide
SLIDE_BUDGET = 40        # lines a slide may hold (tests/test_slides.py): source and printed lines ...
FIGURE_LINES = 12        # ... plus this much per stored figure


# ---------------------------------------------------------------- conventions (shared with suggest)
def heading_level(source: str) -> int:
    """Markdown heading level of a cell's first line (HTML anchors skipped); 0 when it is not a heading."""
    for line in source.splitlines():
        if not line.strip() or ANCHOR.match(line):
            continue
        m = re.match(r"^(#{1,6}) ", line)
        return len(m.group(1)) if m else 0
    return 0


def is_setup(source: str) -> bool:
    """Setup code (imports, %config, setup_notebook()): skipped in a lecture."""
    lines = [ln for ln in source.splitlines() if ln.strip()]
    return bool(lines) and all(SETUP.match(ln) for ln in lines)


def size(cell) -> int:
    """Lines a cell takes on a slide: its source, its printed output (a rendered table: one line per
    row) and FIGURE_LINES per figure (tests/test_slides.py counts the same way)."""
    n = len(cell.source.strip("\n").splitlines())
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        if "image/png" in data or "image/svg+xml" in data:
            n += FIGURE_LINES
        elif o.get("output_type") == "stream":
            n += o.get("text", "").count("\n")
        elif "text/markdown" in data:
            n += data["text/markdown"].count("\n") + 1
        elif "text/html" in data:
            n += data["text/html"].count("<tr") + 1
        elif "text/plain" in data:
            n += data["text/plain"].count("\n") + 1
    return n


def prose_only(source: str) -> bool:
    """Plain paragraphs: no math, table, list, code, image or heading (better spoken than shown)."""
    return not re.search(r"\$|^\s*\||^\s*([-*]|\d+\.) |```|<img|^#", source, re.M)


# ---------------------------------------------------------------- suggest
def split_headings(text: str) -> str:
    """Give every ``##``/``###`` heading inside a markdown cell (after other content) a cell of its own."""
    out, in_md, content, fence = [], False, False, False
    for line in text.splitlines(keepends=True):
        if line.startswith("# %%"):
            in_md, content, fence = "[markdown]" in line, False, False
        elif in_md:
            body = line[2:] if line.startswith("# ") else line.lstrip("#")
            if body.startswith("```"):
                fence = not fence
            elif not fence and re.match(r"^#{2,3} ", body) and content:
                while out and out[-1].strip() in ("#", ""):
                    out.pop()
                out += ["\n", "# %% [markdown]\n"]
            content = content or bool(body.strip() and not ANCHOR.match(body))
        out.append(line)
    return "".join(out)


def choose(cells, fixed: list[str | None]) -> list[str]:
    """Slide types for ``cells`` (nbformat cells, outputs if known); ``fixed`` entries are kept."""
    kinds, used, prev_kind, prev_math, first_code = [], 0, None, False, True
    for i, c in enumerate(cells):
        level = heading_level(c.source) if c.cell_type == "markdown" else 0
        n_lines = len(c.source.strip("\n").splitlines())
        if fixed[i]:
            k = fixed[i]
        elif i == 0 or level in (1, 2):
            k = "slide"
        elif level == 3:
            k = "subslide"
        elif c.cell_type == "code" and (first_code or is_setup(c.source)):
            k = "skip"
        elif c.cell_type == "markdown" and prose_only(c.source) and n_lines >= 6:
            k = "notes"
        elif c.cell_type == "code" and n_lines > LONG_CODE:
            k = "subslide"
        elif used + size(c) > SLIDE_BUDGET:
            k = "subslide"
            lead = cells[i - 1]           # a prose lead-in moves to the new slide with its code
            if (c.cell_type == "code" and lead.cell_type == "markdown" and not fixed[i - 1]
                    and kinds[-1] in ("fragment", "-") and size(lead) + size(c) <= SLIDE_BUDGET):
                kinds[-1], k, used = "subslide", "-", size(lead)
        elif (c.cell_type == "code" and prev_math) or (c.cell_type == "markdown" and prev_kind == "code"):
            k = "fragment"           # formula, then the code computing it; a result, then its reading
        else:
            k = "-"
        if k in ("slide", "subslide"):
            used = 0
        if k not in ("skip", "notes"):
            used += size(c)
            prev_kind, prev_math = c.cell_type, c.cell_type == "markdown" and "$$" in c.source
        first_code = first_code and c.cell_type != "code"
        kinds.append(k)
    return kinds


def suggest(src: Path) -> int:
    """Split headings and fill in the missing slide types of one source; returns how many were set."""
    sys.path.insert(0, str(ROOT / "tools"))
    import nbformat
    from nbtools import percent_cells, slide_types

    text = split_headings(src.read_text(encoding="utf-8"))
    cells = percent_cells(text)
    stored = ROOT / "notebooks" / f"{src.stem}.ipynb"
    if stored.exists():         # outputs by code-cell order, for figure sizes
        old = [c for c in nbformat.read(str(stored), as_version=4).cells if c.cell_type == "code"]
        new = [c for c in cells if c.cell_type == "code"]
        if len(old) == len(new):
            for a, b in zip(old, new):
                b["outputs"] = a.get("outputs", [])
    fixed = slide_types(cells)
    kinds = choose(cells, fixed)
    lines = text.splitlines(keepends=True)
    headers = [j for j, ln in enumerate(lines) if ln.startswith("# %%")]
    bounds = headers + [len(lines)]
    nonempty = [h for n, h in enumerate(headers) if "".join(lines[h + 1:bounds[n + 1]]).strip()]
    assert len(nonempty) == len(cells), (src.name, len(nonempty), len(cells))
    changed = 0
    for j, kind, had in zip(nonempty, kinds, fixed):
        if had:
            continue
        m = HEADER.match(lines[j].rstrip("\n"))
        rest = m.group("rest")
        meta = ' slideshow={"slide_type": ' + json.dumps(kind) + "}"
        lines[j] = "# %%" + (m.group("md") or "") + meta + rest + "\n"      # before tags=: tools/ledger.py keeps it
        changed += 1
    src.write_text("".join(lines), encoding="utf-8")
    return changed


# ---------------------------------------------------------------- export
def _package_dir(module: str) -> Path:
    import importlib.util
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"slides: the package {module!r} is missing; run `python3 course.py setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def copy_assets(out: Path) -> None:
    """reveal.js (dist, white theme and its fonts, notes plugin) and MathJax 3 (CommonHTML) into ``out``."""
    reveal = _package_dir("sphinx_revealjs") / "_static" / "revealjs"
    dst = out / "reveal.js"
    for rel in ("dist/reveal.js", "dist/reveal.css", "dist/theme/white.css", "plugin/notes/notes.js", "LICENSE"):
        if (reveal / rel).exists():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(reveal / rel, dst / rel)
    shutil.copytree(reveal / "dist" / "theme" / "fonts", dst / "dist" / "theme" / "fonts", dirs_exist_ok=True)
    mathjax = _package_dir("sphinx-mathjax-offline") / "static" / "mathjax"
    skip = shutil.ignore_patterns("sre", "*svg*", "mml*", "node-main.js", "tex-mml-*", "*-full*.js", "asciimath*")
    shutil.copytree(mathjax, out / "mathjax", ignore=skip, dirs_exist_ok=True)


def export(names: list[str], out: Path) -> list[Path]:
    """Write out/NN_topic.slides.html for the chosen (default: every) stored notebook."""
    books = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if names:
        books = [b for b in books if any(b.name.startswith(n.zfill(2)) or b.stem == n for n in names)]
    if not books:
        raise SystemExit(f"slides: no notebook matches {names}")
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out)
    cmd = [sys.executable, "-m", "nbconvert", "--to", "slides", "--log-level", "WARN",
           f"--TemplateExporter.extra_template_basedirs={TEMPLATES}", "--template", "reveal_offline",
           "--SlidesExporter.reveal_url_prefix=reveal.js", "--SlidesExporter.reveal_theme=white",
           "--SlidesExporter.reveal_width=1280", "--SlidesExporter.reveal_height=900",
           "--HTMLExporter.mathjax_url=mathjax/tex-chtml.js", "--output-dir", str(out), *map(str, books)]
    subprocess.run(cmd, check=True)
    return [out / f"{b.stem}.slides.html" for b in books]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["export", "suggest"])
    ap.add_argument("names", nargs="*", help="chapter numbers (default: every chapter)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "slides")
    a = ap.parse_args(argv)
    if a.command == "suggest":
        for src in sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py")):
            if not a.names or any(src.name.startswith(n.zfill(2)) for n in a.names):
                print(f"{src.name}: {suggest(src)} slide type(s) set; review them, then tools/resync.py")
        return 0
    for path in export(a.names, a.out.resolve()):
        print(f"slides written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
