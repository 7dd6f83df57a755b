"""Build the static HTML edition of the course from the stored, executed notebooks.

    python tools/book.py [--out build/book]        (also: python3 course.py book)

Stages build/book_src/ (the notebooks, a contents page in course order, an exercises page, the
notebook sources and exercise files as downloads) with docs/conf.py, then runs Sphinx with myst-nb
without executing anything. Open build/book/index.html; it works offline (no CDN: MathJax and the
theme's assets are copied into the site).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def chapters() -> list[tuple[str, Path, str]]:
    """(number, notebook path, title) of every stored chapter notebook, in course order."""
    import nbformat
    out = []
    for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(str(p), as_version=4)
        first = next((c.source for c in nb.cells if c.cell_type == "markdown"), p.stem)
        m = re.search(r"^#\s+(.+)$", first, re.M)
        out.append((p.name[:2], p, m.group(1).strip() if m else p.stem))
    return out


def exercises() -> list[tuple[str, Path, list[str]]]:
    """(chapter, solutions file, ["Exercise NN.k  name  what", ...]) from each solution's docstring."""
    out = []
    for s in sorted((ROOT / "solutions").glob("ch[0-9][0-9]_*.py")):
        lines = [ln.strip() for ln in s.read_text(encoding="utf-8").splitlines() if ln.strip().startswith("Exercise ")]
        out.append((s.name[2:4], s, lines))
    return out


def stage(src: Path) -> None:
    if src.exists():
        shutil.rmtree(src)
    (src / "sources").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "conf.py", src / "conf.py")
    chs = chapters()
    for _, p, _ in chs:
        shutil.copy(p, src / p.name)
        nb_src = ROOT / "notebooks" / "src" / f"{p.stem}.py"
        if nb_src.exists():
            shutil.copy(nb_src, src / "sources" / nb_src.name)
    for _, s, _ in exercises():
        ex = ROOT / "exercises" / s.name
        if ex.exists():
            shutil.copy(ex, src / "sources" / ex.name)
    rows = []
    ex_by_ch = {c: s for c, s, _ in exercises()}
    for num, p, title in chs:
        links = [f"{{download}}`notebook source <sources/{p.stem}.py>`"]
        if num in ex_by_ch:
            links.append(f"{{download}}`exercises <sources/{ex_by_ch[num].name}>`")
        rows.append(f"| {num} | [{title}]({p.stem}.ipynb) | {' · '.join(links)} |")
    index = ["# tinyattn: every attention mechanism, from scratch", "",
             "A course in chapters: each one derives a mechanism, builds it in NumPy (`tinyattn/`), checks it "
             "with tests and measurements, and ends with a claims ledger and graded exercises. Read them in "
             "order; the pages show the outputs that CI re-executed.", "",
             "| # | chapter | files |", "|---|---|---|", *rows, "", "```{toctree}", ":hidden:", ":maxdepth: 1", "",
             *[p.stem for _, p, _ in chs], "exercises", "instructors", "```", ""]
    (src / "index.md").write_text("\n".join(index), encoding="utf-8")
    ex_lines = ["# Exercises and grading", "",
                "Each chapter has a file `exercises/chNN_topic.py` whose functions raise `NotImplementedError` "
                "until you write them. Check your work with", "", "```bash", "python3 course.py grade chNN",
                "```", "", "which prints a per-exercise table and a last line `SCORE: earned/total` (exit status 0 "
                "only at full marks). `python3 course.py grade` grades every chapter.", ""]
    for num, s, lines in exercises():
        ex_lines += [f"## Chapter {num}: `exercises/{s.name}`", "",
                     *[f"- {ln}" for ln in lines], "",
                     f"Grade: `python3 course.py grade ch{num}` · {{download}}`the stub file <sources/{s.name}>`", ""]
    (src / "exercises.md").write_text("\n".join(ex_lines), encoding="utf-8")
    (src / "instructors.md").write_text(INSTRUCTORS, encoding="utf-8")


