"""CuPy kernels on a real GPU against a dense float64 reference; skipped without CuPy or a GPU.
(CI has no GPU: these ran on the H200 through benchmarks/gpu_flash.py, whose checks are committed
in benchmarks/results/gpu_flash_h200.json and asserted in test_committed_results below.)"""
import json
from pathlib import Path

import numpy as np
import pytest

from reference import dense_attention as dense

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "gpu_flash_h200.json"



from _gpu import cupy_or_skip as _gpu  # noqa: E402


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float16, 5e-3)])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("d", [64, 128])
def test_cupy_flash_matches_dense(dtype, tol, is_causal, d):
    cp = _gpu()
    from tinyattn.gpu import cupy_flash_attention

    rng = np.random.default_rng()
    q, k, v = (rng.standard_normal((2, 3, 131, d)).astype(dtype) for _ in range(3))
    out = cp.asnumpy(cupy_flash_attention(cp.asarray(q), cp.asarray(k), cp.asarray(v), is_causal=is_causal))
    ref = dense(q, k, v, is_causal)[0]
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < tol


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float16, 5e-3)])
def test_naive_matches_dense(dtype, tol):
    cp = _gpu()
    from tinyattn.gpu import naive_attention_gpu

    rng = np.random.default_rng()
    q, k, v = (rng.standard_normal((1, 2, 100, 64)).astype(dtype) for _ in range(3))
    out = cp.asnumpy(naive_attention_gpu(cp.asarray(q), cp.asarray(k), cp.asarray(v), is_causal=True))
    ref = dense(q, k, v, True)[0]
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < tol


def test_cupy_rejects_bad_head_dim():
    cp = _gpu()
    from tinyattn.gpu import cupy_flash_attention

    x = cp.zeros((1, 8, 48), cp.float16)          # tensor cores: d in (32, 64, 96, 128)
    with pytest.raises(ValueError, match="head dim"):
        cupy_flash_attention(x, x, x)


def test_committed_results_checks_passed():
    """The committed H200 run checked every implementation before timing it (no GPU needed here)."""
    data = json.loads(RESULTS.read_text())
    assert "H200" in data["gpu"]
    impls = {c["impl"] for c in data["checks"]}
    assert {"numba_fp32", "cupy_fp32", "cupy_fp16_mma", "naive_gpu_fp16", "naive_gpu_fp32"} <= impls
    bad = [c for c in data["checks"] if not c["ok"]]
    assert bad == []
    for r in data["results"]:
        assert set("impl dtype B H N d causal ms tflops".split()) <= set(r)
        if r["ms"] is not None:
            flops = 4 * r["B"] * r["H"] * r["N"] ** 2 * r["d"] / (2 if r["causal"] else 1)
            assert abs(flops / r["ms"] / 1e9 - r["tflops"]) < 1e-6 * r["tflops"]


def test_committed_results_checked_at_every_timed_size():
    """Every timed record of the committed run was itself checked (NaN-poisoned output, heads 0-1 vs
    float64) within the dtype's tolerance; the naive split and the K/V re-read roofline are recorded."""
    data = json.loads(RESULTS.read_text())
    tol = {"float32": 1e-4, "float16": 5e-3, "bfloat16": 3e-2}
    timed = [r for r in data["results"] if r["ms"] is not None]
    assert len(timed) >= 200
    for r in timed:
        assert r["check_ok"] and not r["check_nan"] and r["check_rel_err"] < tol[r["dtype"]], r
    split = {(r["d"], r["causal"]): r for r in data["naive_split"]}
    assert set(split) == {(64, False), (64, True), (128, False), (128, True)}
    for r in split.values():
        assert abs(r["ms_qk"] + r["ms_softmax"] + r["ms_pv"] - r["ms_total"]) < 0.15 * r["ms_total"], r
        assert r["check_rel_err"] < tol["float16"]
    for rl in data["roofline"]:                 # K and V once per query block: N / block_q re-reads
        reads = rl["N"] // rl["block_q"]
        per_pass = 2 * rl["B"] * rl["H"] * rl["N"] * rl["d"] * 2
        assert rl["bytes_fa2_kv_rereads"] == per_pass + reads * per_pass
        assert rl["bytes_min"] == 2 * per_pass


