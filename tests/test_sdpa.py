"""scaled_dot_product_attention against an independent float64 reference written with plain loops.

The oracle below never calls tinyattn: it loops over batch entries, query heads and query rows,
picks the KV head i // (Hq // Hkv) explicitly, applies the mask / causal rule / bias per element
and returns 0 for a row with no allowed key.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyattn as ta
from tinyattn.functional.attention import (attention_weights, register_sdpa_backend,
                                           scaled_dot_product_attention as sdpa)


def ref_sdpa(q, k, v, mask=None, bias=None, is_causal=False, scale=None):
    """Plain float64 loops. q (..., Hq, Lq, d), k (..., Hkv, Lk, d), v (..., Hkv, Lk, dv)."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    *batch, hq, lq, d = q.shape
    hkv, lk, dv = k.shape[-3], k.shape[-2], v.shape[-1]
    full = (*batch, hq, lq, lk)
    mask = np.ones(full, bool) if mask is None else np.broadcast_to(mask, full)
    bias = np.zeros(full) if bias is None else np.broadcast_to(np.asarray(bias, np.float64), full)
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    out = np.zeros((*batch, hq, lq, dv))
    for b in itertools.product(*(range(n) for n in batch)):
        for h in range(hq):
            g = h // (hq // hkv)                       # the KV head this query head reads
            for i in range(lq):
                keys = [j for j in range(lk) if mask[b + (h, i, j)]
                        and (not is_causal or j <= i + lk - lq)
                        and bias[b + (h, i, j)] != -np.inf]
                if not keys:
                    continue                           # no allowed key: the row stays 0
                s = np.array([q[b + (h, i)] @ k[b + (g, j)] * scale + bias[b + (h, i, j)]
                              for j in keys])
                w = np.exp(s - s.max())
                w /= w.sum()
                out[b + (h, i)] = sum(wj * v[b + (g, j)] for wj, j in zip(w, keys))
    return out


@st.composite
def sdpa_case(draw):
    batch = tuple(draw(st.lists(st.integers(1, 2), min_size=0, max_size=2)))
    hkv = draw(st.integers(1, 3))
    hq = hkv * draw(st.integers(1, 3))
    lq, lk = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    d, dv = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((*batch, hq, lq, d))
    k = rng.standard_normal((*batch, hkv, lk, d))
    v = rng.standard_normal((*batch, hkv, lk, dv))
    full = (*batch, hq, lq, lk)
    mask_kind = draw(st.sampled_from(["none", "full", "rows", "padding"]))
    mask = {"none": None, "full": rng.random(full) < 0.7, "rows": rng.random((lq, lk)) < 0.6,
            "padding": rng.random((*batch, 1, 1, lk)) < 0.8}[mask_kind]
    bias_kind = draw(st.sampled_from(["none", "full", "per_head"]))
    bias = {"none": None, "full": rng.standard_normal(full),
            "per_head": rng.standard_normal((hq, 1, lk))}[bias_kind]
    is_causal = draw(st.booleans())
    scale = draw(st.sampled_from([None, 1.0, 0.3]))
    return q, k, v, mask, bias, is_causal, scale


@settings(deadline=None, max_examples=40)
@given(sdpa_case())
def test_matches_float64_reference(case):
    q, k, v, mask, bias, is_causal, scale = case
    expected = ref_sdpa(q, k, v, mask, bias, is_causal, scale)
    out = sdpa(q, k, v, mask, bias=bias, is_causal=is_causal, scale=scale)
    assert isinstance(out, ta.Tensor) and out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    out32 = sdpa(*(a.astype(np.float32) for a in (q, k, v)), mask, is_causal=is_causal,
                 bias=None if bias is None else bias.astype(np.float32), scale=scale)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.data, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("lq,lk", [(2, 5), (5, 2), (4, 4), (1, 7)])
def test_causal_is_bottom_right_aligned(lq, lk):
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((2, lq, 3)), rng.standard_normal((2, lk, 3)), rng.standard_normal((2, lk, 4))
    out = sdpa(q, k, v, is_causal=True).data
    np.testing.assert_allclose(out, ref_sdpa(q, k, v, is_causal=True), atol=1e-12)
    w = attention_weights(q, k, is_causal=True)
    allowed = np.array([[j <= i + lk - lq for j in range(lk)] for i in range(lq)])
    assert np.all(w[:, ~allowed] == 0)
    empty = ~allowed.any(axis=1)                      # Lq > Lk: first rows see no key
    assert np.all(out[:, empty] == 0)
    np.testing.assert_allclose(w[:, ~empty].sum(-1), 1.0)


