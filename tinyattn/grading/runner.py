"""Run the graded tests against ``exercises/`` or ``solutions/`` and print a score table.

Each chapter's graded test file runs in its own pytest process with a per-test timeout, so student code
that raises, returns the wrong shape or loops forever costs that test's points and never the grader.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    chapter: str
    test: str
    points: float
    outcome: str       # passed | failed | error | timeout | skipped | crashed
    message: str = ""

    @property
    def earned(self) -> float:
        return self.points if self.outcome == "passed" else 0.0


def chapter_of(test_file: Path) -> str:
    """``test_ch06_flash.py`` -> ``ch06``."""
    return test_file.stem.split("_")[1]


def find_test_files(tests_dir: Path, chapters: list[str]) -> list[Path]:
    files = sorted(tests_dir.glob("test_ch*.py"))
    if chapters:
        wanted = {c if c.startswith("ch") else f"ch{int(c):02d}" for c in chapters}
        unknown = wanted - {chapter_of(f) for f in files}
        if unknown:
            raise ValueError(f"no graded tests for chapter(s) {sorted(unknown)} in {tests_dir}")
        files = [f for f in files if chapter_of(f) in wanted]
    return files


def run_file(test_file: Path, impl: str, impl_dir: Path | None, timeout: float, repo: Path) -> list[Result]:
    """Run one graded test file in a fresh pytest process; a process that dies marks the rest 'crashed'."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "grade.jsonl"
        env = dict(os.environ, TINYATTN_GRADE_LOG=str(log), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", str(test_file), f"--impl={impl}", "-p", "tinyattn.grading.plugin",
               "-q", "--no-header", "-p", "no:cacheprovider", f"--timeout={timeout}",
               "--timeout-method=signal", "-o", "addopts="]
        if impl_dir is not None:
            cmd.append(f"--impl-dir={impl_dir}")
        # the whole file gets a generous wall-clock cap too, in case a timeout cannot interrupt the code
        try:
            subprocess.run(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL, timeout=timeout * 20 + 120, check=False)
        except subprocess.TimeoutExpired:
            pass
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    chapter = chapter_of(test_file)
    collected = {r["nodeid"]: r["points"] for r in records if r["event"] == "collected"}
    results = {r["nodeid"]: r for r in records if r["event"] == "result"}
    out = []
    for nodeid, pts in collected.items():
        r = results.get(nodeid, {"outcome": "crashed", "message": "the test process died or hung"})
        out.append(Result(chapter, nodeid.split("::", 1)[-1], pts, r["outcome"], r.get("message", "")))
    if not collected:
        out.append(Result(chapter, f"{test_file.name} (collection)", 0.0, "error",
                          "no graded test could be collected: does the module import?"))
    return out


def format_table(results: list[Result], impl: str) -> str:
    width = max([len(r.test) for r in results] + [8])
    lines = [f"Grading {impl}/", f"{'chapter':<8} {'exercise test':<{width}} {'points':>9}  result",
             "-" * (width + 32)]
    for r in results:
        status = r.outcome.upper() if r.outcome != "passed" else "ok"
        note = f"  {r.message}" if r.message and r.outcome != "passed" else ""
        lines.append(f"{r.chapter:<8} {r.test:<{width}} {r.earned:>4g}/{r.points:<4g}  {status}{note}")
    lines.append("-" * (width + 32))
    for ch in sorted({r.chapter for r in results}):
        got = sum(r.earned for r in results if r.chapter == ch)
        tot = sum(r.points for r in results if r.chapter == ch)
        lines.append(f"{ch}: {got:g}/{tot:g}")
    earned, total = sum(r.earned for r in results), sum(r.points for r in results)
    lines.append(f"SCORE: {earned:g}/{total:g}")
    return "\n".join(lines)