def test_import_is_lazy():
    """`import tinyattn.gpu` must not import numba or cupy (they load inside the entry points)."""
    import subprocess
    import sys

    code = "import sys, tinyattn, tinyattn.gpu; print('numba' in sys.modules, 'cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float16, 2e-3)])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("d", [64, 128])
def test_cupy_lse_matches_chapter06(dtype, tol, is_causal, d):
    """return_lse=True: (out, lse) against chapter 06's NumPy flash on the same (rounded) inputs."""
    cp = _gpu()
    from tinyattn.flash import flash_attention
    from tinyattn.gpu import cupy_flash_attention

    rng = np.random.default_rng(7)
    q = rng.standard_normal((2, 3, 70, d)).astype(dtype)
    k, v = (rng.standard_normal((2, 3, 131, d)).astype(dtype) for _ in range(2))
    out, lse = cupy_flash_attention(cp.asarray(q), cp.asarray(k), cp.asarray(v), is_causal=is_causal,
                                    return_lse=True)
    _, ref = flash_attention(*(x.astype(np.float64) for x in (q, k, v)), is_causal=is_causal)
    lse = cp.asnumpy(lse)
    assert lse.shape == q.shape[:-1] and lse.dtype == np.float32
    np.testing.assert_allclose(lse, ref, atol=tol * 10, rtol=tol)


