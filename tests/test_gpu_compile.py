"""Compile every GPU kernel for a real H100/H200 (sm_90) without a GPU.

- Numba: ``numba.cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))`` in a subprocess with the
  simulator switched off (under the simulator there is no compiler); the PTX must contain no ``.f64``
  (a Python float literal promotes to fp64 and halved the measured speed, GPU.md) and no local
  memory (register arrays indexed at run time). Needs NVVM: the CUDA toolkit or the pip packages
  ``nvidia-nvvm`` + ``nvidia-cuda-nvrtc`` (``cuda-toolkit[nvvm,nvrtc]``); skipped without them.
- CUDA C: ``nvcc -std=c++17 -arch=sm_90 -cubin --resource-usage`` of every .cu file when nvcc is on
  PATH; no spills and no stack frame allowed.
"""
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU_DIR = ROOT / "tinyattn" / "gpu"
CU_FILES = sorted(p for p in GPU_DIR.glob("*.cu") if p.name != "flash_wgmma.cu")  # sm_90a: test_gpu_hopper.py

PTX_SCRIPT = r"""
import json, re, sys
from pathlib import Path
from numba import cuda
sys.path.insert(0, sys.argv[1])
def probe(a):
    a[0] = a[0]
try:
    cuda.compile_ptx(probe, "void(float32[::1])", cc=(9, 0))
except Exception as e:
    print(json.dumps({"skip": f"{type(e).__name__}: {e}"[:300]})); sys.exit(0)
from tinyattn.gpu.numba_flash import make_kernel, default_config, NumbaConfig
arr3 = "float32[:, :, ::1]"
sig = f"void({arr3}, {arr3}, {arr3}, {arr3}, float32[:, ::1], float32, int32, int32)"
kernels = {f"numba_flash_d{d}": make_kernel(d, default_config(d)) for d in (64, 128)}
kernels["numba_flash_d16_simulator_tiles"] = make_kernel(16, NumbaConfig(4, 4, 2, 2))
for shape in ((16, 16, 4, 4), (8, 16, 4, 4)):   # d = 128 candidates (pad, sum_once; NOTES.md session 20 nb128)
    kernels["numba_flash_d128_cand_" + "_".join(map(str, shape))] = make_kernel(128, NumbaConfig(*shape, pad=1, sum_once=1))
from tinyattn.gpu.numba_backward import make_delta_kernel, make_dkdv_kernel, make_dq_kernel, default_bwd_config, BwdConfig
arr2 = "float32[:, ::1]"
extra = {}
for d, cfg in ((64, default_bwd_config(64)), (128, default_bwd_config(128)), (16, BwdConfig(4, 4, 2, 2))):
    tag = "simulator_tiles" if d == 16 else "gpu"
    extra[f"numba_bwd_delta_d{d}"] = (make_delta_kernel(d), f"void({arr3}, {arr3}, {arr2})")
    extra[f"numba_bwd_dkdv_d{d}_{tag}"] = (make_dkdv_kernel(d, cfg),
        f"void({arr3}, {arr3}, {arr3}, {arr3}, {arr2}, {arr2}, {arr3}, {arr3}, float32, int32, int32)")
    extra[f"numba_bwd_dq_d{d}_{tag}"] = (make_dq_kernel(d, cfg),
        f"void({arr3}, {arr3}, {arr3}, {arr3}, {arr2}, {arr2}, {arr3}, float32, int32, int32)")
sols = Path(sys.argv[1]) / "solutions" / "ch07_flash_gpu.py"
if sols.exists():
    import importlib.util
    spec = importlib.util.spec_from_file_location("ch07_sol", sols)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    for name, (kern, s) in mod.PTX_KERNELS.items():
        extra[name] = (kern, s)
out = {}
for name, kern in kernels.items():
    ptx, _ = cuda.compile_ptx(kern.py_func, sig, cc=(9, 0), fastmath=True)
    out[name] = {"f64": len(re.findall(r"\.f64", ptx)), "local": len(re.findall(r"\.local", ptx)), "chars": len(ptx)}
for name, (kern, s) in extra.items():
    ptx, _ = cuda.compile_ptx(kern.py_func, s, cc=(9, 0), fastmath=True)
    out[name] = {"f64": len(re.findall(r"\.f64", ptx)), "local": len(re.findall(r"\.local", ptx)), "chars": len(ptx)}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def ptx_report():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", PTX_SCRIPT, str(ROOT)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip("numba.cuda.compile_ptx needs NVVM (CUDA toolkit or pip cuda-toolkit[nvvm,nvrtc]): "
                    + report["skip"])
    return report


@pytest.mark.slow
def test_numba_kernels_compile_without_fp64_or_local_memory(ptx_report):
    assert {"numba_flash_d64", "numba_flash_d128", "numba_flash_d16_simulator_tiles", "ch07_flash_rows"} <= set(ptx_report)
    for name, r in ptx_report.items():
        assert r["chars"] > 1000, name
        assert r["f64"] == 0, f"{name}: {r['f64']} fp64 instructions in the PTX (a Python float literal?)"
    gpu_shapes = ["numba_flash_d64", "numba_flash_d128"] + [n for n in ptx_report if n.startswith("numba_bwd")]
    assert {"numba_bwd_dkdv_d64_gpu", "numba_bwd_dq_d128_gpu", "numba_bwd_delta_d64"} <= set(gpu_shapes)
    for name in gpu_shapes:
        assert ptx_report[name]["local"] == 0, f"{name}: register arrays spilled to local memory"


ALL_VARIANTS = os.environ.get("TINYATTN_ALL_GPU_VARIANTS", "0") not in ("", "0")


@functools.lru_cache(maxsize=None)
def _nvcc_report(cu: Path, all_variants: bool) -> tuple[int, str]:
    """(return code, ptxas report) of ``nvcc -arch=sm_90 -cubin --resource-usage`` on one .cu file, once per
    session (the decode occupancy test reads the same report)."""
    defines = ["-DTA_FLASH_ALL_VARIANTS"] if all_variants else []
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["nvcc", "-std=c++17", "-arch=sm_90", "-cubin", "--resource-usage", *defines,
                               "-I", str(GPU_DIR), "-o", str(Path(tmp) / "k.cubin"), str(cu)],
                              capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("cu", CU_FILES, ids=[p.name for p in CU_FILES])
def test_cuda_c_compiles_for_sm90(cu):
    """The shipped kernels. TINYATTN_ALL_GPU_VARIANTS=1 also builds the sweep variants (~1 min)."""
    rc, report = _nvcc_report(cu, ALL_VARIANTS)
    assert rc == 0, report[-3000:]
    kernels = re.findall(r"Function properties for (\w+)", report)
    assert kernels, report
    if cu.name == "flash_mma.cu":
        from tinyattn.gpu.cupy_flash import DEFAULT_VARIANT
        for d, name in DEFAULT_VARIANT.items():
            assert {f"flash_mma_f16_d{d}_{name}", f"flash_mma_bf16_d{d}_{name}"} <= set(kernels), kernels
    if cu.name == "flash_decode.cu":                    # the default split kernels are in the shipped module
        from tinyattn.gpu.decode import COOP_DEFAULT_DIMS
        for d in COOP_DEFAULT_DIMS:
            assert {f"decode_split_f16_d{d}_c4", f"decode_split_bf16_d{d}_c4", f"decode_split_f16_d{d}_w1"} <= set(kernels)
    # flash_mma_bwd.cu: two 255-register backward kernels spill 8 bytes (measured with it, NOTES.md run B2),
    # the GQA-split d = 128 kernel 12 bytes in a 16-byte frame (measured with it, NOTES.md Session 20)
    limit = 16 if cu.name == "flash_mma_bwd.cu" else 0
    for spill in re.findall(r"(\d+) bytes spill stores", report):
        assert int(spill) <= limit, report
    for frame in re.findall(r"(\d+) bytes stack frame", report):
        assert int(frame) <= limit, report


def test_cuda_sources_are_header_free():
    """NVRTC (CuPy) has no host headers: the .cu files include only our own helper header."""
    from tinyattn.gpu.cupy_flash import cuda_source

    assert {"flash_mma.cu", "flash_mma_bwd.cu"} <= {p.name for p in CU_FILES}
    for cu in CU_FILES:
        src = cuda_source(cu.name)
        assert re.findall(r'#include\s*[<"]', src) == [], cu.name
        assert "mma.sync" in cuda_source("flash_mma.cu") and "ldmatrix" in cuda_source("flash_mma.cu")


def test_variant_table_matches_cuda_source():
    """cupy_flash.VARIANTS (used to size shared memory and the block) = the instantiations in flash_mma.cu."""
    from tinyattn.gpu.cupy_flash import DEFAULT_VARIANT, VARIANTS, cuda_source

    src = cuda_source("flash_mma.cu")
    inst = re.findall(r"^TA_FLASH_MMA_BOTH(_L)?\((\d+), (\d+), (\d+), (\d+), (\w+), (\w+), (\d+), (\d+), (\w+), (\w+)\)", src, re.M)
    table = {(int(d), name): (int(nw), int(mt), int(bk), int(st)) for _l, d, nw, mt, bk, _q, _e, st, _b, _r, name in inst}
    assert table == {(d, n): v for d, t in VARIANTS.items() for n, v in t.items()}
    for d, name in DEFAULT_VARIANT.items():
        assert name in VARIANTS[d]
    for split, d, nw, mt, bk, q, e, st, b, r, name in inst:     # the name spells the template arguments
        w, m, k, qq, ee, rr, ll, ss, bb = re.fullmatch(r"w(\d)m(\d)k(\d+)(q?)(e?)(r?)(l?)(?:s(\d))?(?:_b(\d))?", name).groups()
        assert (w, m, k, bool(qq), bool(ee), bool(rr), bool(ll), ss or "2", bb or "1") == \
            (nw, mt, bk, q == "true", e == "true", r == "true", bool(split), st, b), name


def test_every_header_is_compiled():
    """Each .cuh is #included (directly or through another .cuh) by a .cu file, so the nvcc checks above
    (and test_gpu_hopper.py's for flash_wgmma.cu) compile it."""
    included, todo = set(), sorted(GPU_DIR.glob("*.cu"))
    while todo:
        src = todo.pop().read_text()
        for name in re.findall(r'#include\s+"(\w+\.cuh)"', src):
            if name not in included:
                included.add(name)
                todo.append(GPU_DIR / name)
    assert {p.name for p in GPU_DIR.glob("*.cuh")} <= included


def test_decode_variant_table_matches_cuda_source():
    """decode.SPLIT_KERNELS (names, shared memory and grid of each split kernel) = the instantiations of
    flash_decode.cu: TA_DECODE_SPLIT(D, BF16, T, wpc, nwb, stages, keys per tile, suffix) -> w<wpc><suffix>,
    TA_DECODE_COOP(D, BF16, T, stages, suffix) -> <suffix> with CW warps sharing CBK-key tiles; the one-warp
    kernels after #ifdef TA_FLASH_ALL_VARIANTS are decode.SWEEP_ONLY; the cooperative kernel is shipped
    (TA_DECODE_COOP_BOTH(d) before the #ifdef) exactly at decode.COOP_DEFAULT_DIMS, and after it at the
    other head dims (decode.sweep_only)."""
    from tinyattn.gpu.cupy_flash import HEAD_DIMS
    from tinyattn.gpu.decode import COOP_DEFAULT_DIMS, SPLIT_KERNELS, SWEEP_ONLY, sweep_only

    src = (GPU_DIR / "flash_decode.cu").read_text()
    coop_src = (GPU_DIR / "flash_decode_coop.cuh").read_text()
    cw, cbk = map(int, re.search(r"constexpr int CW = (\d+), CBK = (\d+);", coop_src).groups())
    table = {(int(w), int(n), int(st), int(bk), False): f"w{w}{suf}" for w, n, st, bk, suf in
             re.findall(r"^\s+TA_DECODE_SPLIT\(D, BF16, T, (\d+), (\d+), (\d+), (\d+), (\w*)\)", src, re.M)}
    coops = re.findall(r"^\s+TA_DECODE_COOP\(D, (false|true), (f16|bf16), (\d+), (\w+)\)", src, re.M)
    assert sorted((b, t) for b, t, _, _ in coops) == [("false", "f16"), ("true", "bf16")], coops
    table.update({(cw, cw, int(st), cbk, True): suf for _, _, st, suf in coops})
    assert table == SPLIT_KERNELS
    shipped_part, sweep_part = src.split("#ifdef TA_FLASH_ALL_VARIANTS")
    shipped = shipped_part.split("#define TA_DECODE(D, BF16, T)")[1]
    assert {n for n in SPLIT_KERNELS.values() if n not in SWEEP_ONLY and n != "c4"} == {
        f"w{w}{suf}" for w, suf in re.findall(r"TA_DECODE_SPLIT\(D, BF16, T, (\d+), \d+, \d+, \d+, (\w*)\)", shipped)}
    coop_dims = lambda part: {int(x) for x in re.findall(r"^TA_DECODE_COOP_BOTH\((\d+)\)$", part, re.M)}
    assert coop_dims(shipped_part) == set(COOP_DEFAULT_DIMS)
    assert coop_dims(sweep_part.split("#endif")[0]) == set(HEAD_DIMS) - set(COOP_DEFAULT_DIMS)
    for d in HEAD_DIMS:
        assert sweep_only("c4", d) == (d not in COOP_DEFAULT_DIMS)
        assert all(sweep_only(n, d) for n in SWEEP_ONLY)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_decode_occupancy_fallback_matches_ptxas():
    """flash_decode.cu with the sweep-only kernels builds without spills, and decode.PER_SM_FALLBACK (blocks
    per SM when CuPy has no occupancy call; it sizes the chunk rule's slots) = what the H200 can hold at
    d = 128: min over 64 K registers (ptxas count rounded up to 8 per thread), 228 KB of shared memory
    (+1 KB per block), 64 warps."""
    from tinyattn.gpu.decode import PER_SM_FALLBACK, SPLIT_KERNELS, split_smem

    rc, report = _nvcc_report(GPU_DIR / "flash_decode.cu", True)      # the sweep-only kernels too
    assert rc == 0, report[-3000:]
    for spill in re.findall(r"(\d+) bytes (?:spill stores|stack frame)", report):
        assert int(spill) == 0, report
    regs = dict(re.findall(r"Function properties for (\w+)\n[^\n]*\n\s*ptxas info\s*: Used (\d+) registers", report))
    assert regs, report[-2000:]
    for key, name in SPLIT_KERNELS.items():
        wpc, nwb, stages, bk, coop = key
        r = int(regs[f"decode_split_f16_d128_{name}"])
        by_regs = 65536 // (-(-r // 8) * 8 * 32 * nwb)
        by_smem = 228 * 1024 // (split_smem(128, wpc, nwb, stages, bk, coop) + 1024)
        assert PER_SM_FALLBACK[name] == min(by_regs, by_smem, 64 // nwb), (name, r, by_regs, by_smem)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_d256_forward_builds_without_spills():
    """d = 256 (-DTA_FLASH_D256, not yet run on a GPU): every variant compiles for sm_90 with no spill and no
    stack frame; the default build does not contain it, and the public entry point refuses d = 256."""
    from tinyattn.gpu import cupy_flash
    cu = GPU_DIR / "flash_mma.cu"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["nvcc", "-std=c++17", "-arch=sm_90", "-cubin", "--resource-usage", "-DTA_FLASH_D256",
                               "-I", str(GPU_DIR), "-o", str(Path(tmp) / "k.cubin"), str(cu)],
                              capture_output=True, text=True, timeout=300)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-3000:]
    props = dict(re.findall(r"Function properties for (\w+)\n\s*(\d+ bytes stack frame, \d+ bytes spill stores)", report))
    for name in cupy_flash.VARIANTS[256]:
        for kind in ("f16", "bf16"):
            assert props[f"flash_mma_{kind}_d256_{name}"] == "0 bytes stack frame, 0 bytes spill stores", report
    assert cupy_flash.shipped_variants(256) == frozenset() and 256 not in cupy_flash.MMA_HEAD_DIMS
    with pytest.raises(ValueError, match="variant"):
        cupy_flash.get_kernel("f16", 256)


