"""CPU checks of the tensor-core backward's Python plumbing (no GPU, no CuPy, no torch needed).

- ``cupy_backward.launch_backward`` with a fake ``cupy`` (NumPy arrays, kernels that record their launch):
  which kernels, grids, shared memory and accumulators each variant launches — the sweep-only GQA-split fast
  kernel w8m1q64xfg (Session 21) and, unchanged, the shipped defaults; every launched dK/dV kernel name is an
  instantiation of flash_mma_bwd.cu.
- a pure-Python model of the SPLIT index arithmetic of bwd_dkdv_fast.cuh (heads visited, fp32 dK/dV positions).
- ``benchmarks/gpu_backward_gqa.py`` run end to end with cupy / torch replaced by mocks and the GPU steps
  (checks, timing) stubbed: the variant lists, records, JSON and table.
"""
import json
import math
import re
import runpy
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = (ROOT / "tinyattn" / "gpu" / "flash_mma_bwd.cu").read_text()


def _instantiated():
    """dK/dV kernel suffixes (without f16/bf16 and the dQ-mode letter) of the .cu: shipped and sweep-only."""
    names = {}
    for part, tag in zip(re.split(r"^#if.*$", SRC, flags=re.M), ("shipped", "sweep", "sweep")):
        for m in re.finditer(r"^TA_BWD_DKDV\w*_BOTH\(([^)]*)\)", part, re.M):
            macro, name = m.group(0).split("(")[0], m.group(1).split(", ")[-1]
            names[name + ("g" if "SPLIT" in macro else "")] = tag
    return names


def _launch(monkeypatch, *, group, causal, variant=None, gqa_split=None, nq=300, nk=300, d=128, bhkv=2):
    from tinyattn.gpu import cupy_backward as cb

    log = []

    class Kernel:
        def __init__(self, name, all_v):
            self.name, self.all_v, self.max_dynamic_shared_size_bytes = name, all_v, 0

        def __call__(self, grid, block, args, shared_mem=0):
            log.append(types.SimpleNamespace(name=self.name, all_v=self.all_v, grid=grid, block=block, args=args,
                                             smem=shared_mem))

    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(empty=np.empty, zeros=np.zeros, float32=np.float32))
    monkeypatch.setattr(cb, "_module", lambda all_v: types.SimpleNamespace(get_function=lambda n: Kernel(n, all_v)))
    bh = bhkv * group
    q, o, do, dq = (np.zeros((bh, nq, d), np.float16) for _ in range(4))
    k, v, dk, dv = (np.zeros((bhkv, nk, d), np.float16) for _ in range(4))
    cb.launch_backward(q, k, v, o, do, np.zeros((bh, nq), np.float32), dq, dk, dv, "f16", group=group,
                       is_causal=causal, variant=variant, gqa_split=gqa_split)
    return log


