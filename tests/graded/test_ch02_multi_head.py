"""Graded tests for chapter 02 (multi-head attention): compare with tinyattn.attention on fresh random
inputs, plus the properties that define each piece (inverse, grouping, permutation equivariance)."""
import numpy as np
import pytest

from tinyattn import attention as A

MOD = "ch02_multi_head"


def _rng():
    return np.random.default_rng()                  # fresh inputs each run


@pytest.mark.points(2)
def test_split_and_merge_heads(impl):
    ex = impl(MOD)
    rng = _rng()
    B, L, H, d = (int(n) for n in rng.integers(1, 6, size=4))
    x = rng.standard_normal((B, L, H * d))
    got = np.asarray(ex.split_heads(x, H))
    assert got.shape == (B, H, L, d)
    np.testing.assert_array_equal(got, A.split_heads(x, H))
    np.testing.assert_array_equal(got[:, -1], x[:, :, (H - 1) * d:])     # last head, last features
    np.testing.assert_array_equal(np.asarray(ex.merge_heads(got)), x)
    y = rng.standard_normal((B, H, L, d))
    np.testing.assert_array_equal(np.asarray(ex.merge_heads(y)), A.merge_heads(y))


@pytest.mark.points(2)
def test_kv_head_for_query_head(impl):
    ex = impl(MOD)
    assert [ex.kv_head_for_query_head(i, 8, 2) for i in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]
    for n_kv in (1, 2, 3, 4, 6, 12):
        for i in range(12):
            assert ex.kv_head_for_query_head(i, 12, n_kv) == A.kv_head_for_query_head(i, 12, n_kv), \
                f"query head {i}, n_heads=12, n_kv_heads={n_kv}"


def _module_and_weights(rng, d_model, n_heads, n_kv):
    m = A.MultiHeadAttention(d_model, n_heads, n_kv, rng=rng, dtype=np.float64)
    return m, [p.weight.data for p in (m.q_proj, m.k_proj, m.v_proj, m.o_proj)]


@pytest.mark.points(3)
@pytest.mark.parametrize("kind", ["mha", "gqa", "mqa"])
def test_mha_forward_matches_library(impl, kind):
    ex = impl(MOD)
    rng = _rng()
    n_kv = int(rng.integers(2, 4))
    n_heads = {"mha": n_kv, "gqa": 2 * n_kv, "mqa": n_kv}[kind]
    n_kv = 1 if kind == "mqa" else n_kv
    d_model = n_heads * int(rng.integers(1, 5))
    m, w = _module_and_weights(rng, d_model, n_heads, n_kv)
    x = rng.standard_normal((2, int(rng.integers(1, 7)), d_model))
    for causal in (False, True):
        got = np.asarray(ex.mha_forward(x, *w, n_heads, n_kv, causal=causal))
        assert got.shape == x.shape
        np.testing.assert_allclose(got, m(x, is_causal=causal).data, atol=1e-10,
                                   err_msg=f"{kind}, causal={causal}")


@pytest.mark.points(1)
def test_mha_forward_is_permutation_equivariant(impl):
    ex = impl(MOD)
    rng = _rng()
    _, w = _module_and_weights(rng, 8, 4, 2)
    x = rng.standard_normal((1, 6, 8))
    perm = rng.permutation(6)
    np.testing.assert_allclose(np.asarray(ex.mha_forward(x[:, perm], *w, 4, 2)),
                               np.asarray(ex.mha_forward(x, *w, 4, 2))[:, perm], atol=1e-10)
