"""Command line: ``python -m tinyattn.grading [--impl exercises|solutions] [chNN ...]``.

Also ``--build-exercises`` (rewrite exercises/ from solutions/) and ``--check-exercises`` (exit 1 on drift).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import build, drift
from .runner import environment_problem, find_test_files, format_details, format_table, run_file


def repo_root() -> Path:
    """The checkout holding solutions/ and tests/graded/: the current directory or the package's parent."""
    for cand in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (cand / "tests" / "graded").is_dir() and (cand / "solutions").is_dir():
            return cand
    raise SystemExit("tinyattn grade: run it from the course checkout (no tests/graded/ and solutions/ found)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tinyattn grade", description=__doc__.splitlines()[0])
    p.add_argument("chapters", nargs="*", help="chapters to grade, e.g. ch06 or 6 (default: all)")
    p.add_argument("--impl", choices=["exercises", "solutions"], default="exercises",
                   help="grade the student stubs (default) or the reference solutions")
    p.add_argument("--impl-dir", type=Path, default=None, help="grade modules from this folder instead")
    p.add_argument("--tests", type=Path, default=None, help="graded tests folder (default tests/graded)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per graded test")
    p.add_argument("--submissions", type=Path, default=None,
                   help="grade a class: one folder per student (a copy of exercises/ or a course checkout)")
    p.add_argument("--csv", type=Path, default=None, help="with --submissions: write per-student scores here")
    p.add_argument("--json", type=Path, default=None, help="with --submissions: write every test's result here")
    p.add_argument("--build-exercises", action="store_true", help="regenerate exercises/ from solutions/")
    p.add_argument("--check-exercises", action="store_true", help="fail if exercises/ drifted from solutions/")
    args = p.parse_args(argv)
    repo = repo_root()
    if args.build_exercises:
        names = build(repo / "solutions", repo / "exercises")
        print(f"wrote {len(names)} exercise file(s) to exercises/: {', '.join(names)}")
        return 0
    if args.check_exercises:
        problems = drift(repo / "solutions", repo / "exercises")
        print("\n".join(problems) or "exercises/ matches solutions/")
        return 1 if problems else 0
    tests_dir = (args.tests or repo / "tests" / "graded").resolve()
    impl_dir = args.impl_dir.resolve() if args.impl_dir else None
    try:
        files = find_test_files(tests_dir, args.chapters)
    except ValueError as exc:
        print(f"tinyattn grade: {exc}", file=sys.stderr)
        return 2
    if not files:
        print(f"tinyattn grade: no graded tests found in {tests_dir}", file=sys.stderr)
        return 2
    problem = environment_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.submissions is not None:
        from .classroom import format_class_table, grade_class, write_reports
        try:
            scores = grade_class(args.submissions.resolve(), files, repo, args.timeout, _progress)
        except ValueError as exc:
            print(f"tinyattn grade: {exc}", file=sys.stderr)
            return 2
        print(format_class_table(scores))
        write_reports(scores, args.csv, args.json)
        return 0
    if args.csv or args.json:
        print("tinyattn grade: --csv/--json need --submissions DIR", file=sys.stderr)
        return 2
    results = []
    for f in _progress(files):
        results += run_file(f, args.impl, impl_dir, args.timeout, repo)
    details = format_details(results)
    if details:
        print(details)
    print(format_table(results, args.impl if impl_dir is None else str(impl_dir)))
    earned, total = sum(r.earned for r in results), sum(r.points for r in results)
    return 0 if total > 0 and earned == total else 1


def _progress(items):
    if sys.stderr.isatty():
        from tqdm import tqdm
        return tqdm(items, desc="grading", file=sys.stderr)
    return items


if __name__ == "__main__":
    sys.exit(main())
