#!/usr/bin/env python3
"""tinyattn course runner: one file, standard library only until the environment exists.

    python3 course.py            set up .venv/ if needed, execute every notebook into build/notebooks/,
                                 then (interactive and CI != true) open JupyterLab as `lab` does
    python3 course.py test       set up if needed, run every test (unit, property, graded, nbval, lint)
    python3 course.py setup      only create / update .venv/
    python3 course.py regen [NN] rebuild notebooks/NN_*.ipynb from notebooks/src/ and execute in place
    python3 course.py exercises  rebuild exercises/ from solutions/
    python3 course.py grade ...  the grader (python -m tinyattn.grading --help)
    python3 course.py lab        open JupyterLab on the course folder (notebooks/ first; exercises/ beside it)
    python3 course.py book       build the static HTML edition into build/book/ (open build/book/index.html)
    python3 course.py slides [NN] reveal.js lecture slides of the stored notebooks into build/slides/ (offline)
    python3 course.py lock       refresh requirements/lock.txt (exact versions) from a fresh install
    python3 course.py help       this text (also -h, --help)

Running as root (a container), JupyterLab gets --allow-root. Ctrl-C stops any command (exit 130).

The environment is a virtualenv in .venv/ with `pip install -e .[dev]`, refreshed whenever
pyproject.toml changes, and recreated when its python is broken or older than requires-python.
Conda users: `conda env create -f environment.yml`, activate it, and set TINYATTN_NO_VENV=1 to use
the active interpreter instead.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
LOCK = ROOT / "requirements" / "lock.txt"     # pip constraints: the exact versions CI installs and tests
VENV = ROOT / ".venv"
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build" / "notebooks"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def in_project_env() -> bool:
    return os.environ.get("TINYATTN_NO_VENV") == "1" or Path(sys.prefix).resolve() == VENV.resolve()


def required_python() -> tuple[int, int]:
    """The minimum (major, minor) from pyproject.toml's requires-python = ">=X.Y" (3.10 if unreadable)."""
    m = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)', (ROOT / "pyproject.toml").read_text())
    return (int(m.group(1)), int(m.group(2))) if m else (3, 10)


