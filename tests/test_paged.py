"""PagedAttention (chapter 09): the allocator's bookkeeping under random operations (a hypothesis
state machine with a dense shadow copy of every sequence), paged == dense attention, copy-on-write,
and bad input that raises and leaves the allocator unchanged."""
import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from reference import dense_attention
from tinyattn.cache.paged import BlockAllocator, OutOfBlocksError, PagedKVCache, paged_attention

HKV, HQ, D = 2, 4, 3


def _snapshot(a: BlockAllocator):
    return (list(a.free_list), a.ref_counts.copy(), copy.deepcopy(a.tables), dict(a.lengths))


def _assert_same(a: BlockAllocator, snap):
    free, counts, tables, lengths = snap
    assert a.free_list == free and np.array_equal(a.ref_counts, counts)
    assert a.tables == tables and a.lengths == lengths


def _dense_decode(q, ks, vs):
    """One query per sequence against its own K/V (Hkv, L, d), GQA by repeating heads."""
    out = []
    for qi, k, v in zip(q, ks, vs):
        kr, vr = np.repeat(k, HQ // HKV, axis=0), np.repeat(v, HQ // HKV, axis=0)
        out.append(dense_attention(qi[:, None, :], kr, vr)[0][:, 0, :])
    return np.stack(out)


class PagedMachine(RuleBasedStateMachine):
    """Random add / append / fork / free on a small pool; a dense shadow holds what each sequence
    should contain. After every step: allocator invariants, and paged attention == dense."""

    def __init__(self):
        super().__init__()
        self.cache = PagedKVCache(n_blocks=12, block_size=3, n_kv_heads=HKV, head_dim=D, dtype=np.float64)
        self.shadow: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.rng = np.random.default_rng(0)
        self.next_id = 0

    def _kv(self, n):
        return self.rng.standard_normal((HKV, n, D)), self.rng.standard_normal((HKV, n, D))

    def _try_append(self, sid, n):
        k, v = self._kv(n)
        snap = _snapshot(self.cache.allocator)
        try:
            self.cache.append(sid, k, v)
        except OutOfBlocksError:
            _assert_same(self.cache.allocator, snap)             # failed append changed nothing
            return
        old = self.shadow.get(sid)
        self.shadow[sid] = (k, v) if old is None else (np.concatenate([old[0], k], 1), np.concatenate([old[1], v], 1))

    @rule(n=st.integers(1, 8))
    def add(self, n):
        sid, self.next_id = self.next_id, self.next_id + 1
        self._try_append(sid, n)

    @precondition(lambda self: self.shadow)
    @rule(data=st.data(), n=st.integers(1, 5))
    def append(self, data, n):
        self._try_append(data.draw(st.sampled_from(sorted(self.shadow))), n)

    @precondition(lambda self: self.shadow)
    @rule(data=st.data())
    def fork(self, data):
        parent = data.draw(st.sampled_from(sorted(self.shadow)))
        child, self.next_id = self.next_id, self.next_id + 1
        self.cache.fork(parent, child)
        self.shadow[child] = tuple(x.copy() for x in self.shadow[parent])

    @precondition(lambda self: self.shadow)
    @rule(data=st.data())
    def free(self, data):
        sid = data.draw(st.sampled_from(sorted(self.shadow)))
        self.cache.free(sid)
        del self.shadow[sid]

    @precondition(lambda self: self.cache.allocator.n_free > 0)
    @rule()
    def double_free_is_rejected(self):
        a = self.cache.allocator
        snap = _snapshot(a)
        with pytest.raises(ValueError, match="already free"):
            a.free_block(a.free_list[0])
        _assert_same(a, snap)

    @invariant()
    def bookkeeping(self):
        a = self.cache.allocator
        a.check_invariants()
        used = {b for t in a.tables.values() for b in t}
        assert len(used) + a.n_free == a.n_blocks                # no leaked block

    @invariant()
    def paged_equals_dense(self):
        if not self.shadow:
            return
        ids = sorted(self.shadow)
        q = self.rng.standard_normal((len(ids), HQ, D))
        got = self.cache.attention(q, ids)
        want = _dense_decode(q, *zip(*(self.shadow[i] for i in ids)))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)

    def teardown(self):
        for sid in list(self.shadow):
            self.cache.free(sid)
        assert self.cache.allocator.n_free == self.cache.allocator.n_blocks


TestPagedMachine = PagedMachine.TestCase
TestPagedMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])


def test_paged_equals_dense_random_tables_and_ragged_lengths():
    rng = np.random.default_rng(1)
    nb, bs, B = 20, 4, 3
    kp, vp = rng.standard_normal((nb, HKV, bs, D)), rng.standard_normal((nb, HKV, bs, 5))
    lens = np.array([9, 1, 12])
    tables = np.full((B, 4), -1)
    perm = rng.permutation(nb)
    tables[0, :3], tables[1, :1], tables[2, :3] = perm[:3], perm[3:4], perm[4:7]
    q = rng.standard_normal((B, HQ, D))
    got = paged_attention(q, kp, vp, tables, lens, scale=0.7)
    for b in range(B):
        k = kp[tables[b, :3 if b != 1 else 1]].transpose(1, 0, 2, 3).reshape(HKV, -1, D)[:, :lens[b]]
        v = vp[tables[b, :3 if b != 1 else 1]].transpose(1, 0, 2, 3).reshape(HKV, -1, 5)[:, :lens[b]]
        kr, vr = np.repeat(k, 2, 0), np.repeat(v, 2, 0)
        want = dense_attention(q[b][:, None], kr, vr, scale=0.7)[0][:, 0]
        np.testing.assert_allclose(got[b], want, rtol=0, atol=1e-12, err_msg=f"sequence {b}")


