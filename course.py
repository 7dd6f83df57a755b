#!/usr/bin/env python3
"""tinyattn course runner: one file, standard library only until the environment exists.

    python3 course.py            set up .venv/ if needed, execute every notebook into build/notebooks/,
                                 then (interactive and CI != true) open JupyterLab on notebooks/
    python3 course.py test       set up if needed, run every test (unit, property, graded, nbval, lint)
    python3 course.py setup      only create / update .venv/
    python3 course.py regen [NN] rebuild notebooks/NN_*.ipynb from notebooks/src/ and execute in place
    python3 course.py exercises  rebuild exercises/ from solutions/
    python3 course.py grade ...  the grader (python -m tinyattn.grading --help)
    python3 course.py lab        open JupyterLab on notebooks/

The environment is a virtualenv in .venv/ with `pip install -e .[dev]`, refreshed whenever
pyproject.toml changes. Conda users: `conda env create -f environment.yml`, activate it, and set
TINYATTN_NO_VENV=1 to use the active interpreter instead.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build" / "notebooks"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def in_project_env() -> bool:
    return os.environ.get("TINYATTN_NO_VENV") == "1" or Path(sys.prefix).resolve() == VENV.resolve()


def ensure_env() -> Path:
    """Create .venv/ and install the package with its dev extra when missing or stale; return its python."""
    py = venv_python()
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / ".tinyattn-stamp"
    if not py.exists():
        print(f"course.py: creating the virtual environment {VENV.name}/ with {sys.executable}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not stamp.exists() or stamp.read_text().strip() != want:
        print("course.py: installing tinyattn and its dependencies into .venv/ (a few minutes the first time)",
              flush=True)
        pip = [str(py), "-m", "pip", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "install", "-q", "-e", f"{ROOT}[dev]"], check=True)
        stamp.write_text(want + "\n")
    return py


def single_threaded_blas() -> None:
    """One BLAS thread per process for tests and notebook regeneration.

    The test run uses two pytest workers on a 2-core machine; letting each BLAS spawn two threads more
    oversubscribes the cores and made small-matrix training 5-10x slower. Users can still override.
    """
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def run(cmd: list[str]) -> int:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def cmd_test(extra: list[str]) -> int:
    """Unit, property and graded-suite tests plus nbval on every stored notebook, in one pytest run."""
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")  # GPU kernels run in the CUDA simulator
    single_threaded_blas()
    cmd = [sys.executable, "-m", "pytest", "tests", "notebooks", "-n", "2", "--dist", "loadfile",
           "--nbval-lax", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "--nbval-cell-timeout", "600",
           "--timeout", "1200", "-q", "-p", "no:cacheprovider", *extra]
    rc = run(cmd)
    if rc == 5:
        print("course.py: pytest collected no tests; a test run that tests nothing is a failure", file=sys.stderr)
        return 1
    return rc


def cmd_run(extra: list[str]) -> int:
    """Execute every stored notebook headless into build/notebooks/, then open JupyterLab if interactive."""
    sys.path.insert(0, str(ROOT / "tools"))
    import nbformat
    from nbtools import execute, write
    from tqdm import tqdm

    books = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    failed = []
    for path in (bar := tqdm(books, desc="running the course", unit="notebook")):
        bar.set_postfix_str(path.name)
        nb = nbformat.read(str(path), as_version=4)
        try:
            write(execute(nb, cwd=NOTEBOOKS), BUILD / path.name)
        except Exception as exc:  # report every broken notebook, then fail
            failed.append(f"{path.name}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}")
    print(f"executed {len(books) - len(failed)}/{len(books)} notebooks into {BUILD.relative_to(ROOT)}/")
    for line in failed:
        print("  FAILED", line, file=sys.stderr)
    if failed:
        return 1
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("CI", "").lower() != "true"
    if interactive and "--no-lab" not in extra:
        return cmd_lab()
    return 0


def cmd_lab() -> int:
    return run([sys.executable, "-m", "jupyterlab", f"--notebook-dir={NOTEBOOKS}"])


def cmd_regen(names: list[str]) -> int:
    """Rebuild notebooks/NN_topic.ipynb from notebooks/src/NN_topic.py and execute it in place."""
    sys.path.insert(0, str(ROOT / "tools"))
    from nbtools import build_notebook, execute, write

    single_threaded_blas()      # the same thread count as the CI run that re-checks the outputs
    sources = sorted((NOTEBOOKS / "src").glob("[0-9][0-9]_*.py"))
    if names:
        sources = [s for s in sources if any(s.name.startswith(n.zfill(2)) or s.stem == n for n in names)]
    if not sources:
        print(f"course.py regen: no notebook source matches {names}", file=sys.stderr)
        return 2
    for src in sources:
        print(f"regenerating notebooks/{src.stem}.ipynb from notebooks/src/{src.name}", flush=True)
        write(execute(build_notebook(src), cwd=NOTEBOOKS), NOTEBOOKS / f"{src.stem}.ipynb")
    return 0


def main(argv: list[str]) -> int:
    if not in_project_env():
        py = ensure_env()
        os.execv(str(py), [str(py), str(Path(__file__).resolve()), *argv])
    command, extra = (argv[0], argv[1:]) if argv else ("run", [])
    if command.startswith("-"):
        command, extra = "run", argv
    commands = {
        "run": lambda: cmd_run(extra),
        "test": lambda: cmd_test(extra),
        "setup": lambda: 0,
        "regen": lambda: cmd_regen(extra),
        "exercises": lambda: run([sys.executable, "-m", "tinyattn.grading", "--build-exercises"]),
        "grade": lambda: run([sys.executable, "-m", "tinyattn.grading", *extra]),
        "lab": cmd_lab,
    }
    if command not in commands:
        print(f"course.py: unknown command {command!r}; one of {', '.join(commands)}\n{__doc__}", file=sys.stderr)
        return 2
    return commands[command]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
