"""Graded tests for chapter 12 (attention across devices): compare with dense float64 attention and
with tinyattn.distributed on seeded inputs (the seed is in every failure message)."""
import math

import numpy as np
import pytest

from tinyattn import distributed as D

MOD = "ch12_distributed"


def _dense(q, k, v, q_pos, k_pos, causal, scale):
    """float64 attention of q over (k, v) with a global-position causal mask -> (o, lse)."""
    s = q @ k.T * scale
    ok = k_pos[None, :] <= q_pos[:, None] if causal else np.ones(s.shape, bool)
    s = np.where(ok, s, -np.inf)
    m = s.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.where(ok, np.exp(s - m), 0)
    l = e.sum(axis=1, keepdims=True)
    o = e / np.where(l == 0, 1, l) @ v
    lse = np.where(l[:, 0] == 0, -np.inf, m[:, 0] + np.log(np.where(l[:, 0] == 0, 1, l[:, 0])))
    return o, lse


def _assert_close(name, got, want, seed, atol=1e-10):
    got = np.asarray(got)
    assert got.shape == want.shape, f"{name} (seed {seed}): shape {got.shape}, expected {want.shape}"
    bad = ~np.isclose(got, want, atol=atol, rtol=1e-9) & ~(np.isneginf(got) & np.isneginf(want))
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{name} (seed {seed}): {bad.sum()} of {bad.size} elements differ; "
                             f"first at index {i}: got {got[i]!r}, expected {want[i]!r}")


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [1201, 1202])
def test_merge_lse_equals_attention_over_the_union(impl, seed):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    n, m1, m2, d, dv = 7, 5, 9, 4, 3
    q = rng.standard_normal((n, d)) * 3
    k, v = rng.standard_normal((m1 + m2, d)), rng.standard_normal((m1 + m2, dv))
    pos = np.arange(m1 + m2)
    a = _dense(q, k[:m1], v[:m1], pos[:n], pos[:m1], False, 0.5)
    b = _dense(q, k[m1:], v[m1:], pos[:n], pos[m1:], False, 0.5)
    o, lse = ex.merge_lse(*a, *b)
    want_o, want_lse = _dense(q, k, v, pos[:n], pos, False, 0.5)
    _assert_close("merged output", o, want_o, seed)
    _assert_close("merged lse", lse, want_lse, seed)
    o2, lse2 = ex.merge_lse(*b, *a)                       # merging is symmetric
    _assert_close("merged output (arguments swapped)", o2, want_o, seed)


@pytest.mark.points(1)
def test_merge_lse_empty_rows_and_large_logits(impl):
    ex = impl(MOD)
    seed = 1203
    rng = np.random.default_rng(seed)
    o1, o2 = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    lse1 = np.array([-np.inf, -np.inf, 1e4, 3.0])
    lse2 = np.array([-np.inf, 2.0, 1e4 - 1, 3.0])
    o1[:2] = 0
    o2[0] = 0
    o, lse = ex.merge_lse(o1, lse1, o2, lse2)
    assert not np.isnan(np.asarray(o)).any(), f"seed {seed}: NaN in the merged output"
    want_lse = np.array([-np.inf, 2.0, 1e4 + np.log1p(np.exp(-1.0)), 3.0 + np.log(2.0)])
    _assert_close("lse (empty row, one empty side, 1e4 logits, equal lse)", lse, want_lse, seed, atol=1e-9)
    w = 1 / (1 + np.exp(-1.0))
    want_o = np.stack([np.zeros(3), o2[1], w * o1[2] + (1 - w) * o2[2], 0.5 * (o1[3] + o2[3])])
    _assert_close("output", o, want_o, seed)


@pytest.mark.points(3)
@pytest.mark.parametrize("causal, seed", [(False, 1204), (True, 1205)])
def test_ring_step_run_around_the_ring_equals_dense(impl, causal, seed):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    n, p, d, dv = 24, 3, 6, 5
    scale = 0.7                                              # not 1/sqrt(d): the scale argument is used
    q, k, v = rng.standard_normal((n, d)), rng.standard_normal((n, d)), rng.standard_normal((n, dv))
    shards = D.shard_indices(n, p, "zigzag")
    for r in range(p):
        qp = shards[r]
        o, lse = np.zeros((len(qp), dv)), np.full(len(qp), -np.inf)
        for step in range(p):
            kp = shards[(r - step) % p]
            o, lse = ex.ring_step(q[qp], k[kp], v[kp], qp, kp, o, lse, is_causal=causal, scale=scale)
        want_o, want_lse = _dense(q[qp], k, v, qp, np.arange(n), causal, scale)
        _assert_close(f"device {r} output after {p} ring steps (causal={causal})", o, want_o, seed)
        _assert_close(f"device {r} lse after {p} ring steps (causal={causal})", lse, want_lse, seed)


@pytest.mark.points(1)
def test_ring_step_fully_masked_block_changes_nothing(impl):
    ex = impl(MOD)
    seed = 1206
    rng = np.random.default_rng(seed)
    q, k, v = rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    o0, lse0 = rng.standard_normal((4, 2)), rng.standard_normal(4)
    o, lse = ex.ring_step(q, k, v, np.arange(4), np.arange(10, 15), o0, lse0, is_causal=True, scale=1.0)
    _assert_close("output after a block of future keys", o, o0, seed)
    _assert_close("lse after a block of future keys", lse, lse0, seed)


@pytest.mark.points(2)
@pytest.mark.parametrize("n, p", [(24, 3), (64, 4), (10, 5)])
def test_zigzag_shards(impl, n, p):
    ex = impl(MOD)
    got = ex.zigzag_shards(n, p)
    want = D.shard_indices(n, p, "zigzag")
    assert len(got) == p, f"zigzag_shards({n}, {p}): {len(got)} shards, expected {p}"
    for r, (g, w) in enumerate(zip(got, want)):
        assert np.array_equal(np.sort(np.asarray(g)), w), \
            f"zigzag_shards({n}, {p}): device {r} got positions {list(np.asarray(g))}, expected {list(w)}"
    w = D.causal_work([np.sort(np.asarray(g)) for g in got])
    assert len(set(w.sum(axis=0).tolist())) == 1, f"causal work per device is not balanced: {w.sum(axis=0)}"


@pytest.mark.points(1)
def test_zigzag_shards_rejects_bad_lengths(impl):
    ex = impl(MOD)
    for n, p in ((12, 4), (10, 3)):
        with pytest.raises(ValueError):
            ex.zigzag_shards(n, p)
