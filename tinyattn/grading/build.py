"""Build ``exercises/`` from ``solutions/`` (the single source) and check that they agree.

A solution file marks each exercise body with a region::

    def online_merge(m1, l1, o1, m2, l2, o2):
        \"\"\"docstring stating shapes and requirements\"\"\"
        # BEGIN SOLUTION
        # HINT: the new running max is the larger of the two
        m = np.maximum(m1, m2)
        ...
        # END SOLUTION

The stub keeps the ``# HINT:`` lines and replaces the rest of the region by
``raise NotImplementedError("Exercise NN.k: online_merge")``, k counting regions in the file.
"""
from __future__ import annotations

import re
from pathlib import Path

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
HINT = "# HINT:"
_DEF = re.compile(r"^(\s*)def\s+(\w+)")
_CHAPTER = re.compile(r"^ch(\d+)_")


class RegionError(ValueError):
    """A solution file whose BEGIN/END markers do not pair up."""


def _header(name: str) -> str:
    return (f"# GENERATED from solutions/{name} by `python3 course.py exercises`.\n"
            f"# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.\n")


def make_stub(source: str, name: str) -> str:
    """Return the exercise text for the solution file ``name`` with contents ``source``.

    Raises RegionError naming the file and line when markers are nested, unclosed or unopened.
    """
    match = _CHAPTER.match(name)
    chapter = match.group(1) if match else "??"
    out: list[str] = [_header(name)]
    lines = source.splitlines(keepends=True)
    k, start, func = 0, None, "?"
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if start is not None:
                raise RegionError(f"{name}:{lineno}: '{BEGIN}' inside the region opened at line {start}")
            start, k = lineno, k + 1
            indent = line[: len(line) - len(line.lstrip())]
            func = _enclosing_function(lines[:lineno - 1], len(indent))
            continue
        if stripped.startswith(END):
            if start is None:
                raise RegionError(f"{name}:{lineno}: '{END}' without a matching '{BEGIN}'")
            out.append(f'{indent}raise NotImplementedError("Exercise {chapter}.{k}: {func}")\n')
            start = None
            continue
        if start is None:
            out.append(line)
        elif stripped.startswith(HINT):
            out.append(indent + stripped + "\n")
    if start is not None:
        raise RegionError(f"{name}:{start}: '{BEGIN}' is never closed by '{END}'")
    return "".join(out)


def _enclosing_function(previous: list[str], indent: int) -> str:
    for line in reversed(previous):
        m = _DEF.match(line)
        if m and len(m.group(1)) < indent:
            return m.group(2)
    return "module level"


def expected_exercises(solutions: Path) -> dict[str, str]:
    """Map file name -> generated stub text for every ``solutions/ch*.py``."""
    return {p.name: make_stub(p.read_text(), p.name) for p in sorted(solutions.glob("ch*.py"))}


def build(solutions: Path, exercises: Path) -> list[str]:
    """Write every stub into ``exercises`` (removing stale ch*.py there); return the names written."""
    exercises.mkdir(parents=True, exist_ok=True)
    wanted = expected_exercises(solutions)
    for stale in exercises.glob("ch*.py"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        (exercises / name).write_text(text)
    return list(wanted)


def drift(solutions: Path, exercises: Path) -> list[str]:
    """Describe every difference between ``exercises`` and what ``build`` would write (empty = in sync)."""
    wanted = expected_exercises(solutions)
    have = {p.name: p.read_text() for p in exercises.glob("ch*.py")}
    problems = [f"exercises/{n} is missing" for n in sorted(set(wanted) - set(have))]
    problems += [f"exercises/{n} has no solution file" for n in sorted(set(have) - set(wanted))]
    problems += [f"exercises/{n} differs from the stub generated from solutions/{n}"
                 for n in sorted(set(wanted) & set(have)) if wanted[n] != have[n]]
    return problems
