"""pytest plugin for graded tests, loaded by ``-p tinyattn.grading.plugin`` (pyproject's addopts and the
grader both pass it).

- options ``--impl exercises|solutions`` and ``--impl-dir DIR``;
- option ``--impl-dirs DIR1<os.pathsep>DIR2...`` (the grader's regression suite): every graded test runs once
  per folder, parametrized with the folder's name as id, so one process grades many implementations;
- the fixture ``impl``: ``impl("ch06_flash")`` imports the module under test from that folder;
- when ``$TINYATTN_GRADE_LOG`` names a file, each graded test's points and outcome as JSON lines, flushed
  as they happen, so if student code kills the whole process the grader still knows what ran.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinyattn grading")
    group.addoption("--impl", choices=["exercises", "solutions"], default=None,
                    help="run the graded tests against exercises/ or solutions/ (graded tests are "
                         "collected only with this option; the grader sets it)")
    group.addoption("--impl-dir", default=None,
                    help="load graded modules from this folder instead of exercises/ or solutions/")
    group.addoption("--impl-dirs", default=None,
                    help="run every graded test once per folder (folders joined by os.pathsep); "
                         "used by the grader's regression suite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): points a graded test is worth")


def load_module(folder: Path, name: str) -> ModuleType:
    """Import ``folder/name.py`` under a private module name (so exercises and solutions never mix)."""
    path = folder / f"{name}.py"
    if not path.exists():
        raise FileNotFoundError(f"graded module {name!r} not found: expected {path}")
    key = f"_graded_{folder.name}_{abs(hash(str(folder.resolve())))}_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    return module


def _impl_dirs(config: pytest.Config) -> list[str]:
    value = config.getoption("--impl-dirs")
    return [d for d in value.split(os.pathsep) if d] if value else []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    dirs = _impl_dirs(metafunc.config)
    if dirs and "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", dirs, indirect=True, ids=[Path(d).name for d in dirs])


@pytest.fixture
def impl(request: pytest.FixtureRequest) -> Callable[[str], ModuleType]:
    """``impl("chNN_topic")`` -> the module under test (solutions/ unless --impl/--impl-dir say otherwise)."""
    if hasattr(request, "param"):                       # --impl-dirs: this run's folder
        folder = Path(request.param)
        return lambda name: load_module(folder, name)
    folder = request.config.getoption("--impl-dir")
    folder = Path(folder) if folder else REPO / (request.config.getoption("--impl") or "solutions")
    return lambda name: load_module(folder, name)


def _write(record: dict) -> None:
    path = os.environ.get("TINYATTN_GRADE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


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
        if failed and "Timeout" in text:
            outcome = "timeout"
        elif failed and report.when != "call":
            outcome = "error"
        _write({"event": "result", "nodeid": report.nodeid, "outcome": outcome,
                "message": _message(report, text)})


def _message(report: pytest.TestReport, text: str) -> str:
    """The failure's own message (e.g. ``AssertionError: attention(...) (seed 1101): 3 of 24 elements
    differ ...``), whole, so the student learns what differed; else the last ``E`` line of the report."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", ""):
        return " ".join(crash.message.split())[:600]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("E "):
            return ln[1:].strip()[:600]
    return lines[-1][:600] if lines else ""
