"""tinyattn.gpu.fp8_rotation (CPU, NumPy): e4m3 rounding, per-block quantisation, FlashAttention-3's
incoherent processing; checked against float64 and against the e4m3 definition enumerated by hand."""
import numpy as np
import pytest

from tinyattn.gpu.fp8_rotation import (E4M3_MAX, fp8_attention_error, hadamard, incoherent_rotation,
                                       quantize_e4m3, round_e4m3)


def _e4m3_grid() -> np.ndarray:
    """Every finite non-negative e4m3 value, from the bit definition (bias 7, 3 mantissa bits)."""
    vals = [m / 8 * 2.0 ** -6 for m in range(8)]                                   # exponent field 0
    vals += [(1 + m / 8) * 2.0 ** (e - 7) for e in range(1, 16) for m in range(8) if (e, m) != (15, 7)]
    return np.array(sorted(vals))


def test_round_e4m3_is_nearest_grid_value():
    grid = _e4m3_grid()
    assert grid.max() == E4M3_MAX and len(grid) == 127
    np.testing.assert_array_equal(round_e4m3(grid), grid)                          # representable: unchanged
    rng = np.random.default_rng(140)
    x = np.concatenate([rng.uniform(0, 448, 2000), np.exp(rng.uniform(-12, 6, 2000))])
    got = round_e4m3(x)
    dist = np.abs(grid[None, :] - x[:, None])
    best = dist.min(axis=1)
    assert np.all(np.abs(got - x) <= best + 1e-15), "round_e4m3 did not pick a nearest e4m3 value"
    np.testing.assert_array_equal(round_e4m3(-x), -got)                            # symmetric
    assert round_e4m3(np.array([1e6, -1e6])).tolist() == [448.0, -448.0]           # saturates
    assert round_e4m3(np.array([1.0625, 232.0])).tolist() == [1.0, 224.0]          # ties to even mantissa
    with pytest.raises(ValueError, match="finite"):
        round_e4m3(np.array([1.0, np.nan]))


def test_quantize_e4m3_blocks_and_error_bound():
    rng = np.random.default_rng(141)
    x = rng.standard_normal((2, 300, 16))
    x[1, 5, 3] = 50.0                                                               # one outlier: block 0 of head 1
    xq, s = quantize_e4m3(x, block_rows=128)
    assert s.shape == (2, 3) and xq.shape == x.shape
    np.testing.assert_allclose(s[1, 0], 50.0 / E4M3_MAX)
    for h in range(2):
        for b in range(3):
            blk = slice(128 * b, 128 * (b + 1))
            amax = np.abs(x[h, blk]).max()
            # 3 mantissa bits: relative error <= 2^-4 above the subnormal range, absolute <= 2^-10 s below it
            err = np.abs(xq[h, blk] - x[h, blk])
            assert np.all(err <= np.maximum(np.abs(x[h, blk]) * 2.0 ** -4, 2.0 ** -10 * amax / E4M3_MAX) + 1e-12)
    with pytest.raises(ValueError, match="block_rows"):
        quantize_e4m3(x[0, 0], 128)


@pytest.mark.parametrize("d", [1, 8, 64, 128])
def test_rotation_orthogonal_and_preserves_scores(d):
    h = hadamard(d)
    np.testing.assert_array_equal(h @ h.T, d * np.eye(d))
    rng = np.random.default_rng(142 + d)
    m = incoherent_rotation(d, rng)
    np.testing.assert_allclose(m @ m.T, np.eye(d), atol=1e-12)
    q, k = rng.standard_normal((37, d)), rng.standard_normal((53, d))
    np.testing.assert_allclose((q @ m) @ (k @ m).T, q @ k.T, atol=1e-11)           # Q K^T unchanged
    with pytest.raises(ValueError, match="power of two"):
        hadamard(96)
    with pytest.raises(TypeError, match="Generator"):
        incoherent_rotation(d, 0)


def test_rotation_repairs_outlier_channels():
    """With 4 channels of q and k 20x larger, one channel sets each block's scale and the rest lose
    mantissa; rotating spreads the outliers and brings FP8's error back near the Gaussian level."""
    rng = np.random.default_rng(143)
    n, d = 256, 64
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    gauss = fp8_attention_error(q, k, v)
    ch = rng.choice(d, 4, replace=False)
    q[:, ch] *= 20
    k[:, ch] *= 20
    m = incoherent_rotation(d, rng)
    plain, rotated = fp8_attention_error(q, k, v), fp8_attention_error(q, k, v, m)
    assert 0.01 < gauss < 0.1
    assert plain > 2 * gauss, (plain, gauss)
    assert rotated < plain / 2, (rotated, plain)
