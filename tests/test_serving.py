"""Serving simulation (chapter 09): hand-computed accounting on tiny workloads, and the properties
that must hold on a random one (paging never uses memory worse than max-length reservation)."""
import numpy as np
import pytest

from tinyattn.cache.serving import Request, simulate, synthetic_requests


def test_one_request_by_hand():
    reqs = [Request(0, 3, 2)]                  # stores 4 tokens at step 0 (prompt + 1), 5 at step 1
    c = simulate(reqs, budget_tokens=8, max_len=8)
    # contiguous: allocated 8 per step; stored 4 + 5, reserved 1 + 0, never used (8 - 5) twice
    assert c["utilisation"] == pytest.approx(9 / 16) and c["reserved_fraction"] == pytest.approx(1 / 16)
    assert c["internal_fraction"] == pytest.approx(6 / 16) and c["steps"] == 2
    p = simulate(reqs, budget_tokens=8, max_len=8, block_size=2)
    # paged: 2 blocks (4 slots) at step 0, 3 blocks (6 slots) at step 1
    assert p["utilisation"] == pytest.approx(9 / 10) and p["internal_fraction"] == pytest.approx(1 / 10)


def test_contiguous_admits_budget_over_max_len_sequences():
    reqs = [Request(0, 2, 3) for _ in range(5)]
    # each request lives 3 steps (3, 4, 5 tokens stored); 25 slots hold 2 reservations of 10:
    c = simulate(reqs, budget_tokens=25, max_len=10)          # batches 2, 2, 1 -> 9 steps
    assert c["mean_batch"] == pytest.approx(15 / 9) and c["steps"] == 9
    p = simulate(reqs, budget_tokens=25, max_len=10, block_size=1)
    assert p["mean_batch"] == pytest.approx(5.0) and p["steps"] == 3   # 5 x 5 tokens fit at once
    assert p["preemptions"] == 0


def test_random_workload_properties():
    reqs = synthetic_requests(60, np.random.default_rng(0), rate=0.3, prompt_range=(4, 60), output_range=(4, 60))
    cont = simulate(reqs, budget_tokens=1024, max_len=128)
    res = [simulate(reqs, budget_tokens=1024, max_len=128, block_size=b) for b in (1, 4, 16, 64)]
    assert res[0]["internal_fraction"] == 0 and res[0]["utilisation"] == 1
    for r in res:
        assert r["utilisation"] > cont["utilisation"] and r["reserved_fraction"] == 0
        assert r["utilisation"] + r["internal_fraction"] == pytest.approx(1.0)
        assert r["mean_batch"] > cont["mean_batch"]
    assert cont["utilisation"] + cont["internal_fraction"] + cont["reserved_fraction"] == pytest.approx(1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="max_len=4"):
        simulate([Request(0, 3, 2)], budget_tokens=8, max_len=4)
    with pytest.raises(ValueError, match="block_size"):
        simulate([Request(0, 1, 1)], budget_tokens=8, max_len=4, block_size=16)
    with pytest.raises(TypeError, match="rng"):
        synthetic_requests(3, 0)
