"""PagedAttention (Kwon et al. 2023, vLLM, arXiv:2309.06180; chapter 09, source text 4.4).

The KV cache lives in a pool of fixed-size blocks of ``block_size`` tokens, like pages of virtual
memory. Each sequence owns a block table; token t of a sequence is stored in physical block
``table[t // block_size]`` at slot ``t % block_size``. Blocks are allocated only when a sequence
grows into them, so at most ``block_size - 1`` slots per sequence are ever unused (internal
fragmentation), and blocks can be SHARED: ``fork`` gives a child (a beam, a parallel sample) the
parent's table with every reference count increased; the first write into a shared, partly
filled block copies it first (copy-on-write).

    BlockAllocator(n_blocks, block_size)        free list + reference counts + block tables
    PagedKVCache(n_blocks, block_size, Hkv, d)  the K/V pools (n_blocks, Hkv, block_size, d) + allocator
    paged_attention(q, k_pool, v_pool, block_tables, seq_lens)   one decoding step over the pools

Every method checks its input before changing anything: on error the allocator is unchanged.
"""
from __future__ import annotations

from typing import Hashable

import numpy as np

__all__ = ["BlockAllocator", "OutOfBlocksError", "PagedKVCache", "paged_attention"]


class OutOfBlocksError(RuntimeError):
    """Not enough free blocks for the request (nothing was allocated)."""


