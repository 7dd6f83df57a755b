"""course.py for a newcomer: help without side effects, JupyterLab as root and on the whole checkout,
Ctrl-C without a traceback, and a broken or too-old .venv/ recreated instead of reused.

Nothing here launches Jupyter or installs packages: the lab tests inspect the command line course.py
builds, the venv tests record the commands ensure_env() would run.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def course(tmp_path, monkeypatch):
    """course.py imported from a copy in tmp_path (with the real pyproject.toml), so ROOT and .venv/
    point into tmp_path and nothing in the checkout can be touched."""
    for name in ("course.py", "pyproject.toml"):
        shutil.copy2(REPO / name, tmp_path / name)
    (tmp_path / "notebooks").mkdir()
    spec = importlib.util.spec_from_file_location("course_under_test", tmp_path / "course.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.ROOT == tmp_path
    return mod


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TINYATTN_NO_VENV"}
    env.update(extra)
    return env


@pytest.mark.parametrize("word", ["--help", "-h", "help"])
def test_help_prints_usage_and_builds_nothing(tmp_path, word):
    """Outside any environment (TINYATTN_NO_VENV unset, no .venv/): help must not create one."""
    shutil.copy2(REPO / "course.py", tmp_path / "course.py")
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    # PIP_NO_INDEX: should a regression start the setup, it fails fast instead of downloading
    res = subprocess.run([sys.executable, str(tmp_path / "course.py"), word], cwd=tmp_path,
                         env=_clean_env(PIP_NO_INDEX="1"),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    for line in ("python3 course.py test", "python3 course.py lab", "python3 course.py grade"):
        assert line in res.stdout, f"{word}: usage lacks {line!r}:\n{res.stdout}"
    assert not (tmp_path / ".venv").exists(), f"`course.py {word}` created .venv/"
    assert not (tmp_path / "build").exists(), f"`course.py {word}` ran the course"


def test_unknown_command_is_an_error_with_usage(tmp_path):
    shutil.copy2(REPO / "course.py", tmp_path / "course.py")
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    res = subprocess.run([sys.executable, str(tmp_path / "course.py"), "frobnicate"], cwd=tmp_path,
                         env=_clean_env(TINYATTN_NO_VENV="1"), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "unknown command 'frobnicate'" in res.stderr, res.stderr


@pytest.mark.parametrize("euid, allow_root", [(0, True), (1000, False)])
def test_lab_command_serves_the_checkout_and_allows_root_only_as_root(course, monkeypatch, euid, allow_root):
    monkeypatch.setattr(os, "geteuid", lambda: euid, raising=False)
    cmd = course.lab_command()
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"], cmd
    assert f"--ServerApp.root_dir={course.ROOT}" in cmd, f"the lab root must be the checkout: {cmd}"
    assert "--ContentsManager.preferred_dir=notebooks" in cmd, f"the file browser must open in notebooks/: {cmd}"
    assert ("--allow-root" in cmd) is allow_root, f"euid {euid}: {cmd}"
    assert not any(a.startswith("--notebook-dir") for a in cmd), "notebooks/ as root hides exercises/"


@pytest.mark.parametrize("euid", [0, 1000])
def test_interactive_default_opens_the_same_lab(course, monkeypatch, euid):
    """`python3 course.py` (interactive, not CI) executes the notebooks, then runs lab_command()."""
    pytest.importorskip("nbformat")
    pytest.importorskip("tqdm")
    monkeypatch.setattr(os, "geteuid", lambda: euid, raising=False)
    monkeypatch.setattr(course, "BUILD", course.ROOT / "build" / "notebooks")
    monkeypatch.setattr(sys, "path", [str(REPO / "tools"), *sys.path])   # nbtools, as cmd_run expects
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("CI", raising=False)
    launched = []
    monkeypatch.setattr(course, "run", lambda cmd: launched.append(cmd) or 0)
    assert course.cmd_run([]) == 0
    assert launched == [course.lab_command()]
    assert ("--allow-root" in launched[0]) is (euid == 0)


CHILD = ("import signal, sys, time; signal.signal(signal.SIGINT, lambda *a: sys.exit(130)); "
         "print('child ready', flush=True); time.sleep(60)")


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C does, while course.run() waits on a child."""
    shutil.copy2(REPO / "course.py", tmp_path / "course.py")
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    driver = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import course; "
              f"course.main = lambda argv: course.run([sys.executable, '-c', {CHILD!r}]); "
              f"sys.exit(course.entry([]))")
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=tmp_path, env=_clean_env(TINYATTN_NO_VENV="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "child ready" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "child ready" in line, f"the child never started: {proc.stderr.read()}"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err, err
    assert "interrupted" in err and len(err.strip().splitlines()) == 1, err


def test_ctrl_c_anywhere_in_main_exits_130(course, monkeypatch, capsys):
    def interrupted(argv):
        raise KeyboardInterrupt
    monkeypatch.setattr(course, "main", interrupted)
    assert course.entry(["test"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def _fake_python(path: Path, script: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return path


@pytest.mark.skipif(os.name == "nt", reason="shell-script stand-ins for a venv python")
@pytest.mark.parametrize("kind, script, reason", [
    ("too old", "echo 3.8", "Python 3.8, older than the required 3.11"),
    ("broken", "echo 'error while loading shared libraries: libpython3.9.so' >&2; exit 127", "does not start"),
    ("dangling", None, "does not start"),
])
def test_unusable_venv_is_recreated_with_a_message(course, monkeypatch, capsys, kind, script, reason):
    py = course.venv_python()
    if script is None:                       # the base interpreter was removed: a dangling symlink
        py.parent.mkdir(parents=True)
        py.symlink_to(course.ROOT / "no-such-python")
    else:
        _fake_python(py, script)
    stamp = course.VENV / ".tinyattn-stamp"  # even an up-to-date stamp must not save a bad venv
    import hashlib
    stamp.write_text(hashlib.sha256((course.ROOT / "pyproject.toml").read_bytes()).hexdigest() + "\n")
    calls = []

    def fake_run(cmd, **kw):
        calls.append([str(c) for c in cmd])
        if "venv" in cmd:                    # what `python -m venv --clear` leaves: a working python
            if py.is_symlink():
                py.unlink()
            shutil.rmtree(course.VENV)
            _fake_python(py, f'exec {sys.executable} "$@"')
        return subprocess.CompletedProcess(cmd, 0)

    real_run = subprocess.run
    monkeypatch.setattr(course.subprocess, "run",
                        lambda cmd, **kw: real_run(cmd, **kw) if kw.get("capture_output") else fake_run(cmd, **kw))
    assert course.ensure_env() == py
    out = capsys.readouterr().out
    assert "unusable" in out and reason in out and "recreating" in out, out
    assert calls[0] == [sys.executable, "-m", "venv", "--clear", str(course.VENV)], calls
    assert any("install" in c and "-e" in c for c in calls[1:]), f"{kind}: no reinstall after recreating: {calls}"


def test_venv_problem_accepts_a_working_current_python(course):
    assert course.venv_problem(Path(sys.executable), (3, 10)) is None
    newer = (sys.version_info[0], sys.version_info[1] + 1)
    assert "older than the required" in course.venv_problem(Path(sys.executable), newer)


def test_required_python_is_read_from_pyproject(course):
    assert course.required_python() == (3, 11)


def test_good_venv_is_reused_without_a_message(course, monkeypatch, capsys):
    py = _fake_python(course.venv_python(), f'exec {sys.executable} "$@"')
    import hashlib
    (course.VENV / ".tinyattn-stamp").write_text(
        hashlib.sha256((course.ROOT / "pyproject.toml").read_bytes()).hexdigest() + "\n")
    real_run = subprocess.run
    calls = []
    monkeypatch.setattr(course.subprocess, "run",
                        lambda cmd, **kw: real_run(cmd, **kw) if kw.get("capture_output") else calls.append(cmd))
    assert course.ensure_env() == py
    assert calls == [] and capsys.readouterr().out == ""


def test_too_old_interpreter_running_course_py_says_so(course, monkeypatch):
    monkeypatch.setattr(course, "required_python", lambda: (sys.version_info[0], sys.version_info[1] + 1))
    with pytest.raises(SystemExit, match="needs .* or newer"):
        course.ensure_env()
    assert not course.VENV.exists()
