"""pytest plugin for graded tests, loaded by ``-p tinyattn.grading.plugin`` (pyproject's addopts and the
grader both pass it).

- options ``--impl exercises|solutions`` and ``--impl-dir DIR``;
- option ``--impl-dirs DIR1<os.pathsep>DIR2...`` (the grader's regression suite): every graded test runs once
  per folder, parametrized with the folder's name as id, so one process grades many implementations;
- the fixture ``impl``: ``impl("ch06_flash")`` -> a :class:`~tinyattn.grading.proxy.RemoteModule`: the
  module is imported in a separate worker process (:mod:`tinyattn.grading.worker`), never in this one;
  calling its functions sends the inputs there and brings plain data (arrays, numbers) back, which the
  graded test compares HERE, in a process that never ran student code (see docs/INSTRUCTORS.md);
- when ``$TINYATTN_GRADE_LOG`` names a file, each graded test's points and outcome as JSON lines, flushed
  as they happen; when ``$TINYATTN_GRADE_KEY_FD`` names an inherited pipe, the grader's secret is read
  from it and every line carries an HMAC, so nothing but this process can write a record the grader
  accepts (the worker never holds the pipe, the key, or the log's path).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinyattn grading")
    group.addoption("--impl", choices=["exercises", "solutions"], default=None,
                    help="run the graded tests against exercises/ or solutions/ (graded tests are "
                         "collected only with this option; the grader sets it)")
    group.addoption("--impl-dir", default=None,
                    help="load graded modules from this folder instead of exercises/ or solutions/")
    group.addoption("--deny-read", default=None,
                    help="folders (joined by os.pathsep) that student code may not read, besides solutions/ "
                         "(class grading passes the folder of all submissions)")
    group.addoption("--impl-dirs", default=None,
                    help="run every graded test once per folder (folders joined by os.pathsep); "
                         "used by the grader's regression suite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): points a graded test is worth")


def _impl_dirs(config: pytest.Config) -> list[str]:
    value = config.getoption("--impl-dirs")
    return [d for d in value.split(os.pathsep) if d] if value else []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    dirs = _impl_dirs(metafunc.config)
    if dirs and "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", dirs, indirect=True, ids=[Path(d).name for d in dirs])


_WORKER = None
_FLAGS: dict[str, list[str]] = {}


def _worker(config: pytest.Config):
    """The session's worker process (one per pytest process; restarted after a crash or timeout)."""
    global _WORKER
    if _WORKER is None:
        from .proxy import Worker
        timeout = getattr(config.option, "timeout", None)
        graded = {str(Path(d).resolve()) for d in _impl_dirs(config)}
        if not graded:
            folder = config.getoption("--impl-dir")
            graded.add(str(Path(folder).resolve() if folder else REPO / (config.getoption("--impl") or "solutions")))
        deny = [str(REPO / "solutions"), str(REPO / "tests" / "wrong_answers")]
        deny += [d for d in (config.getoption("--deny-read") or "").split(os.pathsep) if d]
        deny = [d for d in deny if str(Path(d).resolve()) not in graded]   # never the folder being graded
        _WORKER = Worker(call_timeout=float(timeout) if timeout else 600.0, settings={"deny_read": deny})
    return _WORKER


def guarded_script(script: str, tmp: str, allow: tuple[str, ...] = ()) -> str:
    """``script`` preceded by the worker's guard (same denied folders as this session's worker), for a
    graded test that must run student code in a helper process of its own (ch07's real-GPU typing)."""
    from .guard import prelude
    deny = _WORKER.settings.get("deny_read", []) if _WORKER is not None else [str(REPO / "solutions")]
    return prelude(tmp, deny, allow) + script


def pytest_unconfigure(config: pytest.Config) -> None:
    global _WORKER
    if _WORKER is not None:
        _WORKER.close()
        _WORKER = None


@pytest.fixture
def impl(request: pytest.FixtureRequest):
    """``impl("chNN_topic")`` -> the module under test, as a proxy to a worker process (solutions/ unless
    --impl/--impl-dir say otherwise)."""
    from .proxy import RemoteModule
    if hasattr(request, "param"):                       # --impl-dirs: this run's folder
        folder = Path(request.param)
    else:
        folder = request.config.getoption("--impl-dir")
        folder = Path(folder) if folder else REPO / (request.config.getoption("--impl") or "solutions")
    worker = _worker(request.config)
    folder = str(folder.resolve())
    worker.flags = []
    yield lambda name: RemoteModule(worker, folder, name)
    flags = worker.reset()
    if flags:
        _FLAGS[request.node.nodeid] = flags


def _read_key() -> bytes | None:
    fd = os.environ.get("TINYATTN_GRADE_KEY_FD")
    if not fd:
        return None
    try:
        with os.fdopen(int(fd), "rb") as fh:
            return fh.read(256).strip() or None
    except (OSError, ValueError):
        return None


_KEY = _read_key()                  # read once, at import (before any test), then the pipe is closed


def sign(key: bytes, line: str) -> str:
    return hmac.new(key, line.encode(), hashlib.sha256).hexdigest()


def _write(record: dict) -> None:
    path = os.environ.get("TINYATTN_GRADE_LOG")
    if path:
        line = json.dumps(record)
        if _KEY is not None:
            line = f"{line}\t{sign(_KEY, line)}"
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def points_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("points")
    return float(marker.args[0]) if marker and marker.args else 1.0


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        record = {"event": "collected", "nodeid": item.nodeid, "points": points_of(item)}
        if callspec is not None and "impl" in callspec.params:
            record["impl_dir"] = callspec.params["impl"]
        _write(record)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    failed = report.failed
    if report.when == "call" or failed or (report.when == "setup" and report.skipped):
        text = str(report.longrepr) if report.longrepr else ""
        outcome = "passed" if report.passed else "skipped" if report.skipped else "failed"
        if failed and ("Timeout" in text or "WorkerTimeout" in text):
            outcome = "timeout"
        elif failed and "WorkerCrashed" in _message(report, text):
            outcome = "crashed"
        elif failed and report.when != "call":
            outcome = "error"
        _write({"event": "result", "nodeid": report.nodeid, "outcome": outcome,
                "message": _message(report, text), "flags": _FLAGS.get(report.nodeid, [])})
    elif report.when == "teardown" and _FLAGS.get(report.nodeid):
        _write({"event": "flags", "nodeid": report.nodeid, "flags": _FLAGS[report.nodeid]})


def _message(report: pytest.TestReport, text: str) -> str:
    """The failure's own message (e.g. ``AssertionError: attention(...) (seed 1101): 3 of 24 elements
    differ ...``), whole, so the student learns what differed; else the last ``E`` line of the report."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", ""):
        return " ".join(crash.message.replace("tinyattn.grading.proxy.", "").split())[:600]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("E "):
            return ln[1:].strip()[:600]
    return lines[-1][:600] if lines else ""
