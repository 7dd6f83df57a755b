"""requirements/lock.txt pins the course environment: every dependency of pyproject is pinned, and the
environment the suite runs in (CI's fresh .venv, installed with the lock) has exactly those versions."""
from __future__ import annotations

import os
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"lock line {line!r} is not name==version"
            pins[_norm(name)] = version
    return pins


def test_every_pyproject_dependency_is_pinned():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = _pins()
    for req in reqs:
        name = _norm(re.match(r"[A-Za-z0-9_.\-]+", req).group(0))
        assert name in pins, f"{req!r} from pyproject.toml is not in requirements/lock.txt: run course.py lock"


def test_the_running_environment_matches_the_lock():
    in_course_venv = Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()
    if not in_course_venv:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run the suite in the .venv that course.py installs with the lock")
        pytest.skip("not running in the course's .venv (TINYATTN_NO_VENV or another environment)")
    wrong = []
    for name, version in _pins().items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: pinned {version}, not installed")
            continue
        if have != version:
            wrong.append(f"{name}: pinned {version}, installed {have}")
    assert not wrong, "environment differs from requirements/lock.txt:\n" + "\n".join(wrong)
