"""The tensor-core FlashAttention-2 backward (flash_mma_bwd.cu through tinyattn.gpu.cupy_backward).

- No GPU needed: the CUDA C compiles for sm_90 and sm_90a with no spills in the shipped kernels, its
  instantiations match the launcher's variant table, and the committed H200 run
  (benchmarks/results/gpu_backward_h200.json) checked every timed size before timing it.
- On a GPU (skipped otherwise): dQ, dK, dV against chapter 06's NumPy backward in float64, GQA/MQA,
  ragged and Nq != Nk, both dQ modes, NaN-poisoned outputs.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CU = ROOT / "tinyattn" / "gpu" / "flash_mma_bwd.cu"
RESULTS = ROOT / "benchmarks" / "results" / "gpu_backward_h200.json"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("arch", ["sm_90", "sm_90a"])
def test_backward_compiles_without_spills(arch, tmp_path):
    """Every shipped kernel exists; the dK/dV kernels of the defaults spill at most 8 bytes (w4m2q32 and
    w8m1q64, NOTES.md run B2; w8m1q64xf 8 (one reload per query tile, NOTES.md Session 20: bwd2); the
    causal-GQA tiles w8q64p 0), the GQA-split d = 128 kernel with atomic dQ
    12 bytes (a 16-byte frame, NOTES.md Session 20), everything else 0."""
    from tinyattn.gpu.cupy_backward import DEFAULT_DKDV, DEFAULT_DKDV_GQA_CAUSAL, DEFAULT_DQ, DKDV_VARIANTS, HEAD_DIMS

    proc = subprocess.run(["nvcc", "-std=c++17", f"-gencode=arch=compute_{arch[3:]},code={arch}", "-cubin",
                           "--resource-usage", "-I", str(CU.parent), "-o", str(tmp_path / "k.cubin"), str(CU)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = proc.stdout + proc.stderr
    props = dict(re.findall(r"Function properties for (\w+)\n\s+(\d+) bytes stack frame", report))
    for t in ("f16", "bf16"):
        for d in HEAD_DIMS:
            names = [f"fa_bwd_pre_{t}_d{d}", f"fa_bwd_dq_convert_{t}_d{d}", f"fa_bwd_dq_{t}_d{d}_{DEFAULT_DQ[d]}",
                     f"fa_bwd_dkdv_{t}_d{d}_{DEFAULT_DKDV[d]}a", f"fa_bwd_dkdv_{t}_d{d}_{DEFAULT_DKDV[d]}s"]
            if DKDV_VARIANTS[d][DEFAULT_DKDV[d]][4] == "fastf":      # fragment-order dQ accumulator
                names.append(f"fa_bwd_dq_convert_frag_{t}_d{d}")
            if d in DEFAULT_DKDV_GQA_CAUSAL:
                names += [f"fa_bwd_dkdv_{t}_d{d}_{DEFAULT_DKDV_GQA_CAUSAL[d]}{g}{m}" for g in ("", "g") for m in "as"]
            for n in names:
                assert n in props, f"{n} missing from {sorted(props)}"
                limit = 16 if n.endswith("ga") else 8 if "dkdv" in n else 0
                assert int(props[n]) <= limit, f"{n}: {props[n]}-byte stack frame (register spill)"


def test_variant_tables_match_instantiations():
    from tinyattn.gpu.cupy_backward import DEFAULT_DKDV, DEFAULT_DQ, DKDV_VARIANTS, DQ_VARIANTS

    src = CU.read_text()
    dkdv = {(int(d), n): (int(w), int(m), int(q), k == "true", "reg") for d, w, m, q, k, n in
            re.findall(r"^TA_BWD_DKDV_BOTH\((\d+), (\d+), (\d+), (\d+), (\w+), (\w+)\)", src, re.M)}
    smem = {(int(d), n): (8, 1, int(q), False, "smem") for d, q, n in
            re.findall(r"^TA_BWD_DKDVP_BOTH\((\d+), (\d+), (\w+)\)", src, re.M)}
    fast = {(int(d), n): (int(w), int(m), int(q), False, "fastf" if f == "true" else "fast") for d, w, m, q, f, n in
            re.findall(r"^TA_BWD_DKDVX_BOTH\((\d+), (\d+), (\d+), (\d+), (\w+), (\w+)\)", src, re.M)}
    fastg = {(int(d), n): (int(w), int(m), int(q), False, "fastfg") for d, w, m, q, n in
             re.findall(r"^TA_BWD_DKDVXG_BOTH\((\d+), (\d+), (\d+), (\d+), (\w+)\)", src, re.M)}
    assert smem and not set(smem) & set(dkdv) and fast and not set(fast) & (set(dkdv) | set(smem))
    assert fastg and not set(fastg) & (set(dkdv) | set(smem) | set(fast))
    dkdv.update(smem)
    dkdv.update(fast)
    dkdv.update(fastg)
    dq = {(int(d), n): (int(w), int(b)) for d, w, b, n in re.findall(r"^TA_BWD_DQ_BOTH\((\d+), (\d+), (\d+), (\w+)\)", src, re.M)}
    assert dkdv == {(d, n): v for d, t in DKDV_VARIANTS.items() for n, v in t.items()}
    assert dq == {(d, n): v for d, t in DQ_VARIANTS.items() for n, v in t.items()}
    for (d, n), (w, m, q, k, layout) in dkdv.items():          # the name spells the template arguments
        assert n == {"reg": f"w{w}m{m}q{q}{'r' if k else ''}", "smem": f"w8q{q}p", "fast": f"w{w}m{m}q{q}x",
                     "fastf": f"w{w}m{m}q{q}xf", "fastfg": f"w{w}m{m}q{q}xfg"}[layout], n
    shipped = src.split("#ifdef TA_FLASH_ALL_VARIANTS")[0]
    assert "TA_BWD_DKDVXG_BOTH(1" not in shipped          # the GQA-split fast kernel is sweep-only (Session 21)
    from tinyattn.gpu.cupy_backward import DEFAULT_DKDV_GQA_CAUSAL
    for d in DEFAULT_DKDV:
        assert re.search(rf"^TA_BWD_DKDV[PX]?_BOTH\({d}, .*{DEFAULT_DKDV[d]}\)", shipped, re.M)
        if DKDV_VARIANTS[d][DEFAULT_DKDV[d]][4] == "fastf":     # its dQ convert kernel ships too
            assert re.search(rf"^TA_BWD_CONVERT_FRAG\(f16, {d}, ", shipped, re.M)
    for d, n in DEFAULT_DKDV_GQA_CAUSAL.items():     # causal GQA tiles and their group-split kernels
        assert re.search(rf"^TA_BWD_DKDVP_BOTH\({d}, .*{n}\)", shipped, re.M)
        assert re.search(rf"^TA_BWD_DKDVP_SPLIT_BOTH\({d}, .*{n}\)", shipped, re.M)
        assert re.search(rf"^TA_BWD_DQ_BOTH\({d}, .*{DEFAULT_DQ[d]}\)", shipped, re.M)


def test_default_tiles_and_gqa_split():
    """Which tiles and group split run when the caller names none (no GPU needed)."""
    from tinyattn.gpu.cupy_backward import DEFAULT_DKDV, auto_gqa_split, default_variant

    assert default_variant(128, 1, True) == DEFAULT_DKDV[128] and default_variant(128, 8, False) == DEFAULT_DKDV[128]
    gq = default_variant(128, 8, True)
    assert gq != DEFAULT_DKDV[128]
    assert [auto_gqa_split(g, True, 128, gq) for g in (1, 2, 6, 8, 3)] == [1, 2, 2, 4, 1]
    assert auto_gqa_split(8, False, 128, gq) == 1                      # non-causal: the split did not pay
    assert auto_gqa_split(8, True, 128, DEFAULT_DKDV[128]) == 1        # register layout: no split kernels
    assert default_variant(64, 8, True) == DEFAULT_DKDV[64]
    # Session 21: the sweep-only xf kernel with a group split follows w8q64p's rule; no default names it
    assert [auto_gqa_split(g, True, 128, "w8m1q64xfg") for g in (1, 2, 6, 8, 3)] == [1, 2, 2, 4, 1]
    assert auto_gqa_split(8, False, 128, "w8m1q64xfg") == 1
    assert "w8m1q64xfg" not in {default_variant(128, g, c) for g in (1, 8) for c in (False, True)}


def test_committed_results():
    """The committed H200 run: every check passed (NaN-poisoned outputs, float64 reference), each timed
    (d, causal, GQA) has a check at that size, records follow DESIGN.md's schema plus `pass`."""
    data = json.loads(RESULTS.read_text())
    assert "H200" in data["gpu"] and isinstance(data["seed"], int)
    bad = [c for c in data["checks"] if not c["ok"]]
    assert bad == []
    checked = {(c["d"], c["causal"], c["Hkv"] != c["H"]) for c in data["checks"]
               if c.get("timed_size") and c.get("what") == "backward"}
    dims = {c["d"] for c in data["checks"] if c.get("what") == "backward"}
    assert {32, 64, 96, 128} <= dims
    assert any(c["Hkv"] == 1 and c["H"] > 1 for c in data["checks"])        # MQA
    for r in data["results"]:
        assert set("impl dtype B H N d causal ms tflops pass".split()) <= set(r)
        assert r["pass"] in ("fwd", "bwd", "fwd_bwd")
        if r["impl"].startswith("cupy_"):
            assert (r["d"], r["causal"], r["Hkv"] != r["H"]) in checked, r
        mult = {"fwd": 1.0, "bwd": 2.5, "fwd_bwd": 3.5}[r["pass"]]
        flops = mult * 4 * r["B"] * r["H"] * r["N"] ** 2 * r["d"] / (2 if r["causal"] else 1)
        assert abs(flops / r["ms"] / 1e9 - r["tflops"]) < 1e-6 * r["tflops"]
    impls = {r["impl"] for r in data["results"]}
    assert {"cupy_fp16_mma", "cupy_bf16_mma", "torch_sdpa_flash"} <= impls