def _int(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


class BlockAllocator:
    """Free list, reference counts and one block table per sequence.

    n_blocks, block_size: ints >= 1. ``tables[seq]``: list of physical block ids; ``lengths[seq]``:
    tokens stored. Invariants (``check_invariants``): ref_counts[b] == number of tables holding b;
    the free list holds exactly the blocks with count 0, once each; len(tables[s]) ==
    ceil(lengths[s] / block_size).
    """

    def __init__(self, n_blocks: int, block_size: int):
        self.n_blocks, self.block_size = _int("n_blocks", n_blocks, 1), _int("block_size", block_size, 1)
        self.free_list = list(range(self.n_blocks - 1, -1, -1))    # pop() hands out block 0 first
        self.ref_counts = np.zeros(self.n_blocks, dtype=np.int64)
        self.tables: dict[Hashable, list[int]] = {}
        self.lengths: dict[Hashable, int] = {}

    # ------------------------------------------------------------------ blocks
    @property
    def n_free(self) -> int:
        return len(self.free_list)

    def _check_block(self, block) -> int:
        b = _int("block", block, 0)
        if b >= self.n_blocks:
            raise ValueError(f"block {b} is outside the pool [0, {self.n_blocks})")
        return b

    def allocate(self) -> int:
        """Take one block from the free list (count 0 -> 1)."""
        if not self.free_list:
            raise OutOfBlocksError(f"all {self.n_blocks} blocks are in use")
        b = self.free_list.pop()
        self.ref_counts[b] = 1
        return b

    def free_block(self, block: int) -> None:
        """Drop one reference to ``block``; at count 0 it returns to the free list.
        Raises ValueError (and changes nothing) if the block is already free."""
        b = self._check_block(block)
        if self.ref_counts[b] == 0:
            raise ValueError(f"block {b} is already free (double free)")
        self.ref_counts[b] -= 1
        if self.ref_counts[b] == 0:
            self.free_list.append(b)

    # ------------------------------------------------------------------ sequences
    def _seq(self, seq_id) -> list[int]:
        if seq_id not in self.tables:
            raise KeyError(f"unknown sequence {seq_id!r}; known: {sorted(map(repr, self.tables))}")
        return self.tables[seq_id]

    def blocks_needed(self, n_tokens: int) -> int:
        return -(-n_tokens // self.block_size)                       # ceil(n / block_size)

    def add_sequence(self, seq_id: Hashable) -> None:
        """Register an empty sequence (no blocks until it appends)."""
        if seq_id in self.tables:
            raise ValueError(f"sequence {seq_id!r} already exists")
        self.tables[seq_id], self.lengths[seq_id] = [], 0

    def append(self, seq_id: Hashable, n_tokens: int = 1) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Reserve room for ``n_tokens`` more tokens of ``seq_id``.

        Returns (slots int64 (n_tokens,), copies): the flat slot ``block * block_size + offset`` of
        each new token, and the (src, dst) block copies the caller must do first (copy-on-write of
        a shared, partly filled last block). Raises OutOfBlocksError, changing nothing, if the free
        list is too short."""
        table = self._seq(seq_id)
        n = _int("n_tokens", n_tokens, 1)
        length, bs = self.lengths[seq_id], self.block_size
        cow = length % bs != 0 and self.ref_counts[table[-1]] > 1    # we would write into a shared block
        need = self.blocks_needed(length + n) - len(table) + int(cow)
        if need > self.n_free:
            raise OutOfBlocksError(f"sequence {seq_id!r} needs {need} free blocks, only {self.n_free} left")
        copies = []
        if cow:                                                      # copy-on-write the last block
            src = table[-1]
            dst = self.allocate()
            self.free_block(src)                                     # one reference fewer to the shared one
            table[-1] = dst
            copies.append((src, dst))
        while len(table) < self.blocks_needed(length + n):
            table.append(self.allocate())
        t = np.arange(length, length + n)
        slots = np.asarray(table, dtype=np.int64)[t // bs] * bs + t % bs   # block table lookup
        self.lengths[seq_id] = length + n
        return slots, copies

    def fork(self, parent: Hashable, child: Hashable) -> None:
        """``child`` shares every block of ``parent`` (reference counts + 1); nothing is copied now."""
        table = self._seq(parent)
        if child in self.tables:
            raise ValueError(f"sequence {child!r} already exists")
        for b in table:
            self.ref_counts[b] += 1
        self.tables[child], self.lengths[child] = list(table), self.lengths[parent]

    def free(self, seq_id: Hashable) -> None:
        """Release a sequence: one reference fewer on each of its blocks."""
        table = self._seq(seq_id)
        for b in table:
            self.free_block(b)
        del self.tables[seq_id], self.lengths[seq_id]

    def block_tables(self, seq_ids) -> tuple[np.ndarray, np.ndarray]:
        """(block_tables int64 (B, max_blocks) padded with -1, seq_lens int64 (B,)) for ``seq_ids``."""
        tables = [self._seq(s) for s in seq_ids]
        width = max([len(t) for t in tables] + [1])
        out = np.full((len(tables), width), -1, dtype=np.int64)
        for i, t in enumerate(tables):
            out[i, :len(t)] = t
        return out, np.array([self.lengths[s] for s in seq_ids], dtype=np.int64)

    def check_invariants(self) -> None:
        """Raise AssertionError if the bookkeeping is inconsistent (used by the property tests)."""
        counts = np.zeros(self.n_blocks, dtype=np.int64)
        for s, t in self.tables.items():
            assert len(t) == self.blocks_needed(self.lengths[s]), f"sequence {s!r}: {len(t)} blocks for {self.lengths[s]} tokens"
            np.add.at(counts, np.asarray(t, dtype=np.int64), 1)
        assert np.array_equal(counts, self.ref_counts), "reference counts differ from the tables"
        assert len(set(self.free_list)) == len(self.free_list), "a block is twice on the free list"
        assert sorted(self.free_list) == list(np.flatnonzero(counts == 0)), "free list != blocks with count 0"


class PagedKVCache:
    """K/V pools ``(n_blocks, n_kv_heads, block_size, head_dim)`` managed by a :class:`BlockAllocator`."""

    def __init__(self, n_blocks: int, block_size: int, n_kv_heads: int, head_dim: int, dtype=np.float32):
        self.allocator = BlockAllocator(n_blocks, block_size)
        shape = (n_blocks, _int("n_kv_heads", n_kv_heads, 1), block_size, _int("head_dim", head_dim, 1))
        self.k_pool, self.v_pool = np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=dtype)

    def append(self, seq_id: Hashable, k: np.ndarray, v: np.ndarray) -> None:
        """Store k, v (Hkv, L, d) as the next L tokens of ``seq_id`` (a new id starts a sequence)."""
        _, hkv, bs, d = self.k_pool.shape
        if k.ndim != 3 or k.shape[0] != hkv or k.shape[2] != d or v.shape != k.shape:
            raise ValueError(f"k, v must be (Hkv={hkv}, L, d={d}), got {k.shape} and {v.shape}")
        new = seq_id not in self.allocator.tables
        if new:
            self.allocator.add_sequence(seq_id)
        try:
            slots, copies = self.allocator.append(seq_id, k.shape[1])
        except Exception:
            if new:
                self.allocator.free(seq_id)                          # leave no empty sequence behind
            raise
        for src, dst in copies:                                      # copy-on-write
            self.k_pool[dst], self.v_pool[dst] = self.k_pool[src], self.v_pool[src]
        blk, off = slots // bs, slots % bs
        self.k_pool[blk, :, off] = k.transpose(1, 0, 2)              # token t -> (block, :, slot)
        self.v_pool[blk, :, off] = v.transpose(1, 0, 2)

    def fork(self, parent: Hashable, child: Hashable) -> None:
        self.allocator.fork(parent, child)

    def free(self, seq_id: Hashable) -> None:
        self.allocator.free(seq_id)

    def attention(self, q: np.ndarray, seq_ids, *, scale: float | None = None) -> np.ndarray:
        """q (B, Hq, d), one query per sequence in ``seq_ids`` -> (B, Hq, d)."""
        tables, lens = self.allocator.block_tables(seq_ids)
        return paged_attention(q, self.k_pool, self.v_pool, tables, lens, scale=scale)


def paged_attention(q, k_pool, v_pool, block_tables, seq_lens, *, scale: float | None = None) -> np.ndarray:
    """Decode-step attention reading K/V through block tables, one block at a time (online softmax).

    q: (B, Hq, d); k_pool: (n_blocks, Hkv, block_size, d); v_pool: (n_blocks, Hkv, block_size, dv);
    block_tables: int (B, max_blocks), entries past ceil(seq_len / block_size) ignored (e.g. -1);
    seq_lens: int (B,). Hq % Hkv == 0 (query head i reads KV head i // (Hq // Hkv)).
    Returns (B, Hq, dv) = softmax(q Kᵀ·scale) V over each sequence's seq_len tokens (0 if seq_len = 0).
    """
    q, k_pool, v_pool = np.asarray(q), np.asarray(k_pool), np.asarray(v_pool)
    tables, lens = np.asarray(block_tables), np.asarray(seq_lens)
    if q.ndim != 3 or k_pool.ndim != 4 or v_pool.ndim != 4:
        raise ValueError(f"expected q (B, Hq, d) and pools (n_blocks, Hkv, block_size, d); got q {q.shape}, "
                         f"k_pool {k_pool.shape}, v_pool {v_pool.shape}")
    B, hq, d = q.shape
    nb, hkv, bs, _ = k_pool.shape
    if k_pool.shape[3] != d or v_pool.shape[:3] != k_pool.shape[:3] or hq % hkv:
        raise ValueError(f"q {q.shape}, k_pool {k_pool.shape}, v_pool {v_pool.shape}: need equal d, equal "
                         "(n_blocks, Hkv, block_size) for both pools, and Hq a multiple of Hkv")
    if not np.issubdtype(tables.dtype, np.integer) or tables.ndim != 2 or tables.shape[0] != B:
        raise ValueError(f"block_tables must be int (B={B}, max_blocks), got {tables.dtype} {tables.shape}")
    if not np.issubdtype(lens.dtype, np.integer) or lens.shape != (B,):
        raise ValueError(f"seq_lens must be int (B={B},), got {lens.dtype} {lens.shape}")
    if (lens < 0).any() or (lens > tables.shape[1] * bs).any():
        raise ValueError(f"seq_lens must lie in [0, max_blocks·block_size = {tables.shape[1] * bs}], got {lens}")
    used = np.arange(tables.shape[1])[None, :] < -(-lens[:, None] // bs)      # entries that hold tokens
    bad = used & ((tables < 0) | (tables >= nb))
    if bad.any():
        b, j = np.argwhere(bad)[0]
        raise ValueError(f"block_tables[{b}, {j}] = {tables[b, j]} points outside the pool [0, {nb})")
    ct = np.result_type(q.dtype, k_pool.dtype, np.float32)
    scale = 1.0 / np.sqrt(d) if scale is None else float(scale)
    qg = q.astype(ct).reshape(B, hkv, hq // hkv, d) * scale                  # (B, Hkv, rep, d)
    m = np.full((B, hkv, hq // hkv, 1), -np.inf, dtype=ct)                    # running max
    l = np.zeros_like(m)                                                      # running sum of exp
    acc = np.zeros((B, hkv, hq // hkv, v_pool.shape[3]), dtype=ct)           # unnormalised output
    for j in range(tables.shape[1]):                                          # logical block j
        blk = np.where(used[:, j], tables[:, j], 0)                           # physical block per sequence
        kb, vb = k_pool[blk].astype(ct), v_pool[blk].astype(ct)               # (B, Hkv, bs, d)
        s = qg @ kb.transpose(0, 1, 3, 2)                                     # (B, Hkv, rep, bs)
        valid = (j * bs + np.arange(bs))[None, :] < lens[:, None]             # token j·bs + slot exists
        s = np.where(valid[:, None, None, :], s, -np.inf)
        m_new = np.maximum(m, s.max(-1, keepdims=True))
        safe = np.where(np.isfinite(m_new), m_new, 0.0)                       # no tokens yet: avoid inf - inf
        p = np.exp(s - safe)
        alpha = np.exp(np.where(np.isfinite(m), m - safe, -np.inf))           # rescale the old state
        l = alpha * l + p.sum(-1, keepdims=True)                              # ℓ' = e^(m-m')ℓ + Σ p
        acc = alpha * acc + p @ vb                                            # O' = e^(m-m')O + P V
        m = m_new
    out = acc / np.where(l > 0, l, 1.0)                                       # empty sequences -> 0
    return out.reshape(B, hq, -1).astype(np.result_type(q.dtype, v_pool.dtype))
