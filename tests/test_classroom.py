"""Grading a class (`tinyattn grade --submissions DIR`): exact scores for good and partial submissions,
zero and no side effects for crashing and hanging ones, CSV and JSON reports."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

TESTS = textwrap.dedent('''
    import numpy as np
    import pytest

    @pytest.mark.points(2)
    def test_double(impl):
        x = np.arange(5.0)
        np.testing.assert_allclose(impl("ch97_fake").double(x), 2 * x)

    @pytest.mark.points(3)
    def test_norm(impl):
        x = np.array([3.0, 4.0])
        assert impl("ch97_fake").norm(x) == 5.0
    ''')

GOOD = "import numpy as np\ndef double(x):\n    return 2 * x\ndef norm(x):\n    return float(np.sqrt((x * x).sum()))\n"
PARTIAL = "import numpy as np\ndef double(x):\n    return 2 * x\ndef norm(x):\n    return float(np.abs(x).sum())\n"
CRASH = "import os\nos._exit(7)\n"
HANG = "while True:\n    pass\n"


def _class(tmp_path: Path) -> tuple[Path, Path]:
    tests = tmp_path / "graded"
    tests.mkdir()
    (tests / "test_ch97_fake.py").write_text(TESTS)
    subs = tmp_path / "class"
    for name, code, checkout in (("alice", GOOD, False), ("bob", PARTIAL, False), ("carol", CRASH, False),
                                 ("dave", HANG, False), ("erin", GOOD, True)):
        folder = subs / name / ("exercises" if checkout else "")
        folder.mkdir(parents=True)
        (folder / "ch97_fake.py").write_text(code)
    return tests, subs


def test_grade_a_class_of_good_partial_crashing_and_hanging_submissions(tmp_path):
    tests, subs = _class(tmp_path)
    before = {p: p.read_text() for p in subs.rglob("*.py")}
    out_csv, out_json = tmp_path / "scores.csv", tmp_path / "scores.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "tinyattn.grading", "--tests", str(tests), "--submissions", str(subs),
                          "--timeout", "3", "--csv", str(out_csv), "--json", str(out_json)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = {r["student"]: r for r in csv.DictReader(out_csv.open())}
    assert list(rows) == ["alice", "bob", "carol", "dave", "erin"]
    got = {s: (float(r["earned"]), float(r["total"])) for s, r in rows.items()}
    assert got == {"alice": (5, 5), "bob": (2, 5), "carol": (0, 5), "dave": (0, 5), "erin": (5, 5)}
    assert rows["bob"]["ch97::test_double"] == "2" and rows["bob"]["ch97::test_norm"] == "0"
    doc = json.loads(out_json.read_text())
    outcomes = {t["test"]: t["outcome"] for t in doc["dave"]["tests"]}
    assert outcomes == {"test_double": "timeout", "test_norm": "timeout"}
    assert {t["outcome"] for t in doc["carol"]["tests"]} <= {"crashed", "error"}
    assert "alice" in res.stdout and "5/5" in res.stdout
    assert {p: p.read_text() for p in subs.rglob("*.py")} == before          # submissions left untouched
    assert not list(subs.rglob("__pycache__"))


def test_bad_submissions_folder_is_a_clear_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "tinyattn.grading", "--submissions", str(tmp_path / "nope")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "is not a folder" in res.stderr
    res = subprocess.run([sys.executable, "-m", "tinyattn.grading", "--csv", "x.csv"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--submissions" in res.stderr


def test_classroom_workflow_is_up_to_date():
    res = subprocess.run([sys.executable, "tools/classroom.py", "--check"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stdout + res.stderr
    text = (ROOT / ".github" / "workflows" / "classroom.yml").read_text()
    for f in sorted((ROOT / "tests" / "graded").glob("test_ch*.py")):
        ch = f.stem.split("_")[1]
        assert f"command: python -m tinyattn.grading {ch}" in text
