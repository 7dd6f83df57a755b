"""Graded tests for chapter 10 (sparse attention): masks checked element by element against their
definition and tinyattn.sparse; the tile loop against dense float64 attention, with NaNs planted in
keys/values that only skipped tiles contain (a loop that reads them fails)."""
import numpy as np
import pytest

from tinyattn import sparse as S

MOD = "ch10_sparse"


def dense_masked(q, k, v, mask):
    s = np.where(mask, q @ k.T / np.sqrt(q.shape[1]), -np.inf)
    m = s.max(1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    den = e.sum(1, keepdims=True)
    return e / np.where(den == 0, 1, den) @ v


@pytest.mark.points(2)
@pytest.mark.parametrize("L,radius", [(13, 3), (7, 0), (5, 9)])
def test_sliding_window_mask(impl, L, radius):
    ex = impl(MOD)
    for causal in (False, True):
        got = np.asarray(ex.sliding_window_mask(L, radius, causal=causal))
        want = S.sliding_window_mask(L, radius, causal=causal)
        assert got.shape == want.shape, f"L={L}, radius={radius}, causal={causal}: shape {got.shape}, expected {want.shape}"
        assert got.dtype == bool, f"expected a bool mask, got dtype {got.dtype}"
        bad = np.argwhere(got != want)
        assert bad.size == 0, (f"L={L}, radius={radius}, causal={causal}: first wrong entry (query i, key j) = "
                               f"{tuple(bad[0])}: expected {want[tuple(bad[0])]}, got {got[tuple(bad[0])]}")


@pytest.mark.points(1)
def test_sliding_window_empty(impl):
    ex = impl(MOD)
    assert np.asarray(ex.sliding_window_mask(0, 2)).shape == (0, 0), "L=0 must give a (0, 0) mask"


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [3, 11])
def test_bigbird_structure(impl, seed):
    ex = impl(MOD)
    nb, w, g, r = 11, 3, 2, 2
    got = np.asarray(ex.bigbird_block_mask(nb, w, g, r, np.random.default_rng(seed)))
    assert got.shape == (nb, nb) and got.dtype == bool, f"expected bool ({nb}, {nb}), got {got.dtype} {got.shape}"
    a = np.arange(nb)
    window = np.abs(a[:, None] - a[None, :]) <= w // 2
    glob = (a[:, None] < g) | (a[None, :] < g)
    missing = np.argwhere((window | glob) & ~got)
    assert missing.size == 0, f"seed {seed}: window/global block {tuple(missing[0])} is missing"
    extra = (got & ~(window | glob)).sum(1)
    assert np.all(extra[g:] == r), f"seed {seed}: random blocks per non-global row {extra[g:].tolist()}, expected {r} each"
    again = np.asarray(ex.bigbird_block_mask(nb, w, g, r, np.random.default_rng(seed)))
    assert np.array_equal(got, again), f"seed {seed}: the same seed must give the same mask"


@pytest.mark.points(2)
def test_bigbird_matches_library_draws(impl):
    ex = impl(MOD)
    for seed, (nb, w, g, r) in ((5, (9, 3, 1, 3)), (6, (12, 5, 1, 2)), (7, (4, 1, 0, 9))):
        got = np.asarray(ex.bigbird_block_mask(nb, w, g, r, np.random.default_rng(seed)))
        _, want = S.bigbird_mask(nb * 4, 4, w, g, r, rng=np.random.default_rng(seed), return_blocks=True)
        assert np.array_equal(got, want), (f"seed {seed}, n_blocks={nb}, window={w}, global={g}, random={r}: "
                                           f"rows differ at {np.flatnonzero((got != want).any(1)).tolist()} "
                                           "(draw with rng.choice(free, size, replace=False), rows in order)")


def _case(seed, Lq, Lk, d, dv, bq, bk, p):
    rng = np.random.default_rng(seed)
    q, k, v = rng.standard_normal((Lq, d)), rng.standard_normal((Lk, d)), rng.standard_normal((Lk, dv))
    bm = rng.random((-(-Lq // bq), -(-Lk // bk))) < p
    return q, k, v, bm


@pytest.mark.points(3)
@pytest.mark.parametrize("seed,shape", [(21, (37, 50, 8, 5, 8, 16)), (22, (40, 24, 4, 3, 16, 5))])
def test_block_sparse_equals_dense(impl, seed, shape):
    ex = impl(MOD)
    Lq, Lk, d, dv, bq, bk = shape
    q, k, v, bm = _case(seed, Lq, Lk, d, dv, bq, bk, 0.5)
    bm[1] = False                                        # one query block with no tile at all
    out, n = ex.block_sparse_attention(q, k, v, bm, bq, bk)
    out = np.asarray(out)
    want = dense_masked(q, k, v, S.expand_block_mask(bm, bq, bk, Lq, Lk))
    assert out.shape == want.shape, f"seed {seed}: out shape {out.shape}, expected {want.shape}"
    np.testing.assert_allclose(out, want, atol=1e-10, err_msg=f"seed {seed}: output differs from dense "
                               "attention with the expanded block mask (rows of an empty query block must be 0)")
    assert int(n) == int(bm.sum()), f"seed {seed}: n_tiles={n}, expected the {int(bm.sum())} True tiles"


@pytest.mark.points(3)
def test_block_sparse_never_reads_skipped_tiles(impl):
    ex = impl(MOD)
    seed = 23
    q, k, v, bm = _case(seed, 32, 48, 6, 4, 8, 8, 0.6)
    bm[:, 2] = False                                     # key block 2 is used by no query block
    k[16:24] = np.nan
    v[16:24] = np.nan                                    # so its keys and values may be garbage
    with np.errstate(invalid="ignore"):
        out, n = ex.block_sparse_attention(q, k, v, bm, 8, 8)
    out = np.asarray(out)
    assert np.isfinite(out).all(), (f"seed {seed}: NaN in the output: a skipped tile (key block 2, all False) "
                                    "was read; `continue` before touching k or v")
    keep = np.ones(48, bool); keep[16:24] = False
    want = dense_masked(q, k[keep], v[keep], S.expand_block_mask(bm, 8, 8, 32, 48)[:, keep])
    np.testing.assert_allclose(out, want, atol=1e-10, err_msg=f"seed {seed}: output differs from dense masked attention")
    assert int(n) == int(bm.sum()), f"seed {seed}: n_tiles={n}, expected {int(bm.sum())}"


@pytest.mark.points(1)
def test_block_sparse_large_logits(impl):
    ex = impl(MOD)
    seed = 24
    q, k, v, bm = _case(seed, 16, 16, 4, 3, 4, 4, 0.7)
    q = q * 300.0                                          # scores of order 1e3: needs the running max
    bm[:, 0] = True
    out, _ = ex.block_sparse_attention(q, k, v, bm, 4, 4)
    np.testing.assert_allclose(np.asarray(out), dense_masked(q, k, v, S.expand_block_mask(bm, 4, 4, 16, 16)),
                               atol=1e-9, err_msg=f"seed {seed}: large scores overflow (subtract the running max)")
