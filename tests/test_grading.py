"""The grader itself: stub generation, drift detection, scoring, and isolation of broken student code.

Fake chapters in a temporary folder exercise the failure modes a student can produce (an exception, a
wrong shape, an infinite loop, a process that dies); the real course is graded at the end (solutions
full marks, untouched stubs zero).
"""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tinyattn.grading.build import RegionError, drift, make_stub

REPO = Path(__file__).resolve().parents[1]

SOLUTION = '''"""Toy chapter."""
import numpy as np


def double(x):
    """x: (n,) -> (n,)"""
    # BEGIN SOLUTION
    # HINT: multiply by two
    y = 2 * x
    return y
    # END SOLUTION


class Box:
    def area(self, w, h):
        # BEGIN SOLUTION
        return w * h
        # END SOLUTION
'''


def test_stub_replaces_regions_keeps_hints_and_numbers_exercises():
    stub = make_stub(SOLUTION, "ch05_toy.py")
    assert "y = 2 * x" not in stub and "return w * h" not in stub
    assert "    # HINT: multiply by two\n" in stub
    assert 'raise NotImplementedError("Exercise 05.1: double")' in stub
    assert '        raise NotImplementedError("Exercise 05.2: area")' in stub
    assert "BEGIN SOLUTION" not in stub
    compile(stub, "ch05_toy.py", "exec")          # the stub is valid Python
    ns: dict = {}
    exec(compile(stub, "ch05_toy.py", "exec"), ns)
    with pytest.raises(NotImplementedError, match="Exercise 05.1"):
        ns["double"](1)


@pytest.mark.parametrize("bad, where", [
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    return 1\n    # END SOLUTION\n", "without a matching"),
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    # END SOLUTION\n", "inside the region"),
])
def test_unbalanced_markers_are_reported_with_the_line(bad, where):
    with pytest.raises(RegionError, match=where):
        make_stub(bad, "ch01_bad.py")


def test_drift_detects_edited_missing_and_orphan_exercises(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir(), ex.mkdir()
    (sol / "ch05_toy.py").write_text(SOLUTION)
    (sol / "ch06_other.py").write_text(SOLUTION)
    (ex / "ch05_toy.py").write_text(make_stub(SOLUTION, "ch05_toy.py") + "# edited by hand\n")
    (ex / "ch07_orphan.py").write_text("x = 1\n")
    problems = drift(sol, ex)
    assert any("ch05_toy.py differs" in p for p in problems)
    assert any("ch06_other.py is missing" in p for p in problems)
    assert any("ch07_orphan.py has no solution" in p for p in problems)


def test_course_exercises_match_solutions():
    """CI fails when someone edits solutions/ without regenerating exercises/ (or edits a stub by hand)."""
    problems = drift(REPO / "solutions", REPO / "exercises")
    assert problems == [], "run `python3 course.py exercises`:\n" + "\n".join(problems)


def _grade(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyattn.grading", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=1800)


def _score(out: str) -> tuple[float, float]:
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"SCORE: ([\d.]+)/([\d.]+)", last)
    assert m, f"last line is not 'SCORE: earned/total': {last!r}"
    return float(m.group(1)), float(m.group(2))


STUDENT = '''
import os
import numpy as np

def good(x):
    return 2 * x

def raises(x):
    raise RuntimeError("student bug")

def wrong_shape(x):
    return np.zeros(3)

def loops(x):
    while True:
        pass

def dies(x):
    os._exit(3)
'''


def _fake_course(tmp_path: Path) -> tuple[Path, Path]:
    tests, impl_dir = tmp_path / "graded", tmp_path / "student"
    tests.mkdir(), impl_dir.mkdir()
    (impl_dir / "ch98_fake.py").write_text(STUDENT)
    (impl_dir / "ch99_fake.py").write_text(STUDENT)
    body = textwrap.dedent('''
        import numpy as np
        import pytest

        @pytest.mark.points({p_good})
        def test_good(impl):
            x = np.arange(4.0)
            assert np.array_equal(impl("{mod}").good(x), 2 * x)

        @pytest.mark.points(2)
        def test_raises(impl):
            assert impl("{mod}").raises(1) == 2

        @pytest.mark.points(3)
        def test_wrong_shape(impl):
            assert impl("{mod}").wrong_shape(np.ones((2, 2))).shape == (2, 2)

        @pytest.mark.points(4)
        def test_loops(impl):
            assert impl("{mod}").loops(1) == 1
        ''')
    (tests / "test_ch98_fake.py").write_text(body.format(mod="ch98_fake", p_good=1))
    (tests / "test_ch99_fake.py").write_text(body.format(mod="ch99_fake", p_good=5) + textwrap.dedent('''
        @pytest.mark.points(6)
        def test_dies(impl):
            impl("ch99_fake").dies(1)

        @pytest.mark.points(7)
        def test_after_death(impl):
            assert impl("ch99_fake").good(1) == 2
        '''))
    return tests, impl_dir


def test_grader_isolates_exceptions_wrong_shapes_timeouts_and_crashes(tmp_path):
    tests, impl_dir = _fake_course(tmp_path)
    res = _grade("--tests", str(tests), "--impl-dir", str(impl_dir), "--timeout", "3")
    assert res.returncode == 1, res.stdout + res.stderr      # not full marks -> exit 1, but no crash
    out = res.stdout
    # student code runs in a worker process: a crash costs only its own test (the worker restarts)
    assert _score(out) == (1 + 5 + 7, 1 + 2 + 3 + 4 + 5 + 2 + 3 + 4 + 6 + 7)
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("ch9")}
    assert "FAILED" in rows["test_raises"] and "student bug" in rows["test_raises"]
    assert "FAILED" in rows["test_wrong_shape"]
    assert "TIMEOUT" in rows["test_loops"]
    assert "CRASHED" in rows["test_dies"] and "ok" in rows["test_after_death"]
    assert "ok" in rows["test_good"]


