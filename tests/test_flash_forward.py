"""FlashAttention forward (NumPy, both loop orders) against a dense float64 reference."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyattn.flash import (FULL, PARTIAL, SKIP, classify_tiles, flash_attention,
                            source_text_flash_forward)


def dense_reference(q, k, v, is_causal=False, scale=None):
    """Plain float64 attention: materialise S, mask, softmax, multiply. Returns (out, lse)."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = np.einsum("...id,...jd->...ij", q, k) * scale
    lq, lk = s.shape[-2:]
    if is_causal:
        allowed = np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)
        s = np.where(allowed, s, -np.inf)
    out = np.zeros(s.shape[:-1] + (v.shape[-1],))
    lse = np.full(s.shape[:-1], -np.inf)
    for idx in np.ndindex(*s.shape[:-1]):          # one row at a time, the obvious way
        row = s[idx]
        if np.all(np.isneginf(row)):
            continue
        e = np.exp(row - row.max())
        vb = np.broadcast_to(v, s.shape[:-2] + v.shape[-2:])[idx[:-1]]
        out[idx] = (e / e.sum()) @ vb
        lse[idx] = row.max() + math.log(e.sum())
    return out, lse


@st.composite
def attention_case(draw):
    batch = draw(st.sampled_from([(), (2,), (2, 3)]))
    lq, lk = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    d, dv = draw(st.integers(1, 9)), draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(batch + (lq, d)) * draw(st.sampled_from([0.5, 1.0, 3.0]))
    k = rng.standard_normal(batch + (lk, d))
    v = rng.standard_normal(batch + (lk, dv))
    return q, k, v


@settings(deadline=None, max_examples=40)
@given(case=attention_case(), bq=st.integers(1, 48), bk=st.integers(1, 48),
       loop_order=st.sampled_from(["q_outer", "kv_outer"]), is_causal=st.booleans())
def test_forward_matches_dense_float64(case, bq, bk, loop_order, is_causal):
    q, k, v = case
    out, lse = flash_attention(q, k, v, is_causal=is_causal, block_q=bq, block_k=bk,
                               loop_order=loop_order)
    ref_out, ref_lse = dense_reference(q, k, v, is_causal)
    assert out.shape == ref_out.shape and lse.shape == ref_lse.shape
    assert not np.isnan(out).any() and not np.isnan(lse).any()
    np.testing.assert_allclose(out, ref_out, atol=1e-12, rtol=1e-10)
    np.testing.assert_array_equal(np.isneginf(lse), np.isneginf(ref_lse))
    fin = np.isfinite(ref_lse)
    np.testing.assert_allclose(lse[fin], ref_lse[fin], atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("loop_order", ["q_outer", "kv_outer"])
def test_rows_without_keys_give_zero_and_minus_inf(loop_order):
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((9, 4)), rng.standard_normal((4, 4)), rng.standard_normal((4, 3))
    out, lse = flash_attention(q, k, v, is_causal=True, block_q=2, block_k=3, loop_order=loop_order)
    # bottom-right causal, Lq=9 > Lk=4: query i sees keys j <= i - 5, so rows 0..4 see nothing
    assert np.all(out[:5] == 0) and np.all(np.isneginf(lse[:5]))
    assert np.isfinite(lse[5:]).all()
    np.testing.assert_allclose(out, dense_reference(q, k, v, True)[0], atol=1e-12)


@pytest.mark.parametrize("loop_order", ["q_outer", "kv_outer"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_huge_logits_stay_finite(loop_order, sign):
    rng = np.random.default_rng(2)
    q = rng.standard_normal((2, 17, 8)).astype(np.float32)
    k = rng.standard_normal((2, 23, 8)).astype(np.float32)
    v = rng.standard_normal((2, 23, 5)).astype(np.float32)
    q[:, :, 0] = sign * 1e4            # logits of order +-1e4 * k[..., 0] / sqrt(8)
    out, lse = flash_attention(q, k, v, block_q=4, block_k=5, loop_order=loop_order, is_causal=True)
    ref_out, ref_lse = dense_reference(q, k, v, True)
    assert np.isfinite(out).all() and np.isfinite(lse).all()
    np.testing.assert_allclose(out, ref_out, atol=2e-4)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-5)


@pytest.mark.parametrize("loop_order", ["q_outer", "kv_outer"])
def test_float16_inputs(loop_order):
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((3, 33, 16)).astype(np.float16) for _ in range(3))
    out, lse = flash_attention(q, k, v, block_q=8, block_k=16, loop_order=loop_order)
    assert out.dtype == np.float16 and lse.dtype == np.float32
    ref_out, ref_lse = dense_reference(q, k, v)      # the same fp16 values, computed in float64
    np.testing.assert_allclose(out.astype(np.float64), ref_out, atol=2e-3)
    np.testing.assert_allclose(lse, ref_lse, atol=1e-4)


def test_float32_dtype_and_broadcast_batch():
    rng = np.random.default_rng(4)
    q = rng.standard_normal((2, 3, 10, 4)).astype(np.float32)
    k = rng.standard_normal((1, 3, 12, 4)).astype(np.float32)    # batch axis broadcast
    v = rng.standard_normal((1, 3, 12, 6)).astype(np.float32)
    out, lse = flash_attention(q, k, v, block_q=3, block_k=5)
    assert out.dtype == np.float32 and out.shape == (2, 3, 10, 6) and lse.shape == (2, 3, 10)
    np.testing.assert_allclose(out, dense_reference(q, k, np.broadcast_to(v, (2, 3, 12, 6)))[0],
                               atol=1e-5)


def test_bad_inputs_raise_with_shapes():
    q = np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"k: .*\(6, 3\)"):
        flash_attention(q, np.zeros((6, 3)), np.zeros((6, 2)))
    with pytest.raises(ValueError, match=r"v: .*\(7, 2\)"):
        flash_attention(q, np.zeros((6, 4)), np.zeros((7, 2)))
    with pytest.raises(ValueError, match="block_q"):
        flash_attention(q, q, q, block_q=0)
    with pytest.raises(ValueError, match="loop_order"):
        flash_attention(q, q, q, loop_order="k_outer")
    with pytest.raises(TypeError, match="q must be a floating"):
        flash_attention(np.zeros((5, 4), dtype=int), q, q)
    with pytest.raises(ValueError, match="batch"):
        flash_attention(np.zeros((2, 5, 4)), np.zeros((3, 5, 4)), np.zeros((3, 5, 4)))


