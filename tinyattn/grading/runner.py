"""Run the graded tests against ``exercises/`` or ``solutions/`` and print a score table.

Each chapter's graded test file runs in its own pytest process with a per-test timeout, so student code
that raises, returns the wrong shape or loops forever costs that test's points and never the grader.
"""
from __future__ import annotations

import hmac
import importlib
import json
import os
import secrets
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
    flags: tuple = ()  # what the grader noticed: "forbidden: ...", "denied: ...", "tampered: ..."

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


GRADER_NEEDS = {"pytest": "pytest>=8", "pytest_timeout": "pytest-timeout>=2.3"}


def missing_requirements() -> list[str]:
    """Packages the grader itself needs that this Python cannot import, as pip requirement strings.

    The graded tests run in ``sys.executable -m pytest -p tinyattn.grading.plugin --timeout=...``, so
    pytest and the pytest-timeout plugin must be importable here (they come with ``pip install -e '.[dev]'``).
    """
    missing = []
    for module, requirement in GRADER_NEEDS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(requirement)
    return missing


def environment_problem() -> str | None:
    """A message saying exactly what the grader lacks and how to install it, or None when all is there."""
    missing = missing_requirements()
    if not missing:
        return None
    quoted = " ".join(f"'{m}'" for m in missing)
    return (f"tinyattn grade: the grader needs {', '.join(m.split('>')[0] for m in missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed in this Python ({sys.executable}). "
            f"Install with:\n    {sys.executable} -m pip install {quoted}\n"
            f"(or `pip install -e '.[dev]'`, or rerun `python3 course.py` to rebuild .venv). "
            f"Nothing was graded: this is not a problem with your exercises.")


def _run_pytest(test_files: list[Path], options: list[str], timeout: float, repo: Path,
                n_runs: int = 1) -> tuple[list[dict], str]:
    """Run pytest on ``test_files`` in a fresh process; return the plugin's JSON records and the output tail."""
    with tempfile.TemporaryDirectory() as tmp:
        log, out = Path(tmp) / "grade.jsonl", Path(tmp) / "pytest.out"
        key = secrets.token_hex(32).encode()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TINYATTN_GRADE_")}
        rfd, wfd = os.pipe()                        # the key travels through a pipe only pytest inherits
        env.update(TINYATTN_GRADE_LOG=str(log), TINYATTN_GRADE_KEY_FD=str(rfd), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", *map(str, test_files), "-p", "tinyattn.grading.plugin",
               "-q", "--no-header", "-p", "no:cacheprovider", f"--timeout={timeout}",
               "--timeout-method=signal", "-o", "addopts=", *options]
        # the whole run gets a generous wall-clock cap too, in case a timeout cannot interrupt the code
        with open(out, "wb") as fh:
            try:
                proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, pass_fds=(rfd,))
                os.close(rfd)
                os.write(wfd, key + b"\n")
                os.close(wfd)
                try:
                    proc.wait(timeout=(timeout * 20 + 120) * n_runs)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            finally:
                for fd in (rfd, wfd):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
        records = verified_records(log.read_text(errors="replace"), key) if log.exists() else []
        tail = out.read_text(errors="replace")[-4000:] if out.exists() else ""
    return records, tail


def verified_records(text: str, key: bytes) -> list[dict]:
    """The log's records whose HMAC (keyed by this run's secret, which only the judge process read)
    checks out; anything else -- a line written by student code, a replayed or edited line -- is dropped."""
    from .plugin import sign
    records = []
    for line in text.splitlines():
        body, _, mac = line.rpartition("\t")
        if not body or not hmac.compare_digest(sign(key, body), mac.strip()):
            continue
        try:
            rec = json.loads(body)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("event") in ("collected", "result", "flags"):
            records.append(rec)
    return records


def _collection_error(output: str) -> str:
    """The most telling line of a pytest run that collected nothing (an ImportError, a usage error...)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for key in ("error:", "Error:", "ERROR", "Error"):
        hits = [ln for ln in lines if key in ln]
        if hits:
            return hits[-1].lstrip("E ").strip()[:300]
    return lines[-1][:300] if lines else "pytest printed nothing"


def _results(records: list[dict], chapter: str, label: str, output: str) -> list[Result]:
    collected = {r["nodeid"]: r["points"] for r in records if r["event"] == "collected"}
    results = {r["nodeid"]: r for r in records if r["event"] == "result"}
    flags: dict[str, list[str]] = {}
    for r in records:
        if r["event"] in ("result", "flags"):
            flags.setdefault(r["nodeid"], [])
            flags[r["nodeid"]] += [f for f in r.get("flags", []) if f not in flags[r["nodeid"]]]
    out = []
    for nodeid, pts in collected.items():
        r = results.get(nodeid, {"outcome": "crashed", "message": "the test process died or hung"})
        out.append(Result(chapter, nodeid.split("::", 1)[-1], pts, r["outcome"], r.get("message", ""),
                          tuple(flags.get(nodeid, ()))))
    if not collected:
        out.append(Result(chapter, f"{label} (collection)", 0.0, "error",
                          "graded tests not collected (not your code: the grader or its environment): "
                          f"{_collection_error(output)}"))
    return out


def protected_files(repo: Path, extra: tuple[Path, ...] = ()) -> dict[str, str]:
    """sha256 of every file the grade depends on (the grader, the library, the graded tests, the
    solutions): compared before and after each graded run, so a submission that edits any of them is
    caught even if it got past the worker's guard."""
    import hashlib
    out = {}
    for root in (repo / "tinyattn", repo / "tests" / "graded", repo / "solutions", *extra):
        if root.is_file():
            files = [root]
        else:
            files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for p in files:
            try:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError:
                out[str(p)] = "unreadable"
    return out


