"""Graded tests for chapter 02 (multi-head attention): compare with tinyattn.attention, plus the properties
that define each piece (inverse, grouping, permutation equivariance).

Inputs are deterministic (``np.random.default_rng(SEED)``, the seed is printed on failure). Sizes never hide
an axis: B, L, H, d_head all differ, d_model != d_head, groups hold more than one head.
"""
import numpy as np
import pytest

from tinyattn import attention as A
from tinyattn.grading.check import assert_close, assert_equal, assert_shape

MOD = "ch02_multi_head"


@pytest.mark.points(2)
def test_split_and_merge_heads(impl):
    ex = impl(MOD)
    SEED = 1201
    rng = np.random.default_rng(SEED)
    B, L, H, d = 2, 5, 3, 4
    x = rng.standard_normal((B, L, H * d))
    name = f"split_heads(x (B={B}, L={L}, H*d={H * d}), n_heads={H})"
    got = assert_shape(name, ex.split_heads(x, H), (B, H, L, d), seed=SEED)
    assert_equal(name, got, A.split_heads(x, H), seed=SEED)
    assert_equal(name + " last head = last d features", got[:, -1], x[:, :, (H - 1) * d:], seed=SEED)
    assert_equal("merge_heads(split_heads(x))", ex.merge_heads(got), x, seed=SEED)
    y = rng.standard_normal((B, H, L, d))
    assert_equal(f"merge_heads(y (B={B}, H={H}, L={L}, d={d}))", ex.merge_heads(y), A.merge_heads(y), seed=SEED)


@pytest.mark.points(2)
def test_kv_head_for_query_head(impl):
    ex = impl(MOD)
    assert_equal("[kv_head_for_query_head(i, 8, 2) for i in range(8)]",
                 [ex.kv_head_for_query_head(i, 8, 2) for i in range(8)], [0, 0, 0, 0, 1, 1, 1, 1])
    for n_heads, n_kv in [(12, 1), (12, 2), (12, 3), (12, 4), (12, 6), (12, 12), (16, 4), (8, 8)]:
        assert_equal(f"[kv_head_for_query_head(i, {n_heads}, {n_kv}) for i in range({n_heads})]",
                     [ex.kv_head_for_query_head(i, n_heads, n_kv) for i in range(n_heads)],
                     [A.kv_head_for_query_head(i, n_heads, n_kv) for i in range(n_heads)])


def _module_and_weights(rng, d_model, n_heads, n_kv):
    m = A.MultiHeadAttention(d_model, n_heads, n_kv, rng=rng, dtype=np.float64)
    return m, [p.weight.data for p in (m.q_proj, m.k_proj, m.v_proj, m.o_proj)]


# kind: (n_heads, n_kv_heads, d_head); d_model = n_heads * d_head
CONFIGS = {"mha": (3, 3, 4), "gqa": (6, 2, 3), "mqa": (4, 1, 5)}


@pytest.mark.points(3)
@pytest.mark.parametrize("kind", list(CONFIGS))
def test_mha_forward_matches_library(impl, kind):
    ex = impl(MOD)
    SEED = 1210 + list(CONFIGS).index(kind)
    rng = np.random.default_rng(SEED)
    n_heads, n_kv, dh = CONFIGS[kind]
    d_model = n_heads * dh
    m, w = _module_and_weights(rng, d_model, n_heads, n_kv)
    x = rng.standard_normal((2, 7, d_model))
    for causal in (False, True):
        name = f"mha_forward(x (2, 7, {d_model}), n_heads={n_heads}, n_kv_heads={n_kv}, causal={causal}) [{kind}]"
        got = assert_shape(name, ex.mha_forward(x, *w, n_heads, n_kv, causal=causal), x.shape, seed=SEED)
        assert_close(name, got, m(x, is_causal=causal).data, seed=SEED, atol=1e-10)
    if n_kv == n_heads:
        assert_close(f"mha_forward(x, n_heads={n_heads}) with n_kv_heads left at its default",
                     ex.mha_forward(x, *w, n_heads), m(x).data, seed=SEED, atol=1e-10)


@pytest.mark.points(1)
def test_mha_forward_is_permutation_equivariant(impl):
    ex = impl(MOD)
    SEED = 1220
    rng = np.random.default_rng(SEED)
    _, w = _module_and_weights(rng, 8, 4, 2)
    x = rng.standard_normal((1, 6, 8))
    perm = rng.permutation(6)
    assert_close("mha_forward(x[:, perm]) vs mha_forward(x)[:, perm] (non-causal)",
                 ex.mha_forward(x[:, perm], *w, 4, 2), np.asarray(ex.mha_forward(x, *w, 4, 2))[:, perm],
                 seed=SEED, atol=1e-10)