def test_copy_on_write_after_fork():
    c = PagedKVCache(8, 4, 1, 2, dtype=np.float64)
    rng = np.random.default_rng(2)
    k, v = rng.standard_normal((1, 6, 2)), rng.standard_normal((1, 6, 2))
    c.append("beam0", k, v)                                      # 6 tokens: blocks [0, 1], 1 half full
    c.fork("beam0", "beam1")
    a = c.allocator
    assert a.tables["beam1"] == a.tables["beam0"] == [0, 1] and list(a.ref_counts[:2]) == [2, 2]
    shared = c.k_pool[1].copy()
    c.append("beam1", np.ones((1, 1, 2)), np.ones((1, 1, 2)))    # writes into shared block 1 -> copy
    assert a.tables["beam1"] == [0, 2] and a.tables["beam0"] == [0, 1]
    assert list(a.ref_counts[:3]) == [2, 1, 1]
    np.testing.assert_array_equal(c.k_pool[1], shared)          # the parent's block untouched
    np.testing.assert_array_equal(c.k_pool[2, :, :2], shared[:, :2])
    np.testing.assert_array_equal(c.k_pool[2, :, 2], np.ones((1, 2)))
    c.append("beam0", np.zeros((1, 1, 2)), np.zeros((1, 1, 2)))  # now sole owner: no copy
    assert a.tables["beam0"] == [0, 1]
    c.free("beam0"), c.free("beam1")
    assert a.n_free == 8


def test_fork_at_block_boundary_copies_nothing():
    a = BlockAllocator(6, 2)
    a.add_sequence(0)
    a.append(0, 4)
    a.fork(0, 1)
    slots, copies = a.append(1, 1)
    assert copies == [] and a.tables[1] == [0, 1, 2] and list(slots) == [4]


def test_bad_input_raises_and_leaves_allocator_unchanged():
    a = BlockAllocator(4, 2)
    a.add_sequence("s")
    a.append("s", 3)
    snap = _snapshot(a)
    with pytest.raises(OutOfBlocksError, match="needs 3 free blocks, only 2"):
        a.append("s", 6)
    with pytest.raises(ValueError, match="already free"):
        a.free_block(3)
    with pytest.raises(ValueError, match="outside the pool"):
        a.free_block(4)
    with pytest.raises(KeyError, match="unknown sequence"):
        a.free("t")
    with pytest.raises(ValueError, match="already exists"):
        a.fork("s", "s")
    with pytest.raises(ValueError, match="n_tokens"):
        a.append("s", 0)
    _assert_same(a, snap)
    with pytest.raises(ValueError, match="n_blocks"):
        BlockAllocator(0, 4)


def test_paged_attention_rejects_tables_outside_the_pool_and_bad_shapes():
    rng = np.random.default_rng(3)
    kp = vp = rng.standard_normal((5, HKV, 2, D))
    q = rng.standard_normal((2, HQ, D))
    with pytest.raises(ValueError, match=r"block_tables\[1, 1\] = 5 points outside the pool \[0, 5\)"):
        paged_attention(q, kp, vp, np.array([[0, -1], [1, 5]]), np.array([2, 3]))
    paged_attention(q, kp, vp, np.array([[0, 7], [1, 2]]), np.array([2, 3]))   # unused entry ignored
    with pytest.raises(ValueError, match="seq_lens must lie"):
        paged_attention(q, kp, vp, np.array([[0, 1], [1, 2]]), np.array([2, 5]))
    with pytest.raises(ValueError, match="Hq a multiple"):
        paged_attention(rng.standard_normal((2, 3, D)), kp, vp, np.array([[0], [1]]), np.array([1, 1]))
    with pytest.raises(ValueError, match="block_tables must be int"):
        paged_attention(q, kp, vp, np.zeros((2, 1)), np.array([1, 1]))


def test_empty_sequence_gives_zero_and_fp16_and_large_logits():
    rng = np.random.default_rng(4)
    kp, vp = rng.standard_normal((3, 1, 4, 2)), rng.standard_normal((3, 1, 4, 2))
    q = rng.standard_normal((2, 2, 2)) * 1e4                    # huge logits: still finite
    out = paged_attention(q, kp, vp, np.array([[2], [0]]), np.array([3, 0]))
    assert np.isfinite(out).all() and np.all(out[1] == 0)
    want = dense_attention(q[0][:, None], np.repeat(kp[2][:, :3], 2, 0), np.repeat(vp[2][:, :3], 2, 0))[0][:, 0]
    np.testing.assert_allclose(out[0], want, atol=1e-9)
    h = paged_attention(q[:1].astype(np.float16) / 1e4, kp.astype(np.float16), vp.astype(np.float16),
                        np.array([[2]]), np.array([3]))
    assert h.dtype == np.float16 and np.isfinite(h).all()
