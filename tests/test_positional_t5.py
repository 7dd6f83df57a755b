"""T5 relative buckets against a scalar re-implementation of the published rule, and the bias module."""
import math

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import positional as P


def reference_bucket(rel, bidirectional, num_buckets, max_distance):
    """Raffel et al. 2020 (T5), one relative position (key - query) at a time, in plain Python."""
    offset = 0
    if bidirectional:
        num_buckets //= 2
        if rel > 0:
            offset = num_buckets
        n = abs(rel)
    else:
        n = max(-rel, 0)
    exact = num_buckets // 2
    if n < exact:
        return offset + n
    val = exact + int(math.log(n / exact) / math.log(max_distance / exact) * (num_buckets - exact))
    return offset + min(val, num_buckets - 1)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("nb,md", [(32, 128), (16, 64), (8, 20), (64, 1000)])
def test_buckets_match_rule(bidirectional, nb, md):
    rel = np.arange(-1500, 1500)
    got = P.t5_relative_bucket(rel, bidirectional, nb, md)
    want = [reference_bucket(int(r), bidirectional, nb, md) for r in rel]
    np.testing.assert_array_equal(got, want)
    assert got.min() >= 0 and got.max() == nb - 1


def test_bucket_landmarks_default():
    b = lambda r, bi=True: int(P.t5_relative_bucket(np.array(r), bi))  # noqa: E731
    assert b(0) == 0 and b(-1) == 1 and b(-7) == 7 and b(1) == 17 and b(7) == 23
    assert b(-128) == 15 and b(-10_000) == 15 and b(10_000) == 31
    # causal, exact = 16: 16 + int(log(n/16) / log(8) * 16): n=32 -> 16+5, n=64 -> 16+10
    assert b(-15, False) == 15 and b(-16, False) == 16
    assert b(-32, False) == 21 and b(-64, False) == 26 and b(-128, False) == 31
    assert b(5, False) == 0                           # causal: every future key is bucket 0


def test_buckets_monotone_in_distance_and_shape_kept():
    rel = -np.arange(0, 400).reshape(20, 20)
    out = P.t5_relative_bucket(rel, bidirectional=False)
    assert out.shape == (20, 20)
    assert np.all(np.diff(out.ravel()) >= 0)


def test_bucket_errors():
    with pytest.raises(TypeError, match="relative_position"):
        P.t5_relative_bucket(np.array([0.5]))
    with pytest.raises(ValueError, match="num_buckets"):
        P.t5_relative_bucket(np.array([1]), True, num_buckets=2)


def test_bias_module_values_and_alignment():
    mod = P.T5RelativeBias(3, num_buckets=8, max_distance=20, rng=np.random.default_rng(0))
    Lq, Lk = 3, 10
    out = mod(Lq, Lk)
    assert out.shape == (3, Lq, Lk)
    for h in range(3):
        for i in range(Lq):
            for j in range(Lk):
                b = reference_bucket(j - (i + Lk - Lq), False, 8, 20)
                assert out.data[h, i, j] == mod.table.data[b, h]
    assert [n for n, _ in mod.named_parameters()] == ["table"]


@pytest.mark.parametrize("bidirectional", [False, True])
def test_bias_module_gradcheck(bidirectional):
    mod = P.T5RelativeBias(2, num_buckets=8, max_distance=12, bidirectional=bidirectional,
                           rng=np.random.default_rng(1))

    def fn(table):
        mod.table = table
        return mod(4, 9)
    ta.gradcheck(fn, ta.Tensor(mod.table.data.astype(np.float64), requires_grad=True))


def test_bias_shared_by_two_layers_accumulates():
    mod = P.T5RelativeBias(2, num_buckets=8, max_distance=12, rng=np.random.default_rng(2))
    g1, g2 = np.random.default_rng(3).standard_normal((2, 2, 5, 5))
    (mod(5, 5) * ta.Tensor(g1)).sum().backward()
    first = mod.table.grad.copy()
    mod.table.grad = None
    ((mod(5, 5) * ta.Tensor(g1)).sum() + (mod(5, 5) * ta.Tensor(g2)).sum()).backward()
    idx = mod.buckets(5, 5)
    want = np.zeros((8, 2))
    for i in range(5):
        for j in range(5):
            want[idx[i, j]] += g2[:, i, j]
    np.testing.assert_allclose(mod.table.grad - first, want, rtol=1e-5, atol=1e-6)
