"""Graded tests for chapter 07 (FlashAttention in Numba-CUDA), run in the CUDA simulator
(tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1): the tile count against brute force over every
(query, key) pair, the kernel against dense float64 attention, and the kernel's types as a real GPU
compiler sees them (no float64 anywhere: the chapter's first rule).

Inputs are deterministic (``np.random.default_rng(SEED)``, the seed is printed on failure); sizes are
ragged (not multiples of BLOCK), with nq != nk in both directions.
"""
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import tinyattn
from tinyattn.grading.check import assert_close, check
from tinyattn.grading.guard import DENY_ALWAYS
from tinyattn.grading.plugin import guarded_script
from tinyattn.grading.proxy import call_many

CTYPES_EVENTS = tuple(sorted(e for e in DENY_ALWAYS if e.startswith("ctypes.")))

MOD = "ch07_flash_gpu"


def _dense(q, k, v, causal):
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    nq, nk = s.shape[-2:]
    ok = np.arange(nk)[None, :] <= np.arange(nq)[:, None] + (nk - nq) if causal else np.ones((nq, nk), bool)
    s = np.where(ok, s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.where(ok, np.exp(s - np.where(np.isfinite(m), m, 0)), 0.0)
    l = e.sum(-1, keepdims=True)
    return (e / np.where(l == 0, 1, l)) @ v


def _brute_tiles(q0, nq, nk, block, causal):
    """Smallest n such that key tiles [0, n) hold every key that rows q0..min(q0+block, nq)-1 may see,
    found from the (query, key) mask itself."""
    if not causal:
        return (nk + block - 1) // block
    rows = np.arange(q0, min(q0 + block, nq))[:, None]
    allowed = np.arange(nk)[None, :] <= rows + (nk - nq)
    cols = np.nonzero(allowed.any(axis=0))[0]
    return int(cols.max() // block + 1) if cols.size else 0


@pytest.mark.points(2)
def test_n_key_tiles_matches_brute_force(impl):
    """Every query block of every size up to 24 x 24 (blocks 1..8): short last query AND key blocks,
    nk a multiple of the block or not, nq < nk and nq > nk (early blocks that see no key)."""
    ex = impl(MOD)
    cases = [(q0, nq, nk, block, causal) for nq in range(1, 25) for nk in range(1, 25) for block in range(1, 9)
             for q0 in range(0, nq, block) for causal in (True, False)]
    for (q0, nq, nk, block, causal), got in zip(cases, call_many(ex.n_key_tiles, cases), strict=True):
        want = _brute_tiles(q0, nq, nk, block, causal)
        check(got == want, f"n_key_tiles(q0={q0}, nq={nq}, nk={nk}, block={block}, causal={causal})",
              f"returned {got!r}, expected {want}")


@pytest.mark.points(3)
def test_kernel_matches_dense(impl):
    """Non-causal: needs only Exercise 07.2 (the launcher calls n_key_tiles only when causal)."""
    ex = impl(MOD)
    SEED = 1701
    rng = np.random.default_rng(SEED)
    for n, d in [(37, 8), (19, 16)]:                                  # ragged: not a multiple of BLOCK
        q, k, v = (rng.standard_normal((2, n, d)).astype(np.float32) for _ in range(3))
        assert_close(f"flash_attention_rows(q, k, v (2, {n}, {d}))", ex.flash_attention_rows(q, k, v),
                     _dense(q, k, v, False), seed=SEED, atol=2e-5, rtol=1e-4)


@pytest.mark.points(3)
def test_kernel_causal_and_empty_rows(impl):
    ex = impl(MOD)
    SEED = 1702
    rng = np.random.default_rng(SEED)
    for nq, nk, d in [(35, 13, 8), (13, 35, 8)]:     # nq > nk: the first rows see no key; nq < nk: decoding
        q = rng.standard_normal((1, nq, d)).astype(np.float32)
        k, v = (rng.standard_normal((1, nk, d)).astype(np.float32) for _ in range(2))
        assert_close(f"flash_attention_rows(q (1, {nq}, {d}), k, v (1, {nk}, {d}), is_causal=True)",
                     ex.flash_attention_rows(q, k, v, is_causal=True), _dense(q, k, v, True), seed=SEED,
                     atol=2e-5, rtol=1e-4)


@pytest.mark.points(2)
def test_kernel_huge_logits_stay_finite(impl):
    ex = impl(MOD)
    SEED = 1703
    rng = np.random.default_rng(SEED)
    q, k = (rng.standard_normal((1, 20, 8)).astype(np.float32) * 60 for _ in range(2))   # logits ~ 1e4
    v = rng.standard_normal((1, 20, 8)).astype(np.float32)
    assert_close("flash_attention_rows with logits ~ 1e4, is_causal=True", ex.flash_attention_rows(q, k, v, is_causal=True),
                 _dense(q, k, v, True), seed=SEED, atol=1e-4, rtol=1e-3)


KERNEL_SIGNATURE = ("void(float32[:, :, ::1], float32[:, :, ::1], float32[:, :, ::1], float32[:, :, ::1], "
                    "float32, int32, int32[::1])")

# Runs with the simulator OFF: Numba's CUDA compiler types the kernel exactly as for a real GPU (no GPU
# needed); the PTX is made too when NVVM is installed (pip cuda-toolkit[nvvm], part of the dev extras).
TYPES_SCRIPT = r"""
import importlib.util, json, re, sys
from numba.core import sigutils
from numba.cuda import compiler
spec = importlib.util.spec_from_file_location("student_ch07_types", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
py_func = mod.flash_rows_kernel.py_func
args, ret = sigutils.normalize_signature(sys.argv[2])
cres = compiler.compile_cuda(py_func, ret, args, fastmath=True, cc=(9, 0))
f64 = sorted({name for name, ty in cres.type_annotation.typemap.items() if "float64" in str(ty)})
report = {"f64_names": f64, "ptx_f64": None}
try:
    ptx, _ = compiler.compile_ptx(py_func, sys.argv[2], cc=(9, 0), fastmath=True)
    report["ptx_f64"] = len(re.findall(r"\.f64", ptx))
except Exception as exc:  # no NVVM here: the typing above already decides
    report["ptx_error"] = f"{type(exc).__name__}: {exc}"[:200]
print(json.dumps(report))
"""


@pytest.mark.points(2)
def test_kernel_is_float32_only(impl):
    """A Python float literal (0.0, 1e-9) is float64; on a GPU fp64 runs at a fraction of fp32 speed."""
    ex = impl(MOD)
    SEED = 1704
    rng = np.random.default_rng(SEED)
    q, k, v = (rng.standard_normal((1, 18, 4)).astype(np.float32) for _ in range(3))
    assert_close("flash_attention_rows(q, k, v (1, 18, 4))", ex.flash_attention_rows(q, k, v), _dense(q, k, v, False),
                 seed=SEED, atol=2e-5, rtol=1e-4)                # the kernel must work before its types count
    env = {key: val for key, val in os.environ.items()
           if key != "NUMBA_ENABLE_CUDASIM" and not key.startswith("TINYATTN_GRADE_")}
    root = str(Path(tinyattn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    with tempfile.TemporaryDirectory() as tmp:     # student code again: under the worker's guard (ctypes: NVVM)
        script = guarded_script(TYPES_SCRIPT, tmp, allow=CTYPES_EVENTS)
        proc = subprocess.run([sys.executable, "-c", script, str(Path(ex.__file__).resolve()), KERNEL_SIGNATURE],
                              env=env, capture_output=True, text=True, timeout=300, cwd=tmp, stdin=subprocess.DEVNULL)
    lines = proc.stdout.strip().splitlines()
    check(proc.returncode == 0 and lines, "flash_rows_kernel compiled for a real GPU (sm_90)",
          "does not compile: " + (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:300])
    report = json.loads(lines[-1])
    names = report["f64_names"]
    user = sorted({n.split(".")[0] for n in names if not n.startswith("$")})    # s.1, s.2 are versions of s
    check(not names, "flash_rows_kernel", f"float64 values in the kernel: variables {user} and "
          f"{sum(n.startswith('$') for n in names)} temporaries (a Python float literal such as 0.0 is float64; use the "
          "module's float32 constants ZERO, ONE, NEG_INF or np.float32(...))")
    check(report["ptx_f64"] in (None, 0), "flash_rows_kernel", f"{report['ptx_f64']} .f64 instructions in the PTX")
