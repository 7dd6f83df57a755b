"""The Numba-CUDA FlashAttention kernel in the CUDA simulator (tests/conftest.py sets
NUMBA_ENABLE_CUDASIM=1) against a dense float64 NumPy reference: tiny sizes, causal and not,
ragged N (not a multiple of the tile), Nq != Nk, leading batch/head axes, huge logits, bad input."""
import os

import numpy as np
import pytest

from reference import dense_attention as dense
from hypothesis import given, settings, strategies as st

pytest.importorskip("numba")
if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
    pytest.skip("these tests run the kernel in the CUDA simulator", allow_module_level=True)

from tinyattn.gpu import numba_flash_attention  # noqa: E402
from tinyattn.gpu.numba_flash import NumbaConfig  # noqa: E402



def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("lead,nq,nk,d", [((2,), 19, 19, 16), ((1, 2), 21, 21, 8), ((1,), 13, 29, 16),
                                          ((1,), 29, 13, 16), ((3,), 8, 8, 4), ((1,), 1, 1, 16)])
def test_matches_dense(is_causal, lead, nq, nk, d):
    rng = np.random.default_rng(0)
    q, k, v = rand(rng, *lead, nq, d), rand(rng, *lead, nk, d), rand(rng, *lead, nk, d)
    out = numba_flash_attention(q, k, v, is_causal=is_causal)
    assert out.shape == q.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, dense(q, k, v, is_causal)[0], atol=2e-6, rtol=1e-5)


GPU_DEFAULTS = {64: NumbaConfig(8, 16, 4, 8, max_regs=128, pad=1, sum_once=1, stage=8),
                128: NumbaConfig(16, 32, 4, 8, max_regs=128, pad=1, stage=8, prefetch=1)}


def test_gpu_defaults_are_the_measured_shapes(monkeypatch):
    """default_config on a GPU returns the shapes session 21 measured (NOTES.md), which the tests below run."""
    from tinyattn.gpu import numba_flash, numba_tiles
    monkeypatch.setattr(numba_tiles, "simulator_enabled", lambda: False)
    assert numba_flash.default_config(64) == numba_flash.default_config(32) == GPU_DEFAULTS[64]
    assert numba_flash.default_config(128) == numba_flash.default_config(96) == GPU_DEFAULTS[128]
    assert numba_flash.shared_bytes(128, GPU_DEFAULTS[128]) <= 227 * 1024          # one block fits an H200 SM


@pytest.mark.parametrize("d,cfg", [(64, NumbaConfig(8, 16, 4, 8)), (64, NumbaConfig(8, 16, 4, 4)),
                                   (128, NumbaConfig(8, 16, 4, 4)), (64, GPU_DEFAULTS[64]), (128, GPU_DEFAULTS[128])])
def test_gpu_tile_shapes_in_simulator(d, cfg):
    """The tile shapes used on the H200 (session 20's and the defaults), ragged N, causal: P sharing K's
    shared memory must not corrupt the next tile; with stage / prefetch, full tiles take the batched copy
    and the ragged last one the word loop."""
    rng = np.random.default_rng(1)
    n = 2 * max(cfg.block_q, cfg.block_k) + 6    # two full tiles of each kind, then a ragged one
    q, k, v = rand(rng, 1, n, d), rand(rng, 1, n, d), rand(rng, 1, n, d)
    out = numba_flash_attention(q, k, v, is_causal=True, config=cfg)
    np.testing.assert_allclose(out, dense(q, k, v, True)[0], atol=2e-6, rtol=1e-5)


@settings(deadline=None, max_examples=12)
@given(nq=st.integers(1, 20), nk=st.integers(1, 20), causal=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_random_shapes(nq, nk, causal, seed):
    rng = np.random.default_rng(seed)
    q, k, v = rand(rng, 1, nq, 8), rand(rng, 1, nk, 8), rand(rng, 1, nk, 8)
    out = numba_flash_attention(q, k, v, is_causal=causal)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, dense(q, k, v, causal)[0], atol=3e-6, rtol=1e-5)


