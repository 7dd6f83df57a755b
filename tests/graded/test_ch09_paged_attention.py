"""Graded tests for chapter 09 (block tables, copy-on-write allocator): compare with
tinyattn.cache.paged on seeded operation sequences and check the bookkeeping invariants."""
import copy

import numpy as np
import pytest

from tinyattn.cache.paged import BlockAllocator, PagedKVCache

MOD = "ch09_paged_attention"


def _interleaved_allocator(seed, n_blocks=24, bs=4):
    rng = np.random.default_rng(seed)
    a = BlockAllocator(n_blocks, bs)
    slots = {}
    for s in range(3):
        a.add_sequence(s)
        slots[s] = []
    for _ in range(9):
        s, n = int(rng.integers(3)), int(rng.integers(1, 5))
        got, _ = a.append(s, n)
        slots[s] += got.tolist()
    return a, slots


@pytest.mark.points(1)
def test_slot_of_matches_allocator(impl):
    ex = impl(MOD)
    seed = 901
    a, slots = _interleaved_allocator(seed)
    for s, flat in slots.items():
        for t, want in enumerate(flat):
            block, off = ex.slot_of(a.tables[s], t, a.block_size)
            assert block * a.block_size + off == want, (f"seed {seed}: sequence {s} token {t}: got block {block} "
                                                        f"offset {off}, expected block {want // 4} offset {want % 4}")


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [902, 903])
def test_gather_kv_reads_back_each_sequence(impl, seed):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    cache = PagedKVCache(20, 3, 2, 5, dtype=np.float64)
    dense = {}
    for _ in range(8):
        s, n = int(rng.integers(3)), int(rng.integers(1, 6))
        k = rng.standard_normal((2, n, 5))
        cache.append(s, k, k)
        dense[s] = k if s not in dense else np.concatenate([dense[s], k], 1)
    for s, want in dense.items():
        table = cache.allocator.tables[s] + [-1, -1]                # padding past the used entries
        got = np.asarray(ex.gather_kv(cache.k_pool, table, cache.allocator.lengths[s]))
        assert got.shape == want.shape, f"seed {seed}: sequence {s}: shape {got.shape}, expected {want.shape}"
        np.testing.assert_allclose(got, want, err_msg=f"seed {seed}: sequence {s}: tokens out of order")


def _nonempty(tables, lengths):
    return {s: list(t) for s, t in tables.items() if lengths.get(s, 0) > 0}


def _check_same(state, a, seed, step):
    got, want = _nonempty(state["tables"], state["lengths"]), _nonempty(a.tables, a.lengths)
    assert got == want, f"seed {seed}, step {step}: tables {got} != {want}"
    assert {s: n for s, n in state["lengths"].items() if n} == {s: n for s, n in a.lengths.items() if n}, \
        f"seed {seed}, step {step}: lengths differ"
    assert list(state["ref"]) == a.ref_counts.tolist(), \
        f"seed {seed}, step {step}: ref counts {list(state['ref'])}, expected {a.ref_counts.tolist()}"
    assert sorted(state["free"]) == sorted(a.free_list), f"seed {seed}, step {step}: free lists differ"


def _manual_fork(state, parent, child):
    for b in state["tables"][parent]:
        state["ref"][b] += 1
    state["tables"][child] = list(state["tables"][parent])
    state["lengths"][child] = state["lengths"][parent]


@pytest.mark.points(3)
@pytest.mark.parametrize("seed", [904, 905, 906])
def test_append_token_with_copy_on_write_matches_allocator(impl, seed):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    state, a = ex.new_state(40, 3), BlockAllocator(40, 3)
    state["free"], a.free_list = list(range(39, -1, -1)), list(range(39, -1, -1))
    n_seq = 2
    for s in range(n_seq):
        a.add_sequence(s)
    for step in range(60):
        if rng.random() < 0.12:                                     # fork a random sequence
            parent = int(rng.integers(n_seq))
            a.fork(parent, n_seq)
            if parent in state["tables"]:
                _manual_fork(state, parent, n_seq)
            else:
                state["tables"][n_seq], state["lengths"][n_seq] = [], 0
            n_seq += 1
            continue
        s = int(rng.integers(n_seq))
        slot, copies = ex.append_token(state, s)
        want_slots, want_copies = a.append(s, 1)
        assert int(slot) == int(want_slots[0]) and [tuple(c) for c in copies] == want_copies, \
            (f"seed {seed}, step {step}, sequence {s}: got slot {slot}, copies {copies}; "
             f"expected slot {int(want_slots[0])}, copies {want_copies}")
        _check_same(state, a, seed, step)


@pytest.mark.points(1)
def test_append_token_out_of_blocks_changes_nothing(impl):
    ex = impl(MOD)
    state = ex.new_state(2, 2)
    for _ in range(4):
        ex.append_token(state, "x")
    snap = copy.deepcopy(state)
    with pytest.raises(RuntimeError):
        ex.append_token(state, "x")
    assert state == snap, "a failed append must leave the allocator state unchanged"


@pytest.mark.points(2)
def test_fork_shares_blocks(impl):
    ex = impl(MOD)
    seed = 907
    rng = np.random.default_rng(seed)
    a = BlockAllocator(12, 2)
    a.add_sequence("p")
    a.append("p", int(rng.integers(3, 8)))
    state = {"free": list(a.free_list), "ref": a.ref_counts.tolist(), "tables": copy.deepcopy(a.tables),
             "lengths": dict(a.lengths), "block_size": 2}
    ex.fork(state, "p", "c")
    a.fork("p", "c")
    _check_same(state, a, seed, "fork")
    snap = copy.deepcopy(state)
    for parent, child in (("p", "c"), ("missing", "d")):
        with pytest.raises(ValueError):
            ex.fork(state, parent, child)
    assert state == snap, f"seed {seed}: a rejected fork must change nothing"
