"""The built wheel is a working tinyattn: every non-Python file the package needs is inside it.

Found by installing from a wheel: `gpu/ptx_utils.cuh` was missing, so every CuPy kernel failed to
build its source outside an editable checkout. The wheel is built offline from a copy of the
sources (no stale `build/` can hide a missing file) with the interpreter running the tests.
"""
from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "tinyattn"
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def package_data_files() -> list[str]:
    """Every non-Python file under tinyattn/ in the checkout, as wheel paths ('tinyattn/gpu/x.cu')."""
    return sorted(p.relative_to(REPO).as_posix() for p in PKG.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts)


def quoted_includes() -> dict[str, set[str]]:
    """{wheel path of a .cu/.cuh file: wheel paths of the files it #includes "..." (transitively)}."""
    out: dict[str, set[str]] = {}
    for src in sorted(PKG.rglob("*.cu*")):
        todo, seen = [src], set()
        while todo:
            f = todo.pop()
            for name in INCLUDE.findall(f.read_text()):
                dep = (f.parent / name).resolve()
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        out[src.relative_to(REPO).as_posix()] = {d.relative_to(REPO).as_posix() for d in seen}
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build tinyattn's wheel from a fresh copy of pyproject.toml, README.md and tinyattn/."""
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel", reason="the 'wheel' package (dev extra) builds bdist_wheel offline")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(PKG, src / "tinyattn", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheelhouse")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "--no-index", "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"pip wheel failed:\n{res.stdout}\n{res.stderr}"
    wheels = list(out.glob("tinyattn-*.whl"))
    assert len(wheels) == 1, f"expected one tinyattn wheel in {out}, found {wheels}"
    return wheels[0]


def test_the_checkout_has_cuda_sources_that_include_a_header():
    """Guards the next test against passing vacuously (no .cu files, no includes found)."""
    includes = quoted_includes()
    assert "tinyattn/gpu/flash_fp32.cu" in includes, sorted(includes)
    assert "tinyattn/gpu/ptx_utils.cuh" in includes["tinyattn/gpu/flash_fp32.cu"]


def test_wheel_contains_every_non_python_file_and_every_include(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in package_data_files() if f not in names]
    assert not missing, f"{wheel.name} lacks {missing}: add them to [tool.setuptools.package-data]"
    for cu, deps in quoted_includes().items():
        assert cu in names, f"{wheel.name} lacks {cu}"
        lost = sorted(deps - names)
        assert not lost, f"{cu} #includes {lost}, which {wheel.name} does not contain"
    assert "tinyattn/__init__.py" in names and "tinyattn/gpu/cupy_flash.py" in names


CHECK_INSTALLED = r"""
import importlib.resources, sys
import numpy as np
import tinyattn, tinyattn.functional as F
from tinyattn.gpu.cupy_flash import CU_FILES, cuda_source
assert tinyattn.__file__.startswith(sys.prefix), ("not the installed copy", tinyattn.__file__, sys.prefix)
header = (importlib.resources.files("tinyattn.gpu") / "ptx_utils.cuh").read_text()
assert "__device__" in header, "ptx_utils.cuh is empty or not CUDA C"
for name in CU_FILES:   # the text CuPy compiles: the header inlined, no #include left
    text = cuda_source(name)
    assert '#include "' not in text and len(text) > len(header), name
rng = np.random.default_rng(0)
q, k, v = rng.standard_normal((3, 2, 3, 5, 4))             # (B, H, L, d)
s = q @ k.swapaxes(-1, -2) / 2.0                           # scores / sqrt(d), d = 4
p = np.exp(s - s.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)
out = F.scaled_dot_product_attention(q, k, v).data
err = np.abs(out - p @ v).max()
assert err < 1e-12, err
print("installed ok", tinyattn.__file__)
"""


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_runs(wheel, tmp_path):
    """Install the wheel (no dependencies) into a new venv; numpy & co come from this interpreter's
    site-packages through a .pth file, which adds the folders but does not run their .pth files, so
    the checkout's editable install is not visible there."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    venv_site = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(venv_site, "_outer_deps.pth").write_text("\n".join(deps) + "\n")
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                          "--no-index", "--disable-pip-version-check", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"pip install of {wheel.name} failed:\n{res.stdout}\n{res.stderr}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    res = subprocess.run([str(py), "-c", CHECK_INSTALLED], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"the installed wheel failed:\n{res.stdout}\n{res.stderr}"
    assert "installed ok" in res.stdout and str(venv) in res.stdout, res.stdout