from _gpu import cupy_or_skip as _gpu  # noqa: E402


@pytest.mark.parametrize("dq_mode", ["atomic", "separate"])
@pytest.mark.parametrize("d,H,Hkv,nq,nk,causal", [(64, 2, 2, 150, 150, True), (128, 4, 2, 70, 131, True),
                                                  (32, 4, 1, 131, 70, False), (96, 2, 2, 100, 100, False)])
def test_backward_matches_chapter06(dq_mode, d, H, Hkv, nq, nk, causal):
    cp = _gpu()
    from tinyattn.flash import flash_attention, flash_attention_backward
    from tinyattn.gpu.cupy_backward import launch_backward

    rng = np.random.default_rng(1300 + d)
    q = rng.standard_normal((2, H, nq, d)).astype(np.float16)
    k, v = (rng.standard_normal((2, Hkv, nk, d)).astype(np.float16) for _ in range(2))
    do = rng.standard_normal((2, H, nq, d)).astype(np.float16)
    g = H // Hkv
    k64, v64 = (np.repeat(x.astype(np.float64), g, axis=1) for x in (k, v))
    out, lse = flash_attention(q.astype(np.float64), k64, v64, is_causal=causal)
    ref = flash_attention_backward(q.astype(np.float64), k64, v64, out, lse, do.astype(np.float64), is_causal=causal)
    ref_dq, ref_dk, ref_dv = ref[:3]
    ref_dk, ref_dv = (x.reshape(2, Hkv, g, nk, d).sum(2) for x in (ref_dk, ref_dv))    # GQA: sum the group
    cq, ck, cv, co, cdo = (cp.asarray(x) for x in (q, k, v, out.astype(np.float16), do))
    cl = cp.asarray(lse.astype(np.float32))
    dq, dk, dv = (cp.full(x.shape, np.nan, np.float16) for x in (q, k, v))
    launch_backward(*(x.reshape(-1, x.shape[2], d) for x in (cq, ck, cv, co, cdo)), cl.reshape(-1, nq),
                    *(x.reshape(-1, x.shape[2], d) for x in (dq, dk, dv)), "f16", group=g, is_causal=causal,
                    dq_mode=dq_mode)
    for name, got, want in (("dq", dq, ref_dq), ("dk", dk, ref_dk), ("dv", dv, ref_dv)):
        got = cp.asnumpy(got).astype(np.float64)
        assert np.isfinite(got).all(), name
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert rel < 5e-3, f"{name}: relative error {rel:.2e}"