def test_classify_tiles_square_causal_counts():
    # T x T tiles, equal blocks: T(T+1)/2 computed, T on the diagonal need an element mask
    for T in (1, 4, 7):
        cls = classify_tiles(T * 8, T * 8, 8, 8, is_causal=True)
        assert (cls != SKIP).sum() == T * (T + 1) // 2
        assert (cls == PARTIAL).sum() == T and np.all(np.diag(cls) == PARTIAL)
        assert np.all(cls[np.triu_indices(T, 1)] == SKIP) and np.all(cls[np.tril_indices(T, -1)] == FULL)
    assert np.all(classify_tiles(20, 30, 7, 9, is_causal=False) == FULL)


def test_classify_tiles_agrees_with_elementwise_mask():
    rng = np.random.default_rng(5)
    for _ in range(20):
        lq, lk, bq, bk = rng.integers(1, 30, size=4)
        cls = classify_tiles(lq, lk, bq, bk, is_causal=True)
        allowed = np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)
        for i in range(cls.shape[0]):
            for j in range(cls.shape[1]):
                tile = allowed[i * bq:(i + 1) * bq, j * bk:(j + 1) * bk]
                expect = SKIP if not tile.any() else FULL if tile.all() else PARTIAL
                assert cls[i, j] == expect


def test_source_text_pseudocode_is_wrong():
    """The source text's locally-normalised update is not attention (REFERENCE section 4)."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((64, 16)), rng.standard_normal((64, 16)), rng.random((64, 16))
    ref = dense_reference(q, k, v)[0]
    assert np.abs(source_text_flash_forward(q, k, v, block_q=16, block_k=16) - ref).max() > 0.1
    no_div = source_text_flash_forward(q, k, v, block_q=16, block_k=16, final_divide=False)
    assert np.abs(no_div - ref).max() > 0.05
    # one key block: nothing to merge, and the literal code returns softmax(S) V / l (divided twice)
    s = q @ k.T / 4.0
    l = np.exp(s - s.max(1, keepdims=True)).sum(1, keepdims=True)
    np.testing.assert_allclose(source_text_flash_forward(q, k, v, block_q=16, block_k=64), ref / l,
                               atol=1e-12)
    np.testing.assert_allclose(source_text_flash_forward(q, k, v, block_k=64, final_divide=False),
                               ref, atol=1e-12)
