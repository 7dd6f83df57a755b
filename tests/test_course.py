"""Course-level checks: notebooks agree with their sources and carry figures, the README's Quick start
is the two documented commands, .ci/run is the test command, and the static course lint is clean."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from nbtools import cells_of, parse_percent  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted((REPO / "notebooks" / "src").glob("[0-9][0-9]_*.py"))


def test_parse_percent_splits_markdown_and_code():
    text = "# %% [markdown]\n# # Title\n# some *prose*\n#\n# more\n\n# %%\nx = 1\n\n# %%\n\n# %% [markdown]\n#no space\n"
    assert parse_percent(text) == [("markdown", "# Title\nsome *prose*\n\nmore"), ("code", "x = 1"),
                                   ("markdown", "no space")]
    with pytest.raises(ValueError, match="before the first"):
        parse_percent("x = 1\n# %%\ny = 2\n")


def test_every_source_has_a_notebook_and_vice_versa():
    assert {p.stem for p in NOTEBOOKS} == {p.stem for p in SOURCES}


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_its_source_and_has_figures(nb_path):
    import nbformat

    nb = nbformat.read(str(nb_path), as_version=4)
    src = REPO / "notebooks" / "src" / f"{nb_path.stem}.py"
    assert cells_of(nb) == parse_percent(src.read_text()), (
        f"{nb_path.name} is stale: run `python3 course.py regen {nb_path.stem[:2]}`")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "InlineBackend.figure_formats = ['png']" in code[0].source, "first cell: the PNG figure template"
    figures = sum("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", []))
    assert figures >= (2 if nb_path.stem.startswith("00") else 1), f"{nb_path.name} stores {figures} figure(s)"
    assert any(c.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT") for c in code), \
        "at least one cell's printed results must be checked by nbval"


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "Quick start holds exactly one fenced block"
    commands = [ln.strip() for ln in blocks[0].splitlines() if ln.strip()]
    assert len(commands) == 2, commands
    ci = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.startswith("#") and not ln.startswith(("set ", "cd "))]
    assert ci == [commands[1]], f".ci/run must run exactly the README's test command {commands[1]!r}, runs {ci}"


def test_pyproject_declares_the_documented_dependencies():
    text = (REPO / "pyproject.toml").read_text()
    for dep in ("numpy", "numba", "numba-cuda", "matplotlib", "tqdm", "pytest-timeout", "nbval", "hypothesis"):
        assert f'"{dep}' in text, dep
    assert "<2.5" in text, "numpy stays below 2.5 (numba-cuda breaks on it)"
    assert not re.search(r'"(torch|tensorflow|jax)\b', text), "no deep-learning framework as a dependency"


LINT = REPO.parent / "shared" / "tools" / "course_lint.py"


@pytest.mark.skipif(not LINT.exists(), reason="../shared/tools/course_lint.py is not beside this checkout")
def test_course_lint_reports_nothing():
    res = subprocess.run([sys.executable, str(LINT), str(REPO)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_notebooks_store_no_errors_and_run_in_order():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        counts = [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
        assert counts == list(range(1, len(counts) + 1)), f"{path.name}: regenerate it in one fresh kernel"
        assert not any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", [])), path.name
