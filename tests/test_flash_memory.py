"""Peak extra memory (tracemalloc) of flash vs the naive N x N implementation."""
import numpy as np

from tinyattn.flash import flash_attention, standard_attention
from tinyattn.flash import peak_extra_bytes as _peak_extra_bytes



def test_flash_extra_memory_under_5_percent_of_scores():
    N, d = 2048, 64
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((N, d)).astype(np.float32) for _ in range(3))
    scores_bytes = N * N * 4                              # one float32 N x N matrix
    naive = _peak_extra_bytes(standard_attention, q, k, v)
    flash = _peak_extra_bytes(flash_attention, q, k, v, block_q=64, block_k=64)
    # the measurement sees the N x N matrices of the naive path (S and P: at least 2 of them)...
    assert naive >= 2 * scores_bytes
    # ...and flash needs its output (N d) plus tiles: O(N), under 5% of one N x N matrix
    assert flash < 0.05 * scores_bytes, (flash, scores_bytes)
    assert flash >= N * d * 4                             # it did allocate its output


def test_flash_extra_memory_grows_linearly():
    rng = np.random.default_rng(1)
    peaks = []
    for N in (512, 1024, 2048):
        q, k, v = (rng.standard_normal((N, 32)).astype(np.float32) for _ in range(3))
        peaks.append(_peak_extra_bytes(flash_attention, q, k, v, block_q=64, block_k=64))
    # doubling N at most ~doubles the extra memory (O(N)), far from the 4x of O(N^2)
    assert peaks[2] / peaks[1] < 2.5 and peaks[1] / peaks[0] < 2.5, peaks