def test_huge_logits_no_nan():
    """+-1e4-sized logits: the online max keeps exp finite (no overflow, no NaN)."""
    rng = np.random.default_rng(2)
    q, k, v = rand(rng, 1, 17, 8, scale=100.0), rand(rng, 1, 17, 8, scale=100.0), rand(rng, 1, 17, 8)
    out = numba_flash_attention(q, k, v, is_causal=True)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, dense(q, k, v, True)[0], atol=1e-4, rtol=1e-4)


def test_rows_with_no_key_give_zero():
    """Causal with Nq > Nk: the first Nq - Nk query rows see no key and must be exactly 0."""
    rng = np.random.default_rng(3)
    q, k, v = rand(rng, 1, 12, 8), rand(rng, 1, 5, 8), rand(rng, 1, 5, 8)
    out = numba_flash_attention(q, k, v, is_causal=True)
    assert np.all(out[0, :7] == 0)
    np.testing.assert_allclose(out, dense(q, k, v, True)[0], atol=2e-6, rtol=1e-5)


def test_single_key_returns_its_value():
    rng = np.random.default_rng(4)
    q, k, v = rand(rng, 2, 6, 8), rand(rng, 2, 1, 8), rand(rng, 2, 1, 8)
    out = numba_flash_attention(q, k, v)
    np.testing.assert_allclose(out, np.broadcast_to(v, out.shape), rtol=1e-6)