def venv_problem(py: Path, need: tuple[int, int]) -> str | None:
    """Why the interpreter `py` of an existing .venv/ cannot be used (None if it can): it does not run
    (a moved or deleted base Python leaves a dangling link) or it is older than `need`."""
    try:
        res = subprocess.run([str(py), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"its python does not start ({type(exc).__name__}: {exc})"
    found = res.stdout.strip()
    if res.returncode != 0 or not re.fullmatch(r"\d+\.\d+", found):
        return f"its python does not start (exit {res.returncode}: {(res.stderr or res.stdout).strip()[:200]})"
    if tuple(int(x) for x in found.split(".")) < need:
        return f"it was made by Python {found}, older than the required {need[0]}.{need[1]}"
    return None


def ensure_env() -> Path:
    """Create .venv/ and install the package with its dev extra when missing or stale; return its python.

    A .venv/ whose python is broken or too old is recreated (with a message) instead of reused."""
    need = required_python()
    if sys.version_info[:2] < need:
        raise SystemExit(f"course.py: this is Python {sys.version_info[0]}.{sys.version_info[1]}; tinyattn needs "
                         f"{need[0]}.{need[1]} or newer. Run course.py with a newer interpreter "
                         f"(see `python3 --version`; e.g. `python3.12 course.py`).")
    py = venv_python()
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()
                          + (LOCK.read_bytes() if LOCK.exists() else b"")).hexdigest()
    stamp = VENV / ".tinyattn-stamp"
    problem = venv_problem(py, need) if VENV.exists() else None
    if problem or not py.exists():
        if problem:
            print(f"course.py: {VENV.name}/ is unusable: {problem}; recreating it with {sys.executable} "
                  f"(Python {sys.version_info[0]}.{sys.version_info[1]})", flush=True)
        else:
            print(f"course.py: creating the virtual environment {VENV.name}/ with {sys.executable}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    if not stamp.exists() or stamp.read_text().strip() != want:
        print("course.py: installing tinyattn and its dependencies into .venv/ (a few minutes the first time)",
              flush=True)
        pip = [str(py), "-m", "pip", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", "-q", "--upgrade", "pip"], check=True)
        pins = ["-c", str(LOCK)] if LOCK.exists() else []
        subprocess.run([*pip, "install", "-q", "-e", f"{ROOT}[dev]", *pins], check=True)
        stamp.write_text(want + "\n")
    return py


def cmd_lock() -> int:
    """Install pyproject's ranges (dev extra) into a fresh temporary venv and pin what pip chose."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tinyattn-lock-") as tmp:
        print("course.py lock: installing into a fresh environment (a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", tmp], check=True)
        py = str(Path(tmp) / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
        pip = [py, "-m", "pip", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "install", "-q", "-e", f"{ROOT}[dev]"], check=True)
        frozen = subprocess.run([*pip, "freeze", "--all", "--exclude-editable"], check=True, capture_output=True,
                                text=True).stdout.splitlines()
    pins = [ln for ln in frozen if ln and not ln.startswith(("-e", "tinyattn"))]
    LOCK.parent.mkdir(exist_ok=True)
    LOCK.write_text("# Exact versions of the course environment (pip constraints), written by `python3 course.py lock`.\n"
                    "# `course.py setup` installs pyproject's ranges with these pins (pip install -c requirements/lock.txt).\n"
                    + "\n".join(pins) + "\n")
    print(f"course.py lock: wrote {len(pins)} pins to {LOCK.relative_to(ROOT)}")
    return 0


def single_threaded_blas() -> None:
    """One BLAS thread per process for tests and notebook regeneration.

    The test run uses two pytest workers on a 2-core machine; letting each BLAS spawn two threads more
    oversubscribes the cores and made small-matrix training 5-10x slower. Users can still override.
    """
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def run(cmd: list[str]) -> int:
    """Run cmd in the checkout and return its exit status.

    On Ctrl-C the terminal has sent the same SIGINT to cmd: give it a moment to stop by itself (pytest
    prints its summary, Jupyter shuts down), then terminate it, and re-raise for entry() to report."""
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        try:
            proc.wait(timeout=10)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise


def ensure_browser() -> None:
    """The book's browser test needs a Chromium; as root with apt (CI, containers) install Debian's.

    Elsewhere nothing is installed: the test then skips with a hint (and fails when CI=true).
    """
    import shutil

    if any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        return
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return
    print("course.py: installing Debian's chromium (and CJK fonts) for the book's browser test", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    if subprocess.run(["apt-get", "update", "-qq"], **quiet).returncode == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "fonts-noto-cjk"], **quiet)


def cmd_test(extra: list[str]) -> int:
    """Unit, property and graded-suite tests plus nbval on every stored notebook, in one pytest run."""
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")  # GPU kernels run in the CUDA simulator
    ensure_browser()
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
    bar = tqdm(books, desc="running the course", unit="notebook")
    for path in bar:
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


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_command() -> list[str]:
    """JupyterLab serving the whole checkout (notebooks/, exercises/, solutions/ all visible), its file
    browser opening in notebooks/. Jupyter refuses to run as root without --allow-root (containers)."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT}",
           f"--ContentsManager.preferred_dir={NOTEBOOKS.relative_to(ROOT).as_posix()}"]
    return cmd + ["--allow-root"] if running_as_root() else cmd


def cmd_lab() -> int:
    return run(lab_command())


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


HELP_WORDS = ("help", "-h", "--help")


def main(argv: list[str]) -> int:
    if argv and argv[0] in HELP_WORDS:     # before anything else: help never builds the environment
        print(__doc__.strip())
        return 0
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
        "book": lambda: run([sys.executable, str(ROOT / "tools" / "book.py"), *extra]),
        "slides": lambda: run([sys.executable, str(ROOT / "tools" / "slides.py"), "export", *extra]),
        "lock": cmd_lock,
    }
    if command not in commands:
        print(f"course.py: unknown command {command!r}; one of {', '.join(commands)}\n{__doc__}", file=sys.stderr)
        return 2
    return commands[command]()


def entry(argv: list[str]) -> int:
    """main() with Ctrl-C turned into a one-line message and the shell's exit status 130 (128 + SIGINT)."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("\ncourse.py: interrupted (Ctrl-C); run the same command again to continue.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