def test_backward_rejects_bad_input():
    cp = _gpu()
    from tinyattn.gpu.cupy_backward import flash_backward_mma

    q = cp.zeros((1, 4, 16, 64), cp.float16)
    kv = cp.zeros((1, 3, 16, 64), cp.float16)
    lse = cp.zeros((1, 4, 16), cp.float32)
    with pytest.raises(ValueError, match="multiple"):
        flash_backward_mma(q, kv, kv, q, q, lse)
    with pytest.raises(TypeError, match="float16"):
        flash_backward_mma(q.astype(cp.float32), q, q, q, q, lse)
    with pytest.raises(ValueError, match="lse"):
        flash_backward_mma(q, q, q, q, q, lse[..., :8])


@pytest.mark.parametrize("d,H,Hkv,causal", [(64, 4, 2, True), (128, 4, 1, False)])
def test_gqa_forward_matches_repeated_kv(d, H, Hkv, causal):
    """The mma forward with fewer kv heads = chapter 06's flash on K/V repeated G times (float64)."""
    cp = _gpu()
    from tinyattn.flash import flash_attention
    from tinyattn.gpu import cupy_flash_attention

    rng = np.random.default_rng(1313 + d)
    q = rng.standard_normal((2, H, 77, d)).astype(np.float16)
    k, v = (rng.standard_normal((2, Hkv, 140, d)).astype(np.float16) for _ in range(2))
    out, lse = cupy_flash_attention(cp.asarray(q), cp.asarray(k), cp.asarray(v), is_causal=causal, return_lse=True)
    g = H // Hkv
    ref, ref_lse = flash_attention(q.astype(np.float64), *(np.repeat(x.astype(np.float64), g, axis=1) for x in (k, v)),
                                   is_causal=causal)
    out = cp.asnumpy(out).astype(np.float64)
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 5e-3
    np.testing.assert_allclose(cp.asnumpy(lse), ref_lse, atol=5e-3, rtol=2e-3)