def _swz(d: int, row: int, col: int) -> int:
    """flash_mma_tiles.cuh swz<D>(row, col), written again: element offset of (row, col) in a swizzled tile."""
    x = (row & 7) if d % 64 == 0 else ((row >> 1) & 3)
    return row * d + (((col >> 3) ^ x) << 3)


@pytest.mark.parametrize("rows,nt", [(32, 128), (64, 128), (128, 128), (64, 256), (128, 256)])
def test_split_loader_covers_every_chunk_once(rows, nt):
    """The SPLIT loader of flash_mma_tiles.cuh (d = 96, 'l' variants): thread tid copies chunk (tid % 8) of rows
    tid / 8 + i * nt / 8 and chunk 8 + tid % 4 of rows tid / 4 + i * nt / 4 to base + i * stride * d; each
    (row, chunk) of the tile is copied exactly once, and base + i * stride * d is where swz puts that row."""
    d, ca = 96, 8
    seen = {}
    for tid in range(nt):
        for part, (cpr, c0) in enumerate(((ca, 0), (4, ca))):
            stride, r, c = nt // cpr, tid // cpr, c0 + tid % cpr
            base = _swz(d, r, 8 * c)
            for i in range(rows // stride):
                row = r + i * stride
                assert base + i * stride * d == _swz(d, row, 8 * c), (tid, part, i)
                seen[(row, c)] = seen.get((row, c), 0) + 1
    assert seen == {(r, c): 1 for r in range(rows) for c in range(d // 8)}


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_d96_candidates_build_without_spills():
    """The session-21 d = 96 candidates (-DTA_FLASH_D96, not yet run on a GPU): every one compiles for sm_90 with
    no spill and no stack frame; the shipped d = 96 variants and the default are unchanged by them."""
    from tinyattn.gpu import cupy_flash
    cands = sorted(set(cupy_flash.VARIANTS[96]) - cupy_flash.shipped_variants(96))
    assert cands and all(cupy_flash.guard_define(96, v) == "-DTA_FLASH_D96" for v in cands)
    assert cupy_flash.shipped_variants(96) == {"w4m2k64er", "w4m2k32er"} and cupy_flash.DEFAULT_VARIANT[96] == "w4m2k64er"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["nvcc", "-std=c++17", "-arch=sm_90", "-cubin", "--resource-usage", "-DTA_FLASH_D96",
                               "-I", str(GPU_DIR), "-o", str(Path(tmp) / "k.cubin"), str(GPU_DIR / "flash_mma.cu")],
                              capture_output=True, text=True, timeout=300)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-3000:]
    props = dict(re.findall(r"Function properties for (\w+)\n\s*(\d+ bytes stack frame, \d+ bytes spill stores)", report))
    for name in cands:
        for kind in ("f16", "bf16"):
            assert props[f"flash_mma_{kind}_d96_{name}"] == "0 bytes stack frame, 0 bytes spill stores", report


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_gqa_split_fast_kernel_builds():
    """Session 21 (gqa): the sweep-only dK/dV kernel w8m1q64xfg (the shipped xf kernel with the GQA group split,
    bwd_dkdv_fast.cuh SPLIT) builds for sm_90a under -DTA_BWD_GQA_FAST with at most the spill of the shipped
    GQA-split kernel w8q64pga in the same build (12 bytes, 16-byte frame; one reload per query tile), 0 without
    atomic dQ; the shipped build (no define) does not contain it."""
    cu = GPU_DIR / "flash_mma_bwd.cu"
    reports = {}
    for defines in ((), ("-DTA_BWD_GQA_FAST",)):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(["nvcc", "-std=c++17", "-gencode=arch=compute_90a,code=sm_90a", "-cubin",
                                   "--resource-usage", *defines, "-I", str(GPU_DIR), "-o", str(Path(tmp) / "k.cubin"),
                                   str(cu)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        reports[defines] = dict(re.findall(r"Function properties for (\w+)\n\s*(\d+ bytes stack frame, \d+ bytes "
                                           r"spill stores)", proc.stdout + proc.stderr))
    new = {f"fa_bwd_dkdv_{t}_d128_w8m1q64xfg{m}" for t in ("f16", "bf16") for m in "as"}
    assert not new & set(reports[()])
    props = reports[("-DTA_BWD_GQA_FAST",)]
    for t in ("f16", "bf16"):
        ref = re.findall(r"\d+", props[f"fa_bwd_dkdv_{t}_d128_w8q64pga"])
        assert [int(x) for x in re.findall(r"\d+", props[f"fa_bwd_dkdv_{t}_d128_w8m1q64xfga"])] <= [int(x) for x in ref]
        assert props[f"fa_bwd_dkdv_{t}_d128_w8m1q64xfgs"] == "0 bytes stack frame, 0 bytes spill stores"
    assert {n: v for n, v in props.items() if n not in new} == reports[()]     # the other kernels: as shipped