def test_gqa_equals_mha_with_repeated_kv():
    rng = np.random.default_rng(2)
    q = rng.standard_normal((2, 6, 4, 5))
    k, v = rng.standard_normal((2, 2, 3, 5)), rng.standard_normal((2, 2, 3, 2))
    # query heads 0,1,2 -> KV head 0; 3,4,5 -> KV head 1 (contiguous groups, i // (Hq/Hkv))
    kr, vr = np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1)
    np.testing.assert_allclose(sdpa(q, k, v).data, sdpa(q, kr, vr).data, atol=1e-13)
    np.testing.assert_allclose(sdpa(q, k, v).data, ref_sdpa(q, kr, vr), atol=1e-12)
    wrong = np.tile(k, (1, 3, 1, 1))                  # the "i mod groups" mapping differs
    assert not np.allclose(sdpa(q, k, v).data, sdpa(q, wrong, np.tile(v, (1, 3, 1, 1))).data)


def test_fully_masked_rows_give_zero_output_and_gradient():
    rng = np.random.default_rng(3)
    q = ta.Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    k = ta.Tensor(rng.standard_normal((1, 5, 4)), requires_grad=True)
    v = ta.Tensor(rng.standard_normal((1, 5, 2)), requires_grad=True)
    mask = np.ones((3, 5), bool)
    mask[1] = False                                   # row 1 may attend nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # no RuntimeWarning (0/0, inf - inf)
        out = sdpa(q, k, v, mask)
        (out * out).sum().backward()
    assert np.all(out.data[:, 1] == 0) and np.isfinite(out.data).all()
    assert np.all(q.grad[:, 1] == 0) and np.isfinite(q.grad).all()
    assert np.isfinite(k.grad).all() and np.isfinite(v.grad).all()
    np.testing.assert_allclose(out.data, ref_sdpa(q.data, k.data, v.data, mask), atol=1e-12)