def test_grader_selects_chapters_and_rejects_unknown_ones(tmp_path):
    tests, impl_dir = _fake_course(tmp_path)
    res = _grade("ch98", "--tests", str(tests), "--impl-dir", str(impl_dir), "--timeout", "3")
    assert _score(res.stdout) == (1, 10)
    bad = _grade("ch42", "--tests", str(tests), "--impl-dir", str(impl_dir))
    assert bad.returncode == 2 and "ch42" in bad.stderr


@pytest.mark.slow
def test_reference_solutions_score_full_marks():
    res = _grade("--impl", "solutions")
    earned, total = _score(res.stdout)
    assert total > 0 and earned == total and res.returncode == 0, res.stdout[-3000:]


@pytest.mark.slow
def test_untouched_exercise_stubs_score_zero():
    res = _grade("--impl", "exercises")
    earned, total = _score(res.stdout)
    assert total > 0 and earned == 0 and res.returncode == 1, res.stdout[-3000:]


def test_missing_grader_packages_are_named_not_blamed_on_the_student(monkeypatch, capsys):
    """Item 12 of issue 9: without pytest-timeout the grader says so (and how to install it)."""
    from tinyattn.grading import __main__ as cli
    from tinyattn.grading import runner

    monkeypatch.setattr(runner, "missing_requirements", lambda: ["pytest-timeout>=2.3"])
    assert cli.main(["--impl", "solutions", "ch01"]) == 2
    err = capsys.readouterr().err
    assert "pytest-timeout" in err and "pip install 'pytest-timeout>=2.3'" in err
    assert "not a problem with your exercises" in err and "does the module import" not in err


@pytest.mark.parametrize("blocked", ["pytest_timeout", "pytest"])
def test_grader_in_a_python_without_pytest_timeout_or_pytest(blocked):
    """The real thing: a Python where the import fails (the module is blocked in sys.modules)."""
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            "from tinyattn.grading.__main__ import main\n"
            "sys.exit(main(['--impl', 'solutions', 'ch01']))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    package = blocked.replace("_", "-")
    assert f"needs {package}," in res.stderr and "pip install" in res.stderr, res.stderr
    assert "SCORE" not in res.stdout


