"""The grader's own regression suite: plausible WRONG answers must lose points, the solutions must not.

Each ``tests/wrong_answers/chNN_topic.py`` holds ``WRONG = {"case": "def func(...):\\n    ..."}``: every
value is the full source of a wrong replacement for one function of ``solutions/chNN_topic.py``. For each
case this test copies ALL of solutions/ into its own folder (cross-chapter imports keep working), appends
the wrong source to the chapter's module (so it overrides the function), and grades the whole chapter.
One pytest process per chapter grades every case and an untouched copy of the solutions
(``tinyattn.grading.runner.run_many``, the plugin's ``--impl-dirs``), so the suite stays fast.
New chapters are picked up by the glob: adding a wrong_answers file is all it takes.
"""
from __future__ import annotations

import ast
import importlib.util
import shutil
from pathlib import Path

import pytest

from tinyattn.grading.runner import find_test_files, run_many

REPO = Path(__file__).resolve().parents[1]
WRONG_FILES = sorted((REPO / "tests" / "wrong_answers").glob("ch*_*.py"))
SOLUTIONS_CASE = "_solutions_untouched"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"_wrong_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_wrong(path: Path) -> dict[str, str]:
    return _load(path).WRONG


def target_module(path: Path) -> str:
    """The solutions module a wrong-answer file patches: its ``MODULE`` if set (several files may patch
    one chapter, e.g. ``ch00_tensor_core__engine.py``), else the file's own name."""
    return getattr(_load(path), "MODULE", path.stem)


def replaced_function(source: str) -> str:
    """Name of the (single) function a wrong answer defines."""
    defs = [n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert len(defs) == 1, f"a wrong answer must define exactly one function, found {defs}"
    return defs[0]


@pytest.mark.parametrize("path", WRONG_FILES, ids=[p.stem for p in WRONG_FILES])
def test_wrong_answer_files_are_well_formed(path):
    """Fast check: every case replaces a function that the solution module really has."""
    solution = REPO / "solutions" / f"{target_module(path)}.py"
    assert solution.exists(), f"{path.name}: no {solution.relative_to(REPO)} to modify"
    have = {n.name for n in ast.parse(solution.read_text()).body if isinstance(n, ast.FunctionDef)}
    wrong = load_wrong(path)
    assert isinstance(wrong, dict) and wrong, f"{path.name}: WRONG must be a non-empty dict"
    for case, source in wrong.items():
        assert case.isidentifier() and case != SOLUTIONS_CASE, f"{path.name}: bad case name {case!r}"
        name = replaced_function(source)
        assert name in have, f"{path.name}:{case}: {solution.name} has no function {name}"
        assert source.strip() not in solution.read_text(), f"{path.name}:{case}: identical to the solution"


def _impl_dir(tmp: Path, case: str, module: str, extra: str) -> Path:
    folder = tmp / case
    shutil.copytree(REPO / "solutions", folder, ignore=shutil.ignore_patterns("__pycache__"))
    if extra:
        with open(folder / f"{module}.py", "a", encoding="utf-8") as fh:
            fh.write(f"\n\n# ---- wrong answer {case!r} appended by tests/test_grader_regression.py ----\n")
            fh.write(extra if extra.endswith("\n") else extra + "\n")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("path", WRONG_FILES, ids=[p.stem for p in WRONG_FILES])
def test_every_wrong_answer_loses_points(path, tmp_path):
    chapter = path.stem.split("_")[0]
    wrong = load_wrong(path)
    module = target_module(path)
    dirs = [_impl_dir(tmp_path, SOLUTIONS_CASE, module, "")]
    dirs += [_impl_dir(tmp_path, case, module, src) for case, src in wrong.items()]
    files = find_test_files(REPO / "tests" / "graded", [chapter])
    graded = run_many(files, dirs, timeout=60.0, repo=REPO)

    def score(case):
        res = graded[case]
        return sum(r.earned for r in res), sum(r.points for r in res), res

    earned, total, res = score(SOLUTIONS_CASE)
    assert total > 0 and earned == total, "solutions must score full marks:\n" + "\n".join(
        f"{r.test}: {r.outcome} {r.message}" for r in res if r.outcome != "passed")
    survivors = []
    for case in wrong:
        got, tot, _ = score(case)
        assert tot == total, f"{case}: graded {tot} points, the solutions {total} (a test was not collected?)"
        lost = [r.test for r in graded[case] if r.earned < r.points]
        print(f"{chapter} {case}: {got:g}/{tot:g}, caught by {lost}")     # shown with pytest -s
        if got >= total:
            survivors.append(f"{case} (replaces {replaced_function(wrong[case])})")
    assert not survivors, f"{chapter}: these wrong answers still earn full marks: {survivors}"