@pytest.mark.parametrize("causal,split,want_z", [(True, None, 4), (True, 2, 2), (False, None, 1), (True, 8, 8)])
def test_gqa_fast_split_launches(monkeypatch, causal, split, want_z):
    from tinyattn.gpu.cupy_backward import dkdv_smem

    log = _launch(monkeypatch, group=8, causal=causal, variant="w8m1q64xfg", gqa_split=split)
    assert [x.name for x in log] == ["fa_bwd_pre_f16_d128", "fa_bwd_dkdv_f16_d128_w8m1q64xfga"] + \
        ["fa_bwd_dq_convert_frag_f16_d128"] * 3                      # dK, dV (fp32 sums), then dQ
    kern = log[1]
    assert _instantiated()["w8m1q64xfg"] == "sweep" and kern.all_v          # built only with the sweep module
    assert kern.grid == (3, 2, want_z) and kern.block == (256,) and kern.smem == dkdv_smem(128, 128, 64, True, "fastfg")
    dkacc, dvacc = kern.args[-2:]
    assert len(kern.args) == 17 and dkacc.shape == dvacc.shape == (2, 384, 128) and dkacc is not dvacc
    assert dkacc.dtype == np.float32 and not dkacc.any()                     # zeroed: the blocks add into them
    for conv, acc, out in zip(log[2:4], (dkacc, dvacc), kern.args[6:8]):     # nk rows, BHkv heads, scale 1
        assert conv.args[0] is acc and conv.args[1] is out and conv.args[2:] == (300, 2, 1.0)
        assert conv.grid == (-(-2 * 384 * 128 // 4 // 256),)
    assert log[4].args[0] is kern.args[8] and kern.args[8].shape == (16, 384, 128)      # dQ: nq rows, BH heads
    assert log[4].args[2:4] == (300, 16) and math.isclose(log[4].args[4], 1 / math.sqrt(128), rel_tol=1e-6)


@pytest.mark.parametrize("causal,want", [(True, "fa_bwd_dkdv_f16_d128_w8q64pga"), (False, "fa_bwd_dkdv_f16_d128_w8m1q64xfa")])
def test_gqa_defaults_unchanged(monkeypatch, causal, want):
    log = _launch(monkeypatch, group=8, causal=causal)
    dkdv = [x for x in log if "dkdv" in x.name]
    assert [x.name for x in dkdv] == [want] and not dkdv[0].all_v
    assert dkdv[0].grid[2] == (4 if causal else 1)
    suffix = want.split("d128_")[1][:-1]
    assert _instantiated()[suffix] == "shipped"


def test_gqa_split_rejected(monkeypatch):
    with pytest.raises(ValueError, match="gqa_split"):
        _launch(monkeypatch, group=8, causal=True, variant="w8m1q64xfg", gqa_split=3)
    with pytest.raises(ValueError, match="gqa_split"):
        _launch(monkeypatch, group=8, causal=True, variant="w8m1q64xf", gqa_split=2)


def test_gqa_benchmark_plumbing_mocked(monkeypatch, tmp_path):
    """benchmarks/gpu_backward_gqa.py with cupy / torch mocked: every timed variant is checked at the timed
    size, the shipped choice, the MHA kernel and torch are in the same interleaved set, records and JSON."""
    def tensor(*shape, **kw):        # a mock tensor that knows its shape (run_ours unpacks it)
        t = mock.MagicMock()
        t.shape = tuple(shape)
        t.to.return_value = t.reshape.return_value = t
        return t

    torch = mock.MagicMock()
    torch.randn.side_effect = tensor
    torch.empty_like.side_effect = lambda x: tensor(*x.shape)
    torch.cuda.get_device_properties.return_value = types.SimpleNamespace(name="NVIDIA H200 (mock)",
                                                                          multi_processor_count=132)
    for name, mod in (("cupy", mock.MagicMock()), ("torch", torch), ("torch.nn", torch.nn),
                      ("torch.nn.functional", torch.nn.functional), ("torch.nn.attention", torch.nn.attention)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    for name in ("gpu_backward", "gpu_backward_check"):     # imported here against the mocks, dropped after
        monkeypatch.delitem(sys.modules, name, raising=False)
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        monkeypatch.delitem(sys.modules, name)
    import gpu_backward
    import gpu_backward_check
    from tinyattn.gpu import cupy_backward as cb, cupy_flash

    checks, launches, sets = [], [], []

    def check_case(gen, B, H, Hkv, nq, nk, d, causal, dtype, heads=None, with_torch=True, timed=False, variant=None,
                   dq_variant=None):
        base = variant.partition("+s")[0]
        assert base in cb.DKDV_VARIANTS[d] and (H // Hkv) % gpu_backward_check.eff_split(variant, d, H // Hkv, causal) == 0
        checks.append((H, Hkv, nq, causal, dtype, variant, timed))
        e = {"rel": 1e-4, "max_abs": 1e-3, "finite": True}
        return [{"what": "backward", "impl": "x", "dq_mode": "atomic", "dtype": dtype, "H": H, "Hkv": Hkv, "Nq": nq,
                 "Nk": nk, "d": d, "causal": causal, "timed_size": timed, "ok": True, "dq": e, "dk": e, "dv": e}]

    def bench(fns, rounds):
        sets.append(list(fns))
        for f in fns.values():
            f()
        return {n: 1.0 + 0.1 * i for i, n in enumerate(fns)}

    monkeypatch.setattr(gpu_backward_check, "check_case", check_case)
    monkeypatch.setattr(gpu_backward, "bench_interleaved", bench)
    monkeypatch.setattr(gpu_backward, "versions", lambda: {"mock": True})
    monkeypatch.setattr(cupy_flash, "launch", mock.MagicMock())
    monkeypatch.setattr(cb, "launch_backward", lambda *a, **kw: launches.append((kw["variant"], kw["gqa_split"])))
    monkeypatch.setattr(cb, "_module", cb._module)          # the script replaces it
    monkeypatch.setattr(sys, "argv", ["gpu_backward_gqa.py", "--out", str(tmp_path), "--seed", "1"])
    runpy.run_path(str(ROOT / "benchmarks" / "gpu_backward_gqa.py"), run_name="__main__")

    data = json.loads((tmp_path / "gpu_backward_gqa_h200.json").read_text())
    res = data["results"]
    assert len(sets) == 2 and data["seed"] == 1
    for causal in (False, True):
        ours = {(r["dtype"], r["Hkv"], r["variant"], r["gqa_split"]) for r in res if r["causal"] == causal and r["variant"]}
        ship = cb.default_variant(128, 8, causal)
        for dt in ("float16", "bfloat16"):
            want = {(dt, 2, ship, 4 if causal else 1), (dt, 16, "w8m1q64xf", 1), (dt, 2, "w8m1q64xfg", 4 if causal else 1),
                    (dt, 2, "w8m1q64xfg+s2", 2)}
            assert want <= ours, (causal, ours)
            timed = {(r["variant"]) for r in res if r["causal"] == causal and r["dtype"] == dt and r["variant"]}
            checked = {c[5] for c in checks if c[3] == causal and c[4] == dt and c[6] and c[2] == 8192}
            assert timed == checked                       # every timed variant checked at the timed size
        assert any(r["impl"].startswith("torch") for r in res if r["causal"] == causal)
    assert ("w8m1q64xfg", None) in launches and ("w8m1q64xfg", 8) in launches and ("w8q64p", None) in launches
    small = {c[5] for c in checks if not c[6]}
    assert {"w8m1q64xfg+s1", "w8m1q64xfg+s2", "w8m1q64xfg+s4", "w8m1q64xfg"} <= small
    for r in res:
        fl = 2.5 * 4 * r["B"] * r["H"] * r["N"] ** 2 * r["d"] / (2 if r["causal"] else 1)
        assert math.isclose(fl / r["ms"] / 1e9, r["tflops"])


def test_gqa_split_fast_index_model():
    """Pure-Python model of the index arithmetic of bwd_dkdv_fast.cuh with SPLIT (transcribed by hand): the S
    blocks of a kv head visit every (query head of the group, query tile it sees) exactly once, advancing
    (hi, ti) by increments; the fp32 dK/dV fragment positions each lane adds to are the ones the convert kernel
    (dq_convert_frag, nq -> nk, bh -> kv head) reads back as (kv head, key row, column), every element of every
    block once per split block."""
    D, NW, MT, BQ, PAD = 128, 8, 1, 64, 128
    BKV = 16 * NW * MT
    for nq, nk, group, S, causal in ((150, 211, 4, 2, True), (333, 300, 8, 4, True), (200, 200, 8, 8, False),
                                     (64, 700, 2, 1, True), (700, 64, 6, 3, True)):
        nqt, offset, BHkv = -(-nq // BQ), nk - nq, 2
        for bkv in range(BHkv):
            for k0 in range(0, nk, BKV):
                qt0 = max(0, k0 - offset) // BQ if causal else 0
                per_head = max(0, nqt - qt0)
                seen = []
                for z in range(S):
                    gsz = group // S
                    bh0 = bkv * group + z * gsz
                    hi, ti = 0, qt0
                    for _ in range(per_head * gsz):
                        seen.append((bh0 + hi, ti))
                        hi, ti = (hi + 1, qt0) if ti + 1 == nqt else (hi, ti + 1)
                want = [(bkv * group + h, t) for h in range(group) for t in range(qt0, nqt)]
                assert sorted(seen) == want, (nq, nk, group, S, causal, k0)
                if causal:      # skipped tiles are fully masked: the last key of the block > every query's limit
                    assert all(k0 > (t * BQ + BQ - 1) + offset for t in range(qt0))
    nk = 300
    nk_pad = -(-nk // PAD) * PAD
    BHkv = 2
    pos = {}
    for bkv in range(BHkv):
        for k0 in range(0, nk, BKV):
            for warp in range(NW):
                wrow = warp * 16 * MT
                for lane in range(32):
                    g, t4 = lane >> 2, lane & 3
                    f0 = ((bkv * nk_pad + k0 + wrow) >> 4) * (D // 8) * 128 + lane * 4
                    for mt in range(MT):
                        for n in range(D // 8):
                            f = f0 + (mt * (D // 8) + n) * 128
                            for e in range(4):      # mma accumulator element e: row g (+8 for e >= 2), col 2 t4 (+1)
                                key = (bkv, k0 + wrow + mt * 16 + g + 8 * (e >> 1), n * 8 + 2 * t4 + (e & 1))
                                assert f + e not in pos
                                pos[f + e] = key
    for gid in range(BHkv * nk_pad * D // 4):       # dq_convert_frag's read of 4 floats per thread
        blk, ln = gid >> 5, gid & 31
        c8, rows = blk % (D // 8), blk // (D // 8)
        bh, r = rows // (nk_pad // 16), (rows % (nk_pad // 16)) * 16 + (ln >> 2)
        col = c8 * 8 + 2 * (ln & 3)
        got = [pos.get(4 * gid + e) for e in range(4)]
        want = [(bh, r, col), (bh, r, col + 1), (bh, r + 8, col), (bh, r + 8, col + 1)]
        assert got == want, gid
    assert len(pos) == BHkv * nk_pad * D         # nk_pad is a multiple of BKV: the blocks tile it