INSTRUCTORS = """# For instructors: lecturing and grading

## Lecturing from the notebooks
Every chapter is a notebook in `notebooks/`, stored with the outputs CI re-executed (nbval), so what
you show is what a learner's laptop reproduces. `python3 course.py lab` opens JupyterLab on the
course; the sources in `notebooks/src/` are jupytext percent files and open as notebooks too.

Every notebook is also a slide deck: its cells carry reveal.js slide types chosen for a lecture (the
title slide, one slide per numbered section, subslides for subsections and long code, fragments that
reveal a formula before the code computing it or a result before its reading, setup cells skipped,
some commentary kept as speaker notes). Two ways to present:

- **Offline decks:** `python3 course.py slides` (or `slides 06` for one chapter) writes
  `build/slides/NN_topic.slides.html` from the stored notebooks, without re-executing anything.
  reveal.js and MathJax are copied next to the decks, so the folder works from a USB stick with no
  network. Keys: arrows or space to move, S for the speaker view with the notes, F for full screen,
  Esc for the overview.
- **Live, with running code:** open a notebook in `python3 course.py lab` and start RISE
  (jupyterlab-rise: "Render as Reveal Slideshow", or Alt-R for a preview). Cells stay editable and
  runnable during the talk.

To change a slide boundary, edit the cell's header in `notebooks/src/NN_topic.py`
(`# %% [markdown] slideshow={"slide_type": "subslide"}`) and run `python tools/resync.py NN`.

## Grading one checkout
`python3 course.py grade` (or `tinyattn grade` inside the environment) runs every chapter's graded
tests against `exercises/` and prints a per-exercise table ending in `SCORE: earned/total`; the exit
status is 0 only at full marks. `python3 course.py grade ch06` grades one chapter. Each chapter runs
in its own process with a per-test timeout (`--timeout`, 60 s by default): code that raises, returns
the wrong shape, loops forever or kills its process loses that test's points and never stops the grader.

## Grading a class
Put one folder per student in a directory, each a copy of `exercises/` or a checkout of the course,
then

```bash
python3 course.py grade --submissions class/ --csv scores.csv --json scores.json
```

Every submission is copied into a private temporary folder and graded there, chapter by chapter, so a
crash, an endless loop or stray files in one submission cannot touch another. The terminal shows a
student-by-chapter table; `scores.csv` has one row per student (earned, total and the points of every
graded test, as `chNN::test_name` columns) and `scores.json` every test's outcome and message.

## A grader students cannot game
Student code never runs in the process that judges it. The graded tests run in a "judge" pytest
process that never imports a submission; `impl("chNN_topic")` returns a proxy, and the student's
functions run in a separate worker process (inputs in, plain arrays and numbers out, read back with a
restricted unpickler, so a forged reply cannot run code in the judge). Every comparison happens in the
judge, so patching `numpy.testing`, pytest or the checking helpers at module level changes nothing that
is judged. The judge signs its result log with a key the worker never sees, so forged "passed" lines
are dropped; an early exit or a hang costs only the test that was running (the worker restarts).
Inside the worker an audit hook refuses reading `solutions/` or other students' folders, writing
outside the worker's temporary folder, starting processes, sending signals and sockets; a call to the
library's own implementation of the function an exercise asks for (e.g. `tinyattn.functional.softmax`
from the softmax exercise) fails that test. Each of these is flagged in the table, the CSV's `flags`
column and the JSON, and if the grader, library, graded tests or solutions change during a run, the
run scores 0. `docs/GRADING.md` describes the design and its limits: the worker is an ordinary process
of the same user, and the guard inside it is not a sandbox, so for a real class also run each
submission in its own container or VM (GitHub Classroom does: one runner per student repository).

## GitHub Classroom
`.github/workflows/classroom.yml` (written by `python tools/classroom.py`) grades a student repository
on every push: one autograding step per chapter, worth that chapter's graded points. GitHub's command
grader scores a step all or nothing, so a chapter counts when all its tests pass; the step's log shows
the per-test table.

## Changing an exercise
`solutions/chNN_topic.py` is the single source; `python3 course.py exercises` regenerates the stubs in
`exercises/`. CI checks that the solutions score full marks, that untouched stubs score zero and that a
collection of plausible wrong answers each loses points.
"""


def build(out: Path, quiet: bool = True) -> Path:
    src = ROOT / "build" / "book_src"
    stage(src)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-j", "2", str(src), str(out)]
    if quiet:
        cmd.insert(3, "-q")
    subprocess.run(cmd, check=True)
    return out / "index.html"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "book")
    a = ap.parse_args(argv)
    index = build(a.out.resolve())
    print(f"book written: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