def run_file(test_file: Path, impl: str, impl_dir: Path | None, timeout: float, repo: Path,
             deny_read: list[Path] | None = None) -> list[Result]:
    """Run one graded test file in a fresh pytest process; a process that dies marks the rest 'crashed'.
    If any protected file (grader, library, graded tests, solutions) changed during the run, every test
    of the file scores 0 and carries a "tampered" flag."""
    options = [f"--impl={impl}"] + ([f"--impl-dir={impl_dir}"] if impl_dir is not None else [])
    if deny_read:
        options.append(f"--deny-read={os.pathsep.join(map(str, deny_read))}")
    tests_dir = test_file.resolve().parent
    before = protected_files(repo, (tests_dir,) if tests_dir != repo / "tests" / "graded" else ())
    records, output = _run_pytest([test_file], options, timeout, repo)
    results = _results(records, chapter_of(test_file), test_file.name, output)
    after = protected_files(repo, (tests_dir,) if tests_dir != repo / "tests" / "graded" else ())
    changed = sorted(set(before) ^ set(after) | {p for p in before if p in after and before[p] != after[p]})
    if changed:
        flag = f"tampered: {', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''} changed while grading"
        for r in results:
            r.outcome, r.message, r.flags = "failed", flag, (*r.flags, flag)
    return results


def run_many(test_files: list[Path], impl_dirs: list[Path], timeout: float, repo: Path) -> dict[str, list[Result]]:
    """Grade several implementation folders with ONE pytest process (``--impl-dirs``): folder name -> results.

    For the grader's own regression suite (many wrong answers per chapter); every test runs once per
    folder, so each folder's total is exactly what ``run_file`` would give it. Folder names must differ.
    """
    names = [Path(d).name for d in impl_dirs]
    if len(set(names)) != len(names):
        raise ValueError(f"run_many: folder names must be distinct, got {names}")
    records, output = _run_pytest(test_files, ["--impl=solutions",        # collect graded tests (conftest)
                                               f"--impl-dirs={os.pathsep.join(map(str, impl_dirs))}"],
                                  timeout, repo, n_runs=len(impl_dirs))
    chapter = chapter_of(test_files[0])
    by_dir: dict[str, list[dict]] = {str(d): [] for d in impl_dirs}
    owner = {r["nodeid"]: r.get("impl_dir") for r in records if r["event"] == "collected"}
    for r in records:
        folder = r.get("impl_dir") if r["event"] == "collected" else owner.get(r["nodeid"])
        if folder in by_dir:
            by_dir[folder].append(r)
    return {Path(d).name: _results(recs, chapter, ", ".join(f.name for f in test_files), output)
            for d, recs in by_dir.items()}


def format_table(results: list[Result], impl: str) -> str:
    width = max([len(r.test) for r in results] + [8])
    lines = [f"Grading {impl}/", f"{'chapter':<8} {'exercise test':<{width}} {'points':>9}  result",
             "-" * (width + 32)]
    for r in results:
        status = r.outcome.upper() if r.outcome != "passed" else "ok"
        note = f"  {_short(r.message)}" if r.message and r.outcome != "passed" else ""
        if r.flags:
            note += f"  [flagged: {_short('; '.join(r.flags), 120)}]"
        lines.append(f"{r.chapter:<8} {r.test:<{width}} {r.earned:>4g}/{r.points:<4g}  {status}{note}")
    lines.append("-" * (width + 32))
    for ch in sorted({r.chapter for r in results}):
        got = sum(r.earned for r in results if r.chapter == ch)
        tot = sum(r.points for r in results if r.chapter == ch)
        lines.append(f"{ch}: {got:g}/{tot:g}")
    earned, total = sum(r.earned for r in results), sum(r.points for r in results)
    lines.append(f"SCORE: {earned:g}/{total:g}")
    return "\n".join(lines)



def _short(message: str, width: int = 90) -> str:
    return message if len(message) <= width else message[: width - 3] + "..."


def format_details(results: list[Result]) -> str:
    """One paragraph per test that lost points: its full message (what differed, the seed), or ''."""
    lost = [r for r in results if (r.outcome != "passed" and r.points > 0 or r.outcome == "error")
            and not r.message.startswith("NotImplementedError")]           # untouched stubs: the table says it
    if not lost:
        return ""
    lines = ["Why points were lost (rerun one test with: python -m pytest tests/graded/test_chNN_*.py "
             "--impl exercises -k NAME):"]
    for r in lost:
        lines.append(f"- {r.chapter} {r.test} [{r.outcome.upper()}]: {r.message or '(no message)'}")
    return "\n".join(lines) + "\n"