def _decode_ref(q, k, v, lens, causal):
    """float64 NumPy reference: q (B, Hq, Lq, d), k, v (B, Hkv, S, d), GQA by head index // G."""
    B, hq, lq, d = q.shape
    G = hq // k.shape[1]
    out = np.zeros(q.shape)
    lse = np.full(q.shape[:-1], -np.inf)
    for b in range(B):
        L = int(lens[b])
        for h in range(hq):
            s = q[b, h].astype(np.float64) @ k[b, h // G, :L].astype(np.float64).T / np.sqrt(d)
            if causal:
                s = np.where(np.arange(L)[None, :] <= L - lq + np.arange(lq)[:, None], s, -np.inf)
            for i in range(lq):
                if np.isfinite(s[i]).any():
                    mx = s[i].max()
                    e = np.exp(s[i] - mx)
                    out[b, h, i] = e @ v[b, h // G, :L].astype(np.float64) / e.sum()
                    lse[b, h, i] = mx + np.log(e.sum())
    return out, lse


@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("lq,causal", [(1, True), (5, True), (16, False)])
def test_flash_decode_contiguous_and_paged(d, lq, causal):
    """Split-KV decoding (GQA 4:1, ragged lengths, a sequence whose first rows see no key) against a
    float64 reference; the paged variant reads the same keys through a shuffled block table."""
    cp = _gpu()
    from tinyattn.gpu.decode import flash_decode, paged_flash_decode

    rng = np.random.default_rng(8)
    B, hq, hkv, S, bs = 3, 8, 2, 700, 16
    q = rng.standard_normal((B, hq, lq, d)).astype(np.float16)
    k, v = (rng.standard_normal((B, hkv, S, d)).astype(np.float16) for _ in range(2))
    lens = np.array([S, 333, max(lq - 1, 1)], np.int32)
    ref, ref_lse = _decode_ref(q, k, v, lens, causal)
    out, lse = flash_decode(cp.asarray(q), cp.asarray(k), cp.asarray(v), cp.asarray(lens), is_causal=causal,
                            chunk=256, return_lse=True)
    np.testing.assert_allclose(cp.asnumpy(out), ref, atol=5e-3)
    np.testing.assert_allclose(cp.asnumpy(lse), ref_lse, atol=2e-3)
    nb = S // bs + 1
    kp, vp = (np.zeros((B * nb, hkv, bs, d), np.float16) for _ in range(2))
    perm = rng.permutation(B * nb).reshape(B, nb)
    for b in range(B):
        for j in range(nb):
            rows = slice(j * bs, min((j + 1) * bs, S))
            n = rows.stop - rows.start
            kp[perm[b, j], :, :n] = k[b, :, rows]
            vp[perm[b, j], :, :n] = v[b, :, rows]
    out2 = paged_flash_decode(cp.asarray(q), cp.asarray(kp), cp.asarray(vp), cp.asarray(perm.astype(np.int32)),
                              cp.asarray(lens), is_causal=causal)
    np.testing.assert_allclose(cp.asnumpy(out2), ref, atol=5e-3)


def test_decode_chunk_rule_fills_one_wave():
    """choose_chunk (no GPU): the items B * Hkv * row_groups * n_part fit one wave of `slots` warp groups,
    and a chunk 32 keys shorter would not (so the chunk is the shortest that fits)."""
    import math

    from tinyattn.gpu.decode import BK, MIN_CHUNK, choose_chunk

    for B, hkv, rg, L, slots in ((1, 8, 1, 32768, 528), (4, 8, 1, 32768, 528), (16, 8, 1, 32768, 528),
                                 (64, 8, 1, 32768, 528), (3, 2, 2, 7000, 264), (1, 1, 1, 100, 528)):
        c = choose_chunk(B, hkv, rg, L, slots=slots)
        n_part = math.ceil(L / c)
        assert c % BK == 0 and c >= MIN_CHUNK, (B, c)
        groups = B * hkv * rg
        if c > MIN_CHUNK and groups <= slots:
            assert groups * n_part <= slots, (B, c, n_part)                      # one wave
            assert groups * math.ceil(L / (c - BK)) > slots, (B, c)              # the shortest such chunk
    assert [math.ceil(32768 / choose_chunk(B, 8, 1, 32768, slots=528)) for B in (1, 4, 16, 64)] == [64, 16, 4, 1]
    assert choose_chunk(2, 8, 1, 32768, chunk=96) == 96
    with pytest.raises(ValueError, match="multiple of 32"):
        choose_chunk(2, 8, 1, 32768, chunk=100)


def test_decode_chunk_align_and_coop_slots():
    """choose_chunk with align = 1 (dec2 variant c, no GPU): chunks of any length so that the items fill
    the slots (B = 1, 8 K/V heads, 528 slots: 66 non-empty chunks = 528 items = 132 blocks of 4 warps, where
    32-key alignment gives 64 chunks on 128 SMs); coop's one-item blocks (132 slots) give n_part 16 / 4 / 1 / 1."""
    import math

    from tinyattn.gpu.decode import BK, MIN_CHUNK, choose_chunk, items_per_block

    for B, hkv, L, slots in ((1, 8, 32768, 528), (1, 8, 32767, 528), (2, 8, 30000, 528), (1, 2, 5000, 132),
                             (3, 8, 32768, 132)):
        c = choose_chunk(B, hkv, 1, L, slots=slots, align=1)
        n_part = math.ceil(L / c)
        assert c >= MIN_CHUNK and (n_part - 1) * c < L, (B, L, c)                # every chunk has keys
        groups, want = B * hkv, max(1, slots // (B * hkv))
        if c > MIN_CHUNK:
            assert n_part == want and groups * n_part <= slots, (B, L, c, n_part)   # all the slots the rule allows
    c1 = choose_chunk(1, 8, 1, 32768, slots=528, align=1)
    assert (c1, math.ceil(32768 / c1), 8 * math.ceil(32768 / c1) / items_per_block(1, 4)) == (497, 66, 132)
    assert math.ceil(32768 / choose_chunk(1, 8, 1, 32768, slots=528)) * 8 / items_per_block(1, 4) == 128
    assert [math.ceil(32768 / choose_chunk(B, 8, 1, 32768, slots=132 * items_per_block(4, 4, True)))
            for B in (1, 4, 16, 64)] == [16, 4, 1, 1]
    assert choose_chunk(2, 8, 1, 1000, chunk=97, align=1) == 97
    with pytest.raises(ValueError, match="divisor"):
        choose_chunk(2, 8, 1, 1000, align=3)
    with pytest.raises(ValueError, match="multiple of 16"):
        choose_chunk(2, 8, 1, 1000, chunk=40, align=16)
    assert BK % 16 == 0


def test_decode_default_kernel_rule():
    """The default split kernel (no GPU): cooperative (c4) exactly where session 21 measured it (d = 128,
    Lq = 1, G <= 16 packed rows, contiguous cache), the one-warp kernel elsewhere; and the committed
    measurement behind it (dec2 sweep, S21-1): c4 faster back to back at B = 1 and within 1% at B = 4-64."""
    from tinyattn.gpu.decode import COOP_DEFAULT_DIMS, default_coop

    assert COOP_DEFAULT_DIMS == (128,)
    for d, lq, rows, paged, want in ((128, 1, 8, False, True), (128, 1, 16, False, True), (128, 1, 1, False, True),
                                     (128, 1, 17, False, False), (128, 2, 16, False, False), (128, 16, 128, False, False),
                                     (64, 1, 8, False, False), (128, 1, 8, True, False)):
        assert default_coop(d, lq, rows, paged) is want, (d, lq, rows, paged)
    runs = json.loads((RESULTS.parent / "gpu_decode_h200.json").read_text())["dec2"]["results"]
    b2b = {(r["impl"], r["B"]): r["ms_b2b"] for r in runs if r.get("ms") and r["Lq"] == 1}
    for B in (1, 4, 16, 64):
        new, old = b2b[("cupy_fp16_decode_coop", B)], b2b[("cupy_fp16_decode", B)]
        assert new < old if B == 1 else new <= 1.01 * old, (B, new, old)


def _coop_decode_model(q, k, v, lens, causal, chunk, warps=4, wkeys=32):
    """NumPy model of the cooperative split kernel's arithmetic order (flash_decode_coop.cuh), float32 with
    fp16 P: per chunk, warp w takes keys [32 w, 32 w + 32) of each 128-key tile with its own online softmax
    (m: raw max, l: row sum, acc *= exp2((m_old - m_new) c)); the warps' states merged at the end of the
    chunk (M = max m_w, a_w = exp2((m_w - M) c) or 0, l = sum a_w l_w, acc = sum a_w acc_w); the chunks'
    partials (O_p = acc / l, lse_p = (M c + log2 l) ln 2) merged as chapter 06. q (B, Hq, Lq, d)."""
    B, hq, lq, d = q.shape
    G, c = hq // k.shape[1], np.float32(np.log2(np.e) / np.sqrt(d))
    out, lse = np.zeros(q.shape), np.full(q.shape[:-1], -np.inf)
    tile = warps * wkeys
    for b in range(B):
        L = int(lens[b])
        for h in range(hq):
            qh = q[b, h].astype(np.float32)                                   # (Lq, d)
            last = (L - lq + np.arange(lq)) if causal else np.full(lq, L - 1)
            parts = []
            for t_begin in range(0, L, chunk):
                t_end = min(L, t_begin + chunk)
                st = []
                for w in range(warps):
                    m, l, acc = np.full(lq, -np.inf, np.float32), np.zeros(lq, np.float32), np.zeros((lq, d), np.float32)
                    for k0 in range(t_begin + w * wkeys, t_end, tile):
                        keys = np.arange(k0, k0 + wkeys)
                        kk = k[b, h // G, np.minimum(keys, L - 1)].astype(np.float32)
                        vv = v[b, h // G, np.minimum(keys, L - 1)].astype(np.float32)
                        s = qh @ kk.T
                        s[(keys[None, :] >= t_end) | (keys[None, :] > last[:, None])] = -np.inf
                        mx = np.maximum(m, s.max(axis=1))
                        mu = np.where(mx == -np.inf, 0, mx * c).astype(np.float32)
                        al = np.exp2(m * c - mu)
                        p = np.exp2(s * c - mu[:, None]).astype(np.float32)
                        l = l * al + p.sum(axis=1)
                        acc = acc * al[:, None] + p.astype(np.float16).astype(np.float32) @ vv
                        m = mx
                    st.append((m, l, acc))
                M = np.max([x[0] for x in st], axis=0)
                with np.errstate(invalid="ignore"):                                # -inf - -inf: masked by the where
                    a = [np.where(x[0] == -np.inf, 0, np.exp2((x[0] - M) * c)).astype(np.float32) for x in st]
                lt = sum(aw * x[1] for aw, x in zip(a, st))
                at = sum(aw[:, None] * x[2] for aw, x in zip(a, st))
                with np.errstate(divide="ignore", invalid="ignore"):
                    parts.append((np.where(lt[:, None] > 0, at / lt[:, None], 0),
                                  np.where(lt > 0, (M * c + np.log2(lt)) * np.log(2), -np.inf)))
            if not parts:
                continue
            lp = np.array([p[1] for p in parts], np.float64)                   # (n_part, Lq)
            mx = lp.max(axis=0)
            ok = mx > -np.inf
            wts = np.exp(lp - np.where(ok, mx, 0))
            den = wts.sum(axis=0)
            out[b, h] = np.where(ok[:, None], sum(wt[:, None] * p[0] for wt, p in zip(wts, parts)) / np.where(ok, den, 1)[:, None], 0)
            lse[b, h] = np.where(ok, mx + np.log(np.where(ok, den, 1)), -np.inf)
    return out, lse


@pytest.mark.parametrize("lq,causal,chunk,scale_q", [(1, True, 512, 1.0), (3, True, 200, 1.0), (2, False, 96, 1.0),
                                                     (1, False, 1024, 300.0)])
def test_coop_merge_order_model_matches_float64(lq, causal, chunk, scale_q):
    """The cooperative kernel's order of operations (NumPy model, no GPU) against the dense float64
    reference: chunks whose last tile is partial (200: warp 2 sees 8 keys of it, warp 3 none; 96: warp 3
    none), rows with different last keys (causal Lq > 1), a sequence whose rows see no key (length 0 /
    Lq - 1: output 0, lse -inf), and logits of standard deviation 300 (up to ~+-1e3: scale_q 300)."""
    rng = np.random.default_rng(1300 + lq)
    B, hq, hkv, S, d = 3, 8, 2, 700, 64
    q = (rng.standard_normal((B, hq, lq, d)) * scale_q).astype(np.float16)
    k, v = (rng.standard_normal((B, hkv, S, d)).astype(np.float16) for _ in range(2))
    lens = np.array([S, 333, max(lq - 1, 0)], np.int32)
    ref, ref_lse = _decode_ref(q, k, v, lens, causal)
    out, lse = _coop_decode_model(q, k, v, lens, causal, chunk)
    assert np.isfinite(out).all(), f"seed {1300 + lq}: NaN/inf in the model output"
    np.testing.assert_array_equal(np.isinf(lse), np.isinf(ref_lse), err_msg=f"seed {1300 + lq}: empty rows differ")
    fin = np.isfinite(ref_lse)
    np.testing.assert_allclose(out, ref, atol=5e-3, err_msg=f"seed {1300 + lq}, chunk {chunk}")
    np.testing.assert_allclose(lse[fin], ref_lse[fin], rtol=1e-5, atol=2e-3, err_msg=f"seed {1300 + lq}")


@pytest.mark.parametrize("lq", [1, 2])
@pytest.mark.parametrize("var", [{}, {"coop": False}, {"bk": 16}, {"bk": 16, "stages": 4}, {"coop": True},
                                 {"coop": True, "chunk": 96}, {"coop": True, "chunk": 160, "fused": True},
                                 {"chunk_align": 1, "chunk": 97}])
def test_flash_decode_dec2_variants(var, lq):
    """The dec2 variants and the default ({}: cooperative at Lq = 1, d = 128; one-warp at Lq = 2) on a GPU
    against the float64 reference (NaN-poisoned outputs)."""
    cp = _gpu()
    from tinyattn.gpu import decode

    rng = np.random.default_rng(1310)
    B, hq, hkv, S, d = 3, 8, 2, 700, 128
    q = rng.standard_normal((B, hq, lq, d)).astype(np.float16)
    k, v = (rng.standard_normal((B, hkv, S, d)).astype(np.float16) for _ in range(2))
    lens = np.array([S, 333, 1], np.int32)
    ref, ref_lse = _decode_ref(q, k, v, lens, True)
    go, out, lse = decode.make_launch(cp.asarray(q), cp.asarray(k), cp.asarray(v), cp.zeros(1, cp.int32),
                                      cp.asarray(lens), "f16", s_len=S, bs=1, max_blocks=1, paged=False,
                                      is_causal=True, scale=None, max_len=S, **{"chunk": None, **var})
    assert go.coop == var.get("coop", lq == 1 and "bk" not in var and "chunk_align" not in var), (var, lq)
    out.fill(np.nan)
    lse.fill(np.nan)
    go()
    np.testing.assert_allclose(cp.asnumpy(out), ref, atol=5e-3, err_msg=str(var))
    np.testing.assert_allclose(cp.asnumpy(lse), ref_lse, atol=2e-3, err_msg=str(var))


def test_flash_decode_bad_inputs():
    cp = _gpu()
    from tinyattn.gpu.decode import flash_decode

    q = cp.zeros((2, 6, 1, 64), cp.float16)
    kv = cp.zeros((2, 4, 32, 64), cp.float16)
    with pytest.raises(ValueError, match="multiple of K/V heads"):
        flash_decode(q, kv, kv, cp.array([3, 3]))
    with pytest.raises(ValueError, match="seq_lens must lie"):
        flash_decode(q[:, :4], kv, kv, cp.array([33, 3]))
    with pytest.raises(TypeError, match="float16"):
        flash_decode(q.astype(cp.float32), kv, kv, cp.array([3, 3]))


def test_committed_part2_results():
    """The committed H200 part-2 run: every lse, backward and decode check passed; decode records
    carry pass/gbps/copy_gbps with gbps = K/V bytes / time (no GPU needed here)."""
    data = json.loads((RESULTS.parent / "gpu_decode_h200.json").read_text())
    assert "H200" in data["gpu"] and isinstance(data["seed"], int)
    assert data["lse_checks"] and all(c["ok"] for c in data["lse_checks"])
    assert any(c["Nq"] == 8192 for c in data["lse_checks"])
    assert data["decode_checks"] and all(c["ok"] for c in data["decode_checks"])
    assert all(c["ok"] for c in data["numba_backward"]["checks"])
    for r in data["results"]:
        assert r["pass"] == "decode" and r["copy_gbps"] > 0
        if r.get("ms"):
            kv_bytes = 2 * r["B"] * r["Hkv"] * r["N"] * r["d"] * 2
            assert abs(kv_bytes / r["ms"] / 1e6 - r["gbps"]) < 1e-6 * r["gbps"]
            if r["impl"].startswith("cupy_"):
                assert r["check_ok"] and not r["out_err"]["nan"]
    for key in ("dec2", "session21"):              # the separate sweeps: the same, and the kernel each record ran
        run = data[key]
        assert run["decode_checks"] and all(c["ok"] for c in run["decode_checks"]), key
        for r in run["results"]:
            if r.get("ms"):
                kv_bytes = 2 * r["B"] * r["Hkv"] * r["N"] * r["d"] * 2
                assert abs(kv_bytes / r["ms"] / 1e6 - r["gbps"]) < 1e-6 * r["gbps"], (key, r["impl"])
                if r["impl"].startswith("cupy_"):
                    assert r["check_ok"] and not r["out_err"]["nan"], (key, r["impl"], r["B"])
    s21 = {(r["impl"], r["B"], r["Lq"]): r for r in data["session21"]["results"]}
    for B in (1, 4, 16, 64):                        # session 21: the default ran the cooperative kernel, w1 the old one
        assert s21[("cupy_fp16_decode", B, 1)]["coop"] and not s21[("cupy_fp16_decode_w1", B, 1)]["coop"]
        assert not s21[("cupy_fp16_decode", B, 16)]["coop"] and not s21[("cupy_fp16_decode_paged16", B, 1)]["coop"]


DIMS_RESULTS = RESULTS.parent / "gpu_flash_dims_h200.json"


@pytest.mark.parametrize("d", [32, 96])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("is_causal", [False, True])
def test_mma_head_dims_32_96_gqa_lse(d, dtype, is_causal):
    """d = 32 and 96 (64-byte-row swizzle; generic loader at 96) with GQA 3:1, ragged Nq < Nk and every
    variant of cupy_flash.VARIANTS (d = 96: the session-21 split-loader candidates too, -DTA_FLASH_D96):
    out and lse against float64 chapter-06 flash on K/V repeated per group."""
    cp = _gpu()
    from tinyattn.flash import flash_attention
    from tinyattn.gpu import cupy_flash
    from tinyattn.gpu import cupy_flash_attention

    rng = np.random.default_rng(2000 + d)
    q = rng.standard_normal((2, 6, 77, d)).astype(np.float32)
    k, v = (rng.standard_normal((2, 2, 141, d)).astype(np.float32) for _ in range(2))
    if dtype == "float16":
        q, k, v = (x.astype(np.float16) for x in (q, k, v))
        args, back = [cp.asarray(x) for x in (q, k, v)], (lambda a: cp.asnumpy(a).astype(np.float64))
        q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))
    else:                                 # bf16 bits in uint16, fp32 rounded to nearest even
        bits = [(x.view(np.uint32) + 0x7FFF + ((x.view(np.uint32) >> 16) & 1) >> 16).astype(np.uint16) for x in (q, k, v)]
        args = [cp.asarray(b) for b in bits]
        q64, k64, v64 = ((b.astype(np.uint32) << 16).view(np.float32).astype(np.float64) for b in bits)
        back = lambda a: (cp.asnumpy(a).astype(np.uint32) << 16).view(np.float32).astype(np.float64)  # noqa: E731
    ref, ref_lse = flash_attention(q64, *(np.repeat(x, 3, axis=1) for x in (k64, v64)), is_causal=is_causal)
    for variant in sorted(cupy_flash.VARIANTS[d]):
        out, lse = cupy_flash_attention(*args, is_causal=is_causal, return_lse=True, variant=variant,
                                        dtype="bfloat16" if dtype == "bfloat16" else None)
        out = back(out)
        tol = 5e-3 if dtype == "float16" else 3e-2
        assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < tol, (variant, dtype)
        np.testing.assert_allclose(cp.asnumpy(lse), ref_lse, atol=1e-2, rtol=2e-3, err_msg=variant)


def test_committed_head_dim_run():
    """The committed head-dim run (benchmarks/gpu_flash_dims.py): every check passed, at d = 32, 64, 96,
    128, both dtypes, GQA included; every timed record was checked at its size; numba d = 64 and 128
    were timed in the same run; torch flash is the baseline at every head dim."""
    data = json.loads(DIMS_RESULTS.read_text())
    assert "H200" in data["gpu"] and isinstance(data["seed"], int)
    assert data["checks"] and all(c["ok"] for c in data["checks"])
    mma = [c for c in data["checks"] if c["impl"].startswith("cupy_")]
    assert {(c["d"], c["dtype"]) for c in mma} == {(d, t) for d in (32, 64, 96, 128) for t in ("float16", "bfloat16")}
    assert {(c["d"], c["Hkv"] < c["H"], c["causal"]) for c in mma} >= {(d, g, c) for d in (32, 96) for g in (0, 1) for c in (0, 1)}
    tol = {"float32": 1e-4, "float16": 5e-3, "bfloat16": 3e-2}
    timed = [r for r in data["results"] + data["numba"] if r.get("ms")]
    for r in timed:
        assert r["check_ok"] and not r["check_nan"] and r["check_rel_err"] < tol[r["dtype"]], r
        flops = 4 * r["B"] * r["H"] * r["N"] ** 2 * r["d"] / (2 if r["causal"] else 1)
        assert abs(flops / r["ms"] / 1e9 - r["tflops"]) < 1e-6 * r["tflops"]
    base = {(r["d"], r["Hkv"] < r["H"]) for r in data["results"] if r["impl"] == "torch_sdpa_flash"}
    ours = {(r["d"], r["Hkv"] < r["H"]) for r in data["results"] if r["impl"] == "cupy_fp16_mma"}
    assert base == ours == {(d, g) for d in (32, 64, 96, 128) for g in (False, True)}
    assert {r["d"] for r in data["numba"]} == {64, 128}
    exp = data["numba_vec4_experiment"]           # the reverted 16-byte-load version: checked before timing too
    assert exp["checks"] and all(c["ok"] for c in exp["checks"]) and all(r["check_ok"] for r in exp["records"])
