# GENERATED from solutions/ch09_paged_attention.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
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
    raise NotImplementedError("Exercise 09.1: slot_of")


def gather_kv(pool: np.ndarray, block_table: list[int], seq_len: int) -> np.ndarray:
    """pool: (n_blocks, Hkv, block_size, d) -> the sequence's (Hkv, seq_len, d), tokens in order.
    Only the first ceil(seq_len / block_size) entries of block_table are used."""
    # HINT: (n, Hkv, bs, d) -> (Hkv, n·bs, d), then cut to seq_len
    raise NotImplementedError("Exercise 09.2: gather_kv")


def append_token(state: dict, seq) -> tuple[int, list[tuple[int, int]]]:
    """Make room for ONE more token of ``seq`` (a new seq starts empty). Returns (slot, copies):
    slot = block · block_size + offset where the token goes, copies = list of (src, dst) blocks
    the caller must copy first. Rules: a new block is taken from the free list when the last one
    is full (or there is none); if the token goes into a partly filled block that other tables
    also hold (ref > 1), copy it first: take a fresh block, put it in this table, drop one
    reference to the old block. Raise RuntimeError, changing nothing, if no block is free.
    """
    # HINT: a shared block that is full is never written again: no copy needed
    raise NotImplementedError("Exercise 09.3: append_token")


def fork(state: dict, parent, child) -> None:
    """``child`` starts as a copy of ``parent``'s table and length, sharing every block (no data
    copied). Raise ValueError, changing nothing, if child already exists or parent does not."""
    raise NotImplementedError("Exercise 09.4: fork")