def test_bad_inputs_raise():
    x = np.zeros((1, 4, 8), np.float32)
    with pytest.raises(TypeError, match="q must be float32"):
        numba_flash_attention(x.astype(np.float64), x, x)
    with pytest.raises(ValueError, match=r"k and v must have the same shape"):
        numba_flash_attention(x, x, np.zeros((1, 5, 8), np.float32))
    with pytest.raises(ValueError, match=r"share leading axes and d"):
        numba_flash_attention(x, np.zeros((1, 4, 4), np.float32), np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"multiple of config.tx"):
        numba_flash_attention(np.zeros((1, 4, 6), np.float32), np.zeros((1, 4, 6), np.float32),
                              np.zeros((1, 4, 6), np.float32), config=NumbaConfig(4, 4, 1, 1))


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("lead,nq,nk,d", [((2,), 19, 19, 16), ((1,), 13, 29, 8), ((1,), 29, 13, 8)])
def test_lse_matches_chapter06_flash(is_causal, lead, nq, nk, d):
    """return_lse=True gives chapter 06's (out, lse); lse checked against a float64 logsumexp too."""
    from tinyattn.flash import flash_attention

    rng = np.random.default_rng(5)
    q, k, v = rand(rng, *lead, nq, d), rand(rng, *lead, nk, d), rand(rng, *lead, nk, d)
    out, lse = numba_flash_attention(q, k, v, is_causal=is_causal, return_lse=True)
    assert lse.shape == q.shape[:-1] and lse.dtype == np.float32
    ref_out, ref_lse = flash_attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64),
                                       is_causal=is_causal)
    np.testing.assert_allclose(out, ref_out, atol=2e-6, rtol=1e-5)
    np.testing.assert_array_equal(np.isneginf(lse), np.isneginf(ref_lse))     # rows with no key
    fin = np.isfinite(ref_lse)
    np.testing.assert_allclose(lse[fin], ref_lse[fin], atol=2e-6, rtol=1e-5)
    # independent check: log sum exp of the dense float64 scores
    s = np.einsum("...id,...jd->...ij", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(d)
    if is_causal:
        s = np.where(np.arange(nk)[None, :] <= np.arange(nq)[:, None] + nk - nq, s, -np.inf)
    with np.errstate(divide="ignore"):
        ref2 = np.log(np.exp(s).sum(-1))
    np.testing.assert_allclose(lse[fin], ref2[fin], atol=2e-6, rtol=1e-5)


def test_lse_huge_logits_and_empty_rows():
    rng = np.random.default_rng(6)
    q, k, v = rand(rng, 1, 12, 8, scale=100.0), rand(rng, 1, 5, 8, scale=100.0), rand(rng, 1, 5, 8)
    out, lse = numba_flash_attention(q, k, v, is_causal=True, return_lse=True)
    assert np.all(np.isneginf(lse[0, :7])) and np.all(np.isfinite(lse[0, 7:]))
    s = np.einsum("id,jd->ij", q[0].astype(np.float64), k[0].astype(np.float64)) / np.sqrt(8)
    s = np.where(np.arange(5)[None, :] <= np.arange(12)[:, None] - 7, s, -np.inf)[7:]
    mx = s.max(-1)
    ref = mx + np.log(np.exp(s - mx[:, None]).sum(-1))
    np.testing.assert_allclose(lse[0, 7:], ref, rtol=1e-5)
    assert numba_flash_attention(q[:, :0], k, v, return_lse=True)[1].shape == (1, 0)


def test_shared_layout_fits_and_p_reuses_k_space():
    """Dynamic shared memory: tiles do not overlap (except P inside K's region, which must hold it),
    the d = 128 GPU tile stays under Hopper's 227 KB per block, and the simulator shape is tiny."""
    from tinyattn.gpu.numba_flash import shared_bytes, shared_layout
    for d, cfg in ((64, NumbaConfig(8, 16, 4, 8)), (128, NumbaConfig(8, 16, 4, 4)), (4, NumbaConfig(4, 4, 2, 2))):
        lay = shared_layout(d, cfg)
        bq, bk = cfg.block_q, cfg.block_k
        ends = {"sQ": bq * (d + 1), "sKT": max(d, bq) * (bk + 1), "sV": bk * d, "sMax": bq * cfg.tx, "sSum": bq * cfg.tx}
        order = ["sQ", "sKT", "sV", "sMax", "sSum"]
        for a_, b_ in zip(order, order[1:]):
            assert lay[a_][0] + ends[a_] == lay[b_][0], (d, a_, b_, lay)
        assert lay["sP"][0] == lay["sKT"][0] and bq * (bk + 1) <= ends["sKT"], (d, lay)
        assert shared_bytes(d, cfg) == 4 * (lay["sSum"][0] + ends["sSum"]) == 4 * lay["end"][0]
    assert shared_bytes(128, NumbaConfig(8, 16, 4, 4)) == 70400 < 227 * 1024


# non-default layouts (session 20 nb128; benchmarks/numba_smem_model.py): pad = bank-conflict-free rows of
# sP / sMax / sSum, sum_once = row sums l kept per thread and summed across the row's threads after the loop
# stage = full K / V tiles copied in groups of loads issued back to back (session 21); ragged last tiles
# take the word-at-a-time path, so N = 29 exercises both
PAD_ONCE = [NumbaConfig(4, 4, 2, 2, pad=1), NumbaConfig(4, 4, 2, 2, sum_once=1), NumbaConfig(8, 4, 2, 2, pad=1, sum_once=1),
            NumbaConfig(4, 4, 2, 2, stage=8), NumbaConfig(8, 4, 2, 2, pad=1, sum_once=1, stage=8),
            NumbaConfig(4, 4, 2, 2, stage=4, prefetch=1), NumbaConfig(8, 4, 2, 2, pad=1, sum_once=1, stage=8, prefetch=1)]


def test_stage_applies_where_the_tile_divides():
    """The batched copy needs NT % d == 0 and whole groups per tile; elsewhere the kernel keeps the loop."""
    from tinyattn.gpu.numba_flash import batched_staging
    assert batched_staging(16, NumbaConfig(4, 4, 2, 2, stage=8)) and batched_staging(16, PAD_ONCE[-1])
    assert batched_staging(16, NumbaConfig(4, 4, 2, 2, stage=4))             # two groups per tile
    assert batched_staging(128, NumbaConfig(16, 32, 4, 8, stage=8)) and batched_staging(64, NumbaConfig(8, 16, 4, 8, stage=8))
    assert not batched_staging(16, NumbaConfig(4, 4, 2, 2))                  # stage off
    assert not batched_staging(8, NumbaConfig(4, 4, 2, 2, stage=8))          # 8 keys x 8 = 64 words < one group of 16 x 8
    assert not batched_staging(32, NumbaConfig(4, 4, 2, 2, stage=8))         # 16 threads < d: no whole rows per pass


@pytest.mark.parametrize("cfg", PAD_ONCE, ids=lambda c: f"tx{c.tx}pad{c.pad}once{c.sum_once}stage{c.stage}pf{c.prefetch}")
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("nq,nk", [(19, 19), (13, 29), (29, 13)])
def test_pad_and_sum_once_match_dense(cfg, is_causal, nq, nk):
    """Ragged N (not a multiple of the 8-row / 8-key tiles), Nq != Nk, causal rows with no key (Nq > Nk):
    output and lse against float64."""
    rng = np.random.default_rng(7)
    d = 16
    q, k, v = rand(rng, 2, nq, d), rand(rng, 2, nk, d), rand(rng, 2, nk, d)
    out, lse = numba_flash_attention(q, k, v, is_causal=is_causal, config=cfg, return_lse=True)
    np.testing.assert_allclose(out, dense(q, k, v, is_causal)[0], atol=2e-6, rtol=1e-5)
    s = np.einsum("...id,...jd->...ij", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(d)
    if is_causal:
        s = np.where(np.arange(nk)[None, :] <= np.arange(nq)[:, None] + nk - nq, s, -np.inf)
    with np.errstate(divide="ignore"):
        ref = np.log(np.exp(s).sum(-1))
    np.testing.assert_array_equal(np.isneginf(lse), np.isneginf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(lse[fin], ref[fin], atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("d,cfg", [(128, NumbaConfig(16, 16, 4, 4, pad=1, sum_once=1)),
                                   (128, NumbaConfig(8, 16, 4, 4, pad=1, sum_once=1)),
                                   (64, NumbaConfig(8, 16, 4, 8, pad=1, sum_once=1))])
def test_candidate_gpu_shapes_in_simulator(d, cfg):
    """The d = 128 candidates of the next device run (and the d = 64 control) at their GPU shapes: two
    query tiles, two key tiles, ragged, causal; P in K's space with its padded rows."""
    rng = np.random.default_rng(8)
    n = max(cfg.block_q, cfg.block_k) + 6
    q, k, v = rand(rng, 1, n, d), rand(rng, 1, n, d), rand(rng, 1, n, d)
    out = numba_flash_attention(q, k, v, is_causal=True, config=cfg)
    np.testing.assert_allclose(out, dense(q, k, v, True)[0], atol=2e-6, rtol=1e-5)


def test_padded_layout_fits():
    """pad=1: sP (BQ, BK + w) still fits in K's region, sMax / sSum rows are TX + w, tiles do not overlap;
    pad=0 keeps the shipped sizes (70400 bytes at d = 128)."""
    from tinyattn.gpu.numba_flash import shared_bytes, shared_layout
    for d, cfg, w in ((128, NumbaConfig(16, 16, 4, 4, pad=1), 4), (128, NumbaConfig(8, 16, 4, 4, pad=1), 2),
                      (64, NumbaConfig(8, 16, 4, 8, pad=1), 2), (16, NumbaConfig(4, 4, 2, 2, pad=1), 2)):
        lay = shared_layout(d, cfg)
        bq, bk = cfg.block_q, cfg.block_k
        assert lay["sP"] == (lay["sKT"][0], bk + w) and lay["sMax"][1] == lay["sSum"][1] == cfg.tx + w
        assert lay["sKT"][0] + bq * (bk + w) <= lay["sV"][0] and lay["sKT"][0] + d * (bk + 1) <= lay["sV"][0]
        assert lay["sMax"][0] + bq * (cfg.tx + w) == lay["sSum"][0] and 4 * lay["end"][0] == shared_bytes(d, cfg)
    assert shared_bytes(128, NumbaConfig(8, 16, 4, 4, sum_once=1)) == 70400