@pytest.mark.parametrize("causal,split", [(True, 1), (True, 2), (True, None), (False, 4)])
def test_gqa_split_fast_matches_float64(causal, split):
    """Session 21 (sweep-only kernel w8m1q64xfg, built by -DTA_FLASH_ALL_VARIANTS): GQA 4:1 with the group
    split over 1, 2 or (auto) 4 blocks, ragged Nq != Nk, NaN-poisoned outputs, against chapter 06's NumPy
    backward in float64 (dK, dV summed over the group)."""
    cp = _gpu()
    from tinyattn.flash import flash_attention, flash_attention_backward
    from tinyattn.gpu.cupy_backward import launch_backward

    rng = np.random.default_rng(2121 + (split or 0) + 10 * causal)
    B, H, Hkv, nq, nk, d = 2, 8, 2, 150, 211, 128
    q = rng.standard_normal((B, H, nq, d)).astype(np.float16)
    k, v = (rng.standard_normal((B, Hkv, nk, d)).astype(np.float16) for _ in range(2))
    do = rng.standard_normal((B, H, nq, d)).astype(np.float16)
    g = H // Hkv
    k64, v64 = (np.repeat(x.astype(np.float64), g, axis=1) for x in (k, v))
    out, lse = flash_attention(q.astype(np.float64), k64, v64, is_causal=causal)
    ref = flash_attention_backward(q.astype(np.float64), k64, v64, out, lse, do.astype(np.float64), is_causal=causal)
    ref_dq = ref[0]
    ref_dk, ref_dv = (x.reshape(B, Hkv, g, nk, d).sum(2) for x in ref[1:3])
    cq, ck, cv, co, cdo = (cp.asarray(x) for x in (q, k, v, out.astype(np.float16), do))
    cl = cp.asarray(lse.astype(np.float32))
    dq, dk, dv = (cp.full(x.shape, np.nan, np.float16) for x in (q, k, v))
    launch_backward(*(x.reshape(-1, x.shape[2], d) for x in (cq, ck, cv, co, cdo)), cl.reshape(-1, nq),
                    *(x.reshape(-1, x.shape[2], d) for x in (dq, dk, dv)), "f16", group=g, is_causal=causal,
                    variant="w8m1q64xfg", gqa_split=split)
    for name, got, want in (("dq", dq, ref_dq), ("dk", dk, ref_dk), ("dv", dv, ref_dv)):
        got = cp.asnumpy(got).astype(np.float64)
        assert np.isfinite(got).all(), f"{name}: NaN left (split={split}, causal={causal})"
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert rel < 5e-3, f"{name}: relative error {rel:.2e} (split={split}, causal={causal})"
