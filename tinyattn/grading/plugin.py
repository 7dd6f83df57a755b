"""pytest plugin for graded tests, loaded by ``-p tinyattn.grading.plugin`` (pyproject's addopts and the
grader both pass it).

- options ``--impl exercises|solutions`` and ``--impl-dir DIR``;
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


@pytest.fixture
def impl(request: pytest.FixtureRequest) -> Callable[[str], ModuleType]:
    """``impl("chNN_topic")`` -> the module under test (solutions/ unless --impl/--impl-dir say otherwise)."""
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
        _write({"event": "collected", "nodeid": item.nodeid, "points": points_of(item)})


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
                "message": _last_line(text)})


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("E "):
            return ln[1:].strip()[:90]
    return lines[-1][:90] if lines else ""