def test_all_masked_with_minus_inf_bias_and_empty_keys():
    q, k, v = np.ones((1, 2, 3)), np.ones((1, 4, 3)), np.ones((1, 4, 2))
    out = sdpa(q, k, v, bias=np.full((2, 4), -np.inf)).data
    assert np.all(out == 0)
    out0 = sdpa(q, np.ones((1, 0, 3)), np.ones((1, 0, 2))).data   # Lk = 0
    assert out0.shape == (1, 2, 2) and np.all(out0 == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_are_stable(dtype):
    rng = np.random.default_rng(4)
    q = rng.standard_normal((2, 3, 8)) * 100.0        # logits of order +-1e4 after scaling
    k = rng.standard_normal((2, 6, 8)) * 100.0
    v = rng.standard_normal((2, 6, 3))
    s = q @ k.swapaxes(-1, -2) / np.sqrt(8)
    assert np.abs(s).max() > 1e4
    out = sdpa(q.astype(dtype), k.astype(dtype), v.astype(dtype), bias=np.full((3, 6), -1e4, dtype)).data
    assert np.isfinite(out).all()
    # float32 rounds logits of size 1e4 to ~1e-3, so the weights agree to ~1e-3 there
    atol = 1e-9 if dtype == np.float64 else 5e-3
    np.testing.assert_allclose(out, ref_sdpa(q, k, v, bias=np.full((3, 6), -1e4)), atol=atol)


def test_float16_is_computed_in_float32():
    rng = np.random.default_rng(5)
    # q.k ~ 1.6e5 overflows float16 (max 65504), yet the scaled logits differ by O(1)
    q = np.full((2, 3, 4), 200.0, np.float16) + (rng.integers(-2, 3, (2, 3, 4)) * 0.125).astype(np.float16)
    k = np.full((2, 5, 4), 200.0, np.float16) + (rng.integers(-2, 3, (2, 5, 4)) * 0.125).astype(np.float16)
    v = rng.standard_normal((2, 5, 3)).astype(np.float16)
    with np.errstate(over="ignore"):
        assert np.isinf(q[0] @ k[0].T).all()            # what float16 arithmetic would give
    out = sdpa(q, k, v, scale=0.01)
    assert out.dtype == np.float16 and np.isfinite(out.data).all()
    expected = ref_sdpa(q, k, v, scale=0.01)
    w = attention_weights(q, k, scale=0.01)
    assert w.max() < 0.9                                  # not saturated: a real mixture
    np.testing.assert_allclose(out.data.astype(np.float64), expected, atol=3e-3)
    qt = ta.Tensor(q, requires_grad=True)
    sdpa(qt, k, v, scale=0.01).sum().backward()
    assert qt.grad.dtype == np.float16 and np.isfinite(qt.grad).all()


@pytest.mark.parametrize("arg,kw,match", [
    ("q", dict(q=(2, 3, 4), k=(2, 5, 3), v=(2, 5, 2)), r"head dim.*\(2, 3, 4\).*\(2, 5, 3\)"),
    ("v", dict(q=(2, 3, 4), k=(2, 5, 4), v=(2, 6, 2)), r"k \(2, 5, 4\) and v \(2, 6, 2\)"),
    ("h", dict(q=(3, 3, 4), k=(2, 5, 4), v=(2, 5, 2)), r"Hq=3.*multiple of Hkv=2"),
    ("rank", dict(q=(3, 4), k=(5, 4), v=(5, 2)), r"rank >= 3"),
])
def test_shape_errors_name_argument_and_shapes(arg, kw, match):
    a = {n: np.zeros(s) for n, s in kw.items()}
    with pytest.raises(ValueError, match=match):
        sdpa(a["q"], a["k"], a["v"])


def test_mask_and_bias_errors():
    q, k, v = np.zeros((2, 3, 4)), np.zeros((2, 5, 4)), np.zeros((2, 5, 2))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\).*\(2, 3, 5\)"):
        sdpa(q, k, v, np.ones((3, 4), bool))
    with pytest.raises(TypeError, match="mask must be bool"):
        sdpa(q, k, v, np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"bias of shape \(4, 5\)"):
        sdpa(q, k, v, bias=np.zeros((4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        sdpa(q, k, v, bias=np.full((3, 5), np.nan))
    with pytest.raises(TypeError, match="q must be a floating"):
        sdpa(np.zeros((2, 3, 4), int), k, v)
    with pytest.raises(ValueError, match="dropout_p"):
        sdpa(q, k, v, dropout_p=0.5)
    with pytest.raises(ValueError, match="scale must be a finite"):
        sdpa(q, k, v, scale=float("nan"))


def test_backend_registry():
    calls = []

    def fake(q, k, v, mask, *, bias, is_causal, scale, dropout_p, rng):
        calls.append((q.shape, scale, is_causal))
        return ta.Tensor(np.zeros((*q.shape[:-1], v.shape[-1])))

    register_sdpa_backend("fake_for_test", fake)
    out = sdpa(np.zeros((1, 2, 4)), np.zeros((1, 3, 4)), np.zeros((1, 3, 5)),
               is_causal=True, backend="fake_for_test")
    assert out.shape == (1, 2, 5) and calls == [((1, 2, 4), 0.5, True)]
    with pytest.raises(ValueError, match=r"unknown SDPA backend 'nope'.*dense"):
        sdpa(np.zeros((1, 2, 4)), np.zeros((1, 3, 4)), np.zeros((1, 3, 5)), backend="nope")
    with pytest.raises(ValueError, match=r"unknown SDPA backend '\.\./x'"):
        sdpa(np.zeros((1, 2, 4)), np.zeros((1, 3, 4)), np.zeros((1, 3, 5)), backend="../x")


# ----------------------------------------------------------------------------- gradients
def composed_sdpa(q, k, v, allowed, bias, scale):
    """The same function from elementary Tensor ops (an independent autograd path).
    allowed: bool (..., Hq, Lq, Lk) with at least one True per row; GQA via an index gather."""
    hq, hkv = q.shape[-3], k.shape[-3]
    idx = np.arange(hq) // (hq // hkv)                 # query head -> KV head
    kr, vr = k[..., idx, :, :], v[..., idx, :, :]
    s = (q @ kr.swapaxes(-1, -2)) * scale
    if bias is not None:
        s = s + bias
    s = s + np.where(allowed, 0.0, -1e30)              # masked keys: exp underflows to 0
    e = (s - s.data.max(axis=-1, keepdims=True)).exp()
    return (e / e.sum(axis=-1, keepdims=True)) @ vr


@pytest.mark.parametrize("hq,hkv,lq,lk,causal", [(4, 2, 3, 5, True), (3, 1, 4, 4, False),
                                                 (2, 2, 5, 3, False)])
def test_gradients_match_finite_differences_and_composition(hq, hkv, lq, lk, causal):
    rng = np.random.default_rng(hq * 100 + lq * 10 + lk)
    q = ta.Tensor(rng.standard_normal((2, hq, lq, 3)), requires_grad=True)
    k = ta.Tensor(rng.standard_normal((2, hkv, lk, 3)), requires_grad=True)
    v = ta.Tensor(rng.standard_normal((2, hkv, lk, 2)), requires_grad=True)
    bias = ta.Tensor(rng.standard_normal((hq, 1, lk)), requires_grad=True)   # broadcast bias
    mask = rng.random((2, 1, lq, lk)) < 0.8
    mask[..., -1] = True                                # every row keeps its last key
    fn = lambda a, b, c, d: sdpa(a, b, c, mask, bias=d, is_causal=causal, scale=0.7)
    assert ta.gradcheck(fn, q, k, v, bias, atol=1e-7, rtol=1e-5)

    allowed = mask & np.tri(lq, lk, lk - lq, dtype=bool) if causal else np.broadcast_to(mask, (2, hq, lq, lk))
    w = rng.standard_normal((2, hq, lq, 2))
    grads = []
    for f in (fn, lambda a, b, c, d: composed_sdpa(a, b, c, allowed, d, 0.7)):
        for t in (q, k, v, bias):
            t.grad = None
        (f(q, k, v, bias) * w).sum().backward()
        grads.append([t.grad.copy() for t in (q, k, v, bias)])
    for g_fused, g_composed in zip(*grads):
        np.testing.assert_allclose(g_fused, g_composed, rtol=1e-9, atol=1e-12)


def test_gradcheck_with_empty_rows_and_dropout():
    rng = np.random.default_rng(7)
    q = ta.Tensor(rng.standard_normal((2, 5, 3)), requires_grad=True)   # Lq > Lk: 2 empty rows
    k = ta.Tensor(rng.standard_normal((1, 3, 3)), requires_grad=True)
    v = ta.Tensor(rng.standard_normal((1, 3, 2)), requires_grad=True)
    assert ta.gradcheck(lambda a, b, c: sdpa(a, b, c, is_causal=True), q, k, v)
    # a fixed generator per call makes the dropout pattern a deterministic function
    drop = lambda a, b, c: sdpa(a, b, c, dropout_p=0.3, rng=np.random.default_rng(11))
    assert ta.gradcheck(drop, q, k, v)


def test_dropout_is_unbiased():
    rng = np.random.default_rng(8)
    q, k, v = rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 6, 4)), rng.standard_normal((1, 6, 3))
    gen = np.random.default_rng(9)
    outs = np.stack([sdpa(q, k, v, dropout_p=0.5, rng=gen).data for _ in range(4000)])
    expected = ref_sdpa(q, k, v)
    assert not np.allclose(outs[0], expected)           # dropout changes a single draw
    np.testing.assert_allclose(outs.mean(0), expected, atol=0.05)   # E[out] = no-dropout out


def test_flash_backend_is_found_by_name_and_agrees():
    """backend="flash" imports tinyattn.flash on first use (functional never imports it)."""
    rng = np.random.default_rng(12)
    q = ta.Tensor(rng.standard_normal((2, 4, 5, 8)), requires_grad=True)
    k = ta.Tensor(rng.standard_normal((2, 2, 7, 8)), requires_grad=True)
    v = ta.Tensor(rng.standard_normal((2, 2, 7, 3)), requires_grad=True)
    w = rng.standard_normal((2, 4, 5, 3))
    grads = []
    for backend in ("dense", "flash"):
        for t in (q, k, v):
            t.grad = None
        out = sdpa(q, k, v, is_causal=True, backend=backend)
        (out * w).sum().backward()
        grads.append([out.data] + [t.grad.copy() for t in (q, k, v)])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(grads[0][0], ref_sdpa(q.data, k.data, v.data, is_causal=True), atol=1e-12)


def test_agrees_with_torch_when_available():
    """The public oracle (torch >= 2.5, enable_gqa); skipped where torch is not installed.
    torch's is_causal is top-left aligned, so the bottom-right mask is passed explicitly."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    q, k, v = rng.standard_normal((2, 6, 3, 4)), rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((2, 2, 5, 3))
    mask = (rng.random((2, 1, 3, 5)) < 0.7) & np.tri(3, 5, 2, dtype=bool)
    mask[..., 0] = True
    bias = rng.standard_normal((6, 3, 5))
    attn = torch.from_numpy(np.where(mask, bias, -np.inf))
    want = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (q, k, v)), attn_mask=attn, scale=0.4, enable_gqa=True)
    got = sdpa(q, k, v, mask, bias=bias, scale=0.4).data
    np.testing.assert_allclose(got, want.numpy(), atol=1e-12)