def test_uncollectable_graded_file_names_its_error_not_the_students_module(tmp_path):
    tests, impl_dir = tmp_path / "graded", tmp_path / "student"
    tests.mkdir(), impl_dir.mkdir()
    (tests / "test_ch97_broken.py").write_text("import not_a_real_package_xyz\n\ndef test_x(impl):\n    assert 1\n")
    res = _grade("--tests", str(tests), "--impl-dir", str(impl_dir), "--timeout", "3")
    row = next(line for line in res.stdout.splitlines() if line.startswith("ch97"))
    assert "ERROR" in row and "not your code" in row, res.stdout
    assert "not_a_real_package_xyz" in res.stdout and "does the module import" not in res.stdout


def test_run_many_grades_several_folders_in_one_process(tmp_path):
    """The regression suite's fast path gives each folder the score run_file would give it."""
    from tinyattn.grading.runner import run_file, run_many

    tests = tmp_path / "graded"
    tests.mkdir()
    (tests / "test_ch96_fake.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.points(2)
        def test_good(impl):
            assert impl("ch96_fake").good(3) == 6

        @pytest.mark.points(3)
        def test_raises(impl):
            assert impl("ch96_fake").raises(1) == 2
        '''))
    folders = {}
    for name, body in {"right": STUDENT.replace("raise RuntimeError(\"student bug\")", "return 2 * x"),
                       "wrong": STUDENT.replace("return 2 * x", "return 3 * x")}.items():
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "ch96_fake.py").write_text(body)
    many = run_many([tests / "test_ch96_fake.py"], list(folders.values()), timeout=10, repo=REPO)
    single = run_file(tests / "test_ch96_fake.py", "exercises", folders["right"], timeout=10, repo=REPO)
    score = {name: sum(r.earned for r in res) for name, res in many.items()}
    assert score == {"right": 5, "wrong": 0} and sum(r.earned for r in single) == 5
    assert [r.test for r in many["wrong"]] == [r.test + "[wrong]" for r in single]


def test_failure_messages_say_what_differed():
    import numpy as np

    from tinyattn.grading.check import assert_close, assert_equal, check

    want = np.zeros((2, 3, 4))
    got = want.copy()
    got[1, 2, 0], got[0, 0, 1] = 0.5, 1e-3
    with pytest.raises(AssertionError) as e:
        assert_close("f(x)", got, want, seed=7, atol=1e-6)
    msg = str(e.value)
    assert msg.startswith("f(x) (seed 7): 2 of 24 element(s) differ") and "worst at index (1, 2, 0)" in msg
    assert "expected 0, got 0.5" in msg
    for bad, text in [(None, "returned None"), (np.zeros((3, 2, 4)), "shape (3, 2, 4), expected (2, 3, 4)")]:
        with pytest.raises(AssertionError, match=re.escape(text)):
            assert_close("f(x)", bad, want)
    with pytest.raises(AssertionError, match="dtype <U4"):
        assert_close("f(x)", "text", 1.0)
    nan = want.copy()
    nan[0, 1, 2] = np.nan
    with pytest.raises(AssertionError, match=r"index \(0, 1, 2\): expected 0, got nan"):
        assert_close("f(x)", nan, want, atol=1.0)
    assert_close("same infinities", [np.inf, -np.inf, 1.0], [np.inf, -np.inf, 1.0])
    with pytest.raises(AssertionError, match="expected inf, got -inf"):
        assert_close("opposite infinities", [-np.inf], [np.inf])
    with pytest.raises(AssertionError, match=r"first at index \(1,\): expected 2, got 5"):
        assert_equal("ids", [1, 5, 3], [1, 2, 4], seed=3)
    with pytest.raises(AssertionError, match=r"^g \(seed 4\): left x changed$"):
        check(False, "g", "left x changed", seed=4)
    with pytest.raises(AssertionError, match=r"^loss \(seed 9\): expected 1.5, got 2 \(allowed"):
        assert_close("loss", 2.0, 1.5, seed=9)
