"""The IO simulator: counted tile moves vs the paper's closed forms and published exact totals."""
import math

import numpy as np
import pytest

from tinyattn.flash import (HBMCounter, SRAMOverflow, fa1_block_sizes, fa1_io, fa2_io,
                            flash_attention, standard_attention, standard_attention_io)

M_PAPER = 98_304


def _run_fa1(N, d, M, seed=0):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((N, d)).astype(np.float32) for _ in range(3))
    b_r, b_c = fa1_block_sizes(d, M)
    c = HBMCounter(M=M)
    flash_attention(q, k, v, block_q=b_r, block_k=b_c, loop_order="kv_outer", counter=c)
    return c


@pytest.mark.parametrize("N,d,expected", [(1024, 64, 800_768), (4096, 64, 9_625_600),
                                          (4096, 128, 36_544_512)])
def test_fa1_literal_totals_from_reference(N, d, expected):
    """REFERENCE.md section 4: exact element counts of FA1 Algorithm 1 read literally."""
    c = _run_fa1(N, d, M_PAPER)
    assert c.total == expected                       # counted from the algorithm's tile moves
    assert fa1_io(N, d, M_PAPER) == expected         # closed form agrees
    assert c.tiles_skipped == 0


@pytest.mark.parametrize("N,d,expected", [(1024, 64, 4_456_448), (4096, 64, 68_157_440),
                                          (4096, 128, 69_206_016)])
def test_standard_attention_counts(N, d, expected):
    assert standard_attention_io(N, d)["total"] == expected
    if N <= 1024:                                    # run the counted naive algorithm where cheap
        rng = np.random.default_rng(0)
        q, k, v = (rng.standard_normal((N, d)).astype(np.float32) for _ in range(3))
        c = HBMCounter()
        standard_attention(q, k, v, counter=c)
        assert (c.reads, c.writes) == (3 * N * d + 2 * N * N, 2 * N * N + N * d)


def test_fa1_block_sizes():
    assert fa1_block_sizes(64, M_PAPER) == (64, 384)
    assert fa1_block_sizes(128, M_PAPER) == (128, 192)
    assert fa1_block_sizes(8, 100) == (4, 4)         # B_c = ceil(100/32) = 4, B_r = min(4, 8)
    with pytest.raises(ValueError):
        fa1_block_sizes(64, 32)


@pytest.mark.parametrize("N,d,bq,bk", [(100, 8, 16, 16), (257, 16, 64, 32), (64, 4, 100, 7)])
def test_fa2_counts_match_closed_form(N, d, bq, bk):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((N, d)) for _ in range(3))
    c = HBMCounter()
    flash_attention(q, k, v, block_q=bq, block_k=bk, loop_order="q_outer", counter=c)
    t_r = math.ceil(N / bq)
    assert c.total == fa2_io(N, d, bq) == 2 * N * d + N + t_r * 2 * N * d


def test_fa1_scales_as_n2_d2_over_m():
    """Theorem 2: Theta(N^2 d^2 / M). Sweep N, d, M (d <= M <= Nd); counted IO over N^2 d^2/M
    stays in a narrow band, and log-log slopes are 2 in N, 2 in d, -1 in M (lower-order terms aside)."""
    ratios, rows = [], []
    for N, d, M in [(256, 16, 1024), (512, 16, 1024), (1024, 16, 1024), (1024, 16, 2048),
                    (1024, 16, 4096), (512, 8, 4096), (512, 16, 4096), (512, 32, 4096)]:
        assert d <= M <= N * d
        c = _run_fa1(N, d, M)
        assert c.total == fa1_io(N, d, M)
        ratios.append(c.total / (N * N * d * d / M))
        rows.append((N, d, M, c.total))
    # leading term 12 N^2 d^2 / M (T_c = 4Nd/M key blocks, 3Nd per block), + T_c * 4N and 3Nd
    assert min(ratios) >= 12 and max(ratios) <= 12 * 1.6, ratios
    tot = {(N, d, M): t for N, d, M, t in rows}
    slope_n = math.log2(tot[(1024, 16, 1024)] / tot[(512, 16, 1024)])
    slope_m = math.log2(tot[(1024, 16, 2048)] / tot[(1024, 16, 1024)])
    slope_d = math.log2(tot[(512, 32, 4096)] / tot[(512, 16, 4096)])
    assert 1.9 <= slope_n <= 2.0 and -1.0 <= slope_m <= -0.9 and 1.8 <= slope_d <= 2.1, \
        (slope_n, slope_m, slope_d)


def test_causal_tiles_skipped_and_counted():
    rng = np.random.default_rng(2)
    N, b, T = 64, 16, 4
    q, k, v = (rng.standard_normal((N, 8)) for _ in range(3))
    for order in ("q_outer", "kv_outer"):
        full, causal = HBMCounter(), HBMCounter()
        flash_attention(q, k, v, block_q=b, block_k=b, loop_order=order, counter=full)
        flash_attention(q, k, v, block_q=b, block_k=b, loop_order=order, counter=causal,
                        is_causal=True)
        assert full.tiles_computed == T * T and full.tiles_skipped == 0
        assert causal.tiles_computed == T * (T + 1) // 2 and causal.tiles_skipped == T * (T - 1) // 2
        assert causal.total < full.total
    # FA2 causal: each query block i reads K, V blocks 0..i only
    assert causal.reads < full.reads


def test_counter_sram_check_and_bad_values():
    c = HBMCounter(M=100, strict=True)
    c.hold(60); c.release(60); c.hold(100)
    with pytest.raises(SRAMOverflow):
        c.hold(1)
    with pytest.raises(ValueError):
        HBMCounter().read(-1)
    # FA1 at M = 98,304, d = 64 keeps its tiles (Q, K, V, O, l, m and the S tile) within M
    c = _run_fa1(1024, 64, M_PAPER)
    assert 0 < c.sram_peak <= M_PAPER
