"""Grade a whole class: ``tinyattn grade --submissions DIR [--csv scores.csv] [--json scores.json]``.

``DIR`` holds one folder per student, each either a copy of ``exercises/`` (``chNN_topic.py`` files at
its top) or a checkout of the course (with an ``exercises/`` folder inside). Every submission is
copied into a fresh private folder and graded there, chapter by chapter, in its own pytest
processes with the usual per-test timeout, so nothing one submission does (raise, loop, exit, write
files next to itself) reaches another. The result is a per-student, per-exercise table:

- CSV (one row per student): ``student, earned, total, <chapter>::<test>...`` with the points earned;
- JSON: every test's points, outcome and message per student, plus the totals.
"""
from __future__ import annotations

import csv
import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

from .runner import Result, run_file


def submission_folder(student: Path) -> Path:
    """The folder holding the student's ``chNN_*.py``: ``student/exercises`` if present, else ``student``."""
    inner = student / "exercises"
    return inner if inner.is_dir() else student


def find_submissions(root: Path) -> list[Path]:
    """Student folders under ``root`` (hidden folders skipped), sorted by name."""
    if not root.is_dir():
        raise ValueError(f"--submissions: {root} is not a folder")
    students = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise ValueError(f"--submissions: no student folders in {root}")
    return students


def grade_class(root: Path, files: list[Path], repo: Path, timeout: float,
                progress: Callable[[Iterable], Iterable] = lambda x: x) -> dict[str, list[Result]]:
    """Grade every submission under ``root`` against the graded test ``files``; {student: results}."""
    scores: dict[str, list[Result]] = {}
    for student in progress(find_submissions(root)):
        with tempfile.TemporaryDirectory(prefix="tinyattn-grade-") as tmp:
            private = Path(tmp) / "submission"
            # copy only the Python files: a submission cannot leave state behind for the next one
            shutil.copytree(submission_folder(student), private,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
            results: list[Result] = []
            for f in files:     # student code may not read the other submissions (nor solutions/)
                results += run_file(f, "exercises", private, timeout, repo, deny_read=[root])
        scores[student.name] = results
    return scores


def write_reports(scores: dict[str, list[Result]], csv_path: Path | None, json_path: Path | None) -> None:
    tests = sorted({f"{r.chapter}::{r.test}" for rs in scores.values() for r in rs})
    if csv_path is not None:
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["student", "earned", "total", *tests, "flags"])
            for student, rs in scores.items():
                by_test = {f"{r.chapter}::{r.test}": r.earned for r in rs}
                w.writerow([student, f"{sum(r.earned for r in rs):g}", f"{sum(r.points for r in rs):g}",
                            *[f"{by_test[t]:g}" if t in by_test else "" for t in tests], format_flags(rs)])
    if json_path is not None:
        doc = {student: {"earned": sum(r.earned for r in rs), "total": sum(r.points for r in rs),
                         "flags": sorted({f for r in rs for f in r.flags}),
                         "tests": [asdict(r) | {"earned": r.earned, "flags": list(r.flags)} for r in rs]}
               for student, rs in scores.items()}
        json_path.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def format_flags(results: list[Result]) -> str:
    """Every flag of a student's run, once, with the tests that raised it: what an instructor must look at
    ("forbidden: softmax called tinyattn.functional.activations.softmax", "denied: open ... for writing")."""
    seen: dict[str, list[str]] = {}
    for r in results:
        for f in r.flags:
            seen.setdefault(f, []).append(f"{r.chapter}::{r.test}")
    return "; ".join(f"{f} ({len(t)} test{'s' if len(t) > 1 else ''})" for f, t in seen.items())


def format_class_table(scores: dict[str, list[Result]]) -> str:
    chapters = sorted({r.chapter for rs in scores.values() for r in rs})
    width = max([len(s) for s in scores] + [7])
    head = f"{'student':<{width}} " + " ".join(f"{c:>9}" for c in chapters) + f" {'total':>11}"
    lines = [head, "-" * len(head)]
    for student, rs in scores.items():
        cells = []
        for c in chapters:
            got = sum(r.earned for r in rs if r.chapter == c)
            tot = sum(r.points for r in rs if r.chapter == c)
            cells.append(f"{got:g}/{tot:g}".rjust(9))
        lines.append(f"{student:<{width}} " + " ".join(cells)
                     + f" {sum(r.earned for r in rs):g}/{sum(r.points for r in rs):g}".rjust(12)
                     + ("  FLAGGED" if any(r.flags for r in rs) else ""))
    return "\n".join(lines)
