"""Chapter 09 exercises: block tables and a copy-on-write block allocator, in plain NumPy/Python.

Exercise 09.1  slot_of          where token t of a sequence lives in the block pool
Exercise 09.2  gather_kv        a sequence's keys (or values) read back through its block table
Exercise 09.3  append_token     allocate room for one more token, with copy-on-write
Exercise 09.4  fork             share a sequence's blocks with a new sequence

The allocator state is a plain dict (the tests build it with ``new_state``):
    state["free"]    list of free block ids; take blocks with ``state["free"].pop()``
    state["ref"]     list, ref[b] = number of block tables that hold block b
    state["tables"]  dict seq -> list of block ids;  state["lengths"]: dict seq -> tokens stored
    state["block_size"]
The graded tests compare with ``tinyattn.cache.paged`` and check the bookkeeping invariants.
"""
from __future__ import annotations

import numpy as np


def new_state(n_blocks: int, block_size: int) -> dict:
    """An empty allocator: every block free (block 0 handed out first)."""
    return {"free": list(range(n_blocks - 1, -1, -1)), "ref": [0] * n_blocks, "tables": {},
            "lengths": {}, "block_size": block_size}


def slot_of(block_table: list[int], t: int, block_size: int) -> tuple[int, int]:
    """(physical block, offset inside the block) of token t (0-based) of a sequence."""
    # BEGIN SOLUTION
    return block_table[t // block_size], t % block_size
    # END SOLUTION


def gather_kv(pool: np.ndarray, block_table: list[int], seq_len: int) -> np.ndarray:
    """pool: (n_blocks, Hkv, block_size, d) -> the sequence's (Hkv, seq_len, d), tokens in order.
    Only the first ceil(seq_len / block_size) entries of block_table are used."""
    # BEGIN SOLUTION
    bs = pool.shape[2]
    n = -(-seq_len // bs)
    # HINT: (n, Hkv, bs, d) -> (Hkv, n·bs, d), then cut to seq_len
    blocks = pool[np.asarray(block_table[:n], dtype=np.int64)]
    return blocks.transpose(1, 0, 2, 3).reshape(pool.shape[1], n * bs, pool.shape[3])[:, :seq_len]
    # END SOLUTION


def append_token(state: dict, seq) -> tuple[int, list[tuple[int, int]]]:
    """Make room for ONE more token of ``seq`` (a new seq starts empty). Returns (slot, copies):
    slot = block · block_size + offset where the token goes, copies = list of (src, dst) blocks
    the caller must copy first. Rules: a new block is taken from the free list when the last one
    is full (or there is none); if the token goes into a partly filled block that other tables
    also hold (ref > 1), copy it first: take a fresh block, put it in this table, drop one
    reference to the old block. Raise RuntimeError, changing nothing, if no block is free.
    """
    # BEGIN SOLUTION
    bs = state["block_size"]
    table = state["tables"].get(seq, [])
    length = state["lengths"].get(seq, 0)
    offset = length % bs
    need_new = offset == 0
    # HINT: a shared block that is full is never written again: no copy needed
    cow = not need_new and state["ref"][table[-1]] > 1
    if (need_new or cow) and not state["free"]:
        raise RuntimeError("out of blocks")
    copies = []
    if need_new:
        b = state["free"].pop()
        state["ref"][b] = 1
        table = table + [b]
    elif cow:
        src, dst = table[-1], state["free"].pop()
        state["ref"][dst] = 1
        state["ref"][src] -= 1
        table = table[:-1] + [dst]
        copies.append((src, dst))
    state["tables"][seq], state["lengths"][seq] = table, length + 1
    return table[-1] * bs + offset, copies
    # END SOLUTION


def fork(state: dict, parent, child) -> None:
    """``child`` starts as a copy of ``parent``'s table and length, sharing every block (no data
    copied). Raise ValueError, changing nothing, if child already exists or parent does not."""
    # BEGIN SOLUTION
    if parent not in state["tables"] or child in state["tables"]:
        raise ValueError(f"need an existing parent and a new child, got {parent!r}, {child!r}")
    for b in state["tables"][parent]:
        state["ref"][b] += 1
    state["tables"][child] = list(state["tables"][parent])
    state["lengths"][child] = state["lengths"][parent]
    # END SOLUTION
