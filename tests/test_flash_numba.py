"""The Numba CPU kernel against a dense float64 reference (small sizes: compile time dominates)."""
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from tinyattn.flash import flash_attention_numba  # noqa: E402
from reference import dense_attention as dense  # noqa: E402


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("lq,lk,bq,bk", [(37, 53, 5, 7), (53, 37, 16, 16), (64, 64, 64, 64),
                                         (10, 3, 100, 1)])
def test_numba_matches_dense(is_causal, lq, lk, bq, bk):
    rng = np.random.default_rng(lq * 100 + lk)
    q = rng.standard_normal((2, lq, 16)).astype(np.float32)
    k = rng.standard_normal((2, lk, 16)).astype(np.float32)
    v = rng.standard_normal((2, lk, 8)).astype(np.float32)
    out, lse = flash_attention_numba(q, k, v, is_causal=is_causal, block_q=bq, block_k=bk)
    ref_out, ref_lse = dense(q, k, v, is_causal)
    assert out.shape == (2, lq, 8) and lse.shape == (2, lq) and out.dtype == np.float32
    assert not np.isnan(out).any() and not np.isnan(lse).any()
    np.testing.assert_allclose(out, ref_out, atol=2e-6)
    np.testing.assert_array_equal(np.isneginf(lse), np.isneginf(ref_lse))
    fin = np.isfinite(ref_lse)
    np.testing.assert_allclose(lse[fin], ref_lse[fin], atol=2e-5)
    if is_causal and lq > lk:
        assert np.all(out[:, : lq - lk] == 0)         # rows that see no key


def test_numba_huge_logits_and_fp16_and_batch_axes():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 3, 20, 8)).astype(np.float16)
    k = rng.standard_normal((2, 3, 24, 8)).astype(np.float16)
    v = rng.standard_normal((2, 3, 24, 8)).astype(np.float16)
    out, _ = flash_attention_numba(q, k, v, block_q=8, block_k=8)
    np.testing.assert_allclose(out, dense(q, k, v, False)[0], atol=1e-5)
    q32 = q.astype(np.float32)
    q32[..., 0] = 1e4
    out, lse = flash_attention_numba(q32, k, v, is_causal=True, block_q=8, block_k=8)
    assert np.isfinite(out).all() and np.isfinite(lse).all()
    np.testing.assert_allclose(out, dense(q32, k, v, True)[0], atol=1e-4)


def test_import_tinyattn_flash_does_not_import_numba():
    import subprocess
    code = "import sys, tinyattn, tinyattn.flash; assert 'numba' not in sys.modules, 'numba imported'"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_fast_exp2_matches_numpy():
    from tinyattn.flash.numba_cpu import _exp2_rows

    rng = np.random.default_rng(1)
    t = -np.abs(rng.standard_normal(5000) * 36).astype(np.float32)    # exponents, base 2
    t[:8] = [0.0, -1e-30, -0.5, -125.9, -126.6, -127.0, -1e4, -np.inf]
    ref = 2.0 ** t.astype(np.float64)
    shift = np.float32(3.0)
    got = t + shift                                      # the kernel computes 2^(x - shift)
    total = _exp2_rows(got, t.size, shift)
    assert not np.isnan(got).any() and np.all(got[5:8] == 0) and got[0] == 1
    near = t > -29                                       # 2^-29 ~ e^-20: weights that are not negligible
    np.testing.assert_allclose(got[near], ref[near], rtol=1e-6)
    normal = t >= -126                                   # float32 normal range
    np.testing.assert_allclose(got[normal], ref[normal], rtol=1e-5)
    assert abs(total - ref.sum()) <= 1e-5 * ref.sum()


def test_row_max_vectorised_helper():
    from tinyattn.flash.numba_cpu import _row_max

    rng = np.random.default_rng(2)
    x = rng.standard_normal(300).astype(np.float32)
    x[17] = 9.5
    x[200:] = -np.inf
    for n in (0, 1, 17, 18, 299, 300):
        want = max(-np.inf, x[:n].max()) if n else -np.inf
        assert _row_max(x, n, np.float32(-np.inf)) == want, n
    assert _row_max(x, 300, np.float32(20.0)) == 20.0


@pytest.mark.parametrize("is_causal", [False, True])
def test_default_blocks_ragged_and_lse(is_causal):
    """Default tile sizes (several key tiles, a short last block of each) on longer rows."""
    rng = np.random.default_rng(3)
    q = rng.standard_normal((3, 300, 24)).astype(np.float32) * 2
    k = rng.standard_normal((3, 700, 24)).astype(np.float32) * 2
    v = rng.standard_normal((3, 700, 5)).astype(np.float32)
    out, lse = flash_attention_numba(q, k, v, is_causal=is_causal)
    ref_out, ref_lse = dense(q, k, v, is_causal)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)   # float32, logits of std 4
    np.testing.assert_allclose(lse, ref_lse, atol=2e-5)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_every_task_done_once_for_any_thread_count(threads):
    """The worker threads take (batch row, query block) tasks from a shared counter: with 1, 2 or 3
    threads (more workers than tasks for a short input) every row must be computed, identically."""
    import numba

    rng = np.random.default_rng(4)
    q = rng.standard_normal((5, 70, 8)).astype(np.float32)
    k = rng.standard_normal((5, 90, 8)).astype(np.float32)
    v = rng.standard_normal((5, 90, 3)).astype(np.float32)
    ref_out, _ = dense(q, k, v, True)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        out, _ = flash_attention_numba(q, k, v, is_causal=True, block_q=16, block_k=32)
        one, _ = flash_attention_numba(q[:1, :16], k[:1], v[:1], is_causal=True, block_q=16, block_k=32)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_allclose(out, ref_out, atol=2e-6)
    np.testing.assert_allclose(one, dense(q[:1, :16], k[:1], v[:1], True)[0], atol=2e-6)   # 1 task
