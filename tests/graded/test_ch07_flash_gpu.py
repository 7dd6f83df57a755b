"""Graded tests for chapter 07 (FlashAttention in Numba-CUDA), run in the CUDA simulator
(tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1): the tile count against brute force over every
(query, key) pair, the kernel against dense float64 attention on fresh random inputs."""
import math

import numpy as np
import pytest

MOD = "ch07_flash_gpu"


def _dense(q, k, v, causal):
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    nq, nk = s.shape[-2:]
    ok = np.arange(nk)[None, :] <= np.arange(nq)[:, None] + (nk - nq) if causal else np.ones((nq, nk), bool)
    s = np.where(ok, s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.where(ok, np.exp(s - np.where(np.isfinite(m), m, 0)), 0.0)
    l = e.sum(-1, keepdims=True)
    return (e / np.where(l == 0, 1, l)) @ v


def _brute_tiles(q0, nq, nk, block, causal):
    """Smallest n such that tiles [0, n) hold every key any row q0..q0+block-1 (< nq) may see."""
    need = 0
    for i in range(q0, min(q0 + block, nq)):
        for j in range(nk):
            if not causal or j <= i + nk - nq:
                need = max(need, j // block + 1)
    return need if causal else (nk + block - 1) // block


@pytest.mark.points(2)
def test_n_key_tiles_matches_brute_force(impl):
    ex = impl(MOD)
    rng = np.random.default_rng()
    for _ in range(60):
        nq, nk, block = int(rng.integers(1, 70)), int(rng.integers(1, 70)), int(rng.integers(1, 20))
        q0 = block * int(rng.integers(0, (nq + block - 1) // block))
        causal = bool(rng.integers(0, 2))
        assert ex.n_key_tiles(q0, nq, nk, block, causal) == _brute_tiles(q0, nq, nk, block, causal), \
            (q0, nq, nk, block, causal)


@pytest.mark.points(3)
def test_kernel_matches_dense(impl):
    """Non-causal: needs only Exercise 07.2 (the launcher calls n_key_tiles only when causal)."""
    ex = impl(MOD)
    rng = np.random.default_rng()
    n, d = int(rng.integers(17, 40)), int(rng.choice([8, 16]))       # ragged: not a multiple of BLOCK
    q, k, v = (rng.standard_normal((2, n, d)).astype(np.float32) for _ in range(3))
    out = ex.flash_attention_rows(q, k, v)
    np.testing.assert_allclose(out, _dense(q, k, v, False), atol=2e-5, rtol=1e-4)


@pytest.mark.points(3)
def test_kernel_causal_and_empty_rows(impl):
    ex = impl(MOD)
    rng = np.random.default_rng()
    nq, nk, d = int(rng.integers(20, 36)), int(rng.integers(5, 18)), 8   # nq > nk: first rows see no key
    q = rng.standard_normal((1, nq, d)).astype(np.float32)
    k, v = (rng.standard_normal((1, nk, d)).astype(np.float32) for _ in range(2))
    out = ex.flash_attention_rows(q, k, v, is_causal=True)
    assert np.all(out[0, : nq - nk] == 0)
    np.testing.assert_allclose(out, _dense(q, k, v, True), atol=2e-5, rtol=1e-4)


@pytest.mark.points(2)
def test_kernel_huge_logits_stay_finite(impl):
    ex = impl(MOD)
    rng = np.random.default_rng()
    q, k = (rng.standard_normal((1, 20, 8)).astype(np.float32) * 60 for _ in range(2))   # logits ~ 1e4
    v = rng.standard_normal((1, 20, 8)).astype(np.float32)
    out = ex.flash_attention_rows(q, k, v, is_causal=True)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, _dense(q, k, v, True), atol=1e-4, rtol=1e-3)
