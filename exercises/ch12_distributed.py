# GENERATED from solutions/ch12_distributed.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
"""Chapter 12 exercises: attention split across devices.

Exercise 12.1  merge_lse         merge two normalised partial outputs with their log-sum-exp
Exercise 12.2  ring_step         one step of ring attention on one device
Exercise 12.3  zigzag_shards     the zig-zag sequence layout that balances causal work

Use NumPy only (no tinyattn): the graded tests compare your functions with dense float64 attention
and with ``tinyattn.distributed``. A "partial" over a set of keys S, for each query row, is the output
normalised over S alone, ``o_S``, with ``lse_S = log sum_{j in S} exp(s_j)``. A row that has seen no
key has ``o = 0`` and ``lse = -inf`` and must never produce NaN.
"""
from __future__ import annotations

import numpy as np


def merge_lse(o1: np.ndarray, lse1: np.ndarray, o2: np.ndarray, lse2: np.ndarray):
    """Merge two partials over disjoint key sets. o*: (N, dv), lse*: (N,) -> (o, lse) of the union.

    The result must equal attention over the union of both key sets.
    """
    # HINT: the union's normaliser is the sum of both: lse = log(e^lse1 + e^lse2), computed stably
    # HINT: each partial's weight in the union is its share of the total normaliser
    raise NotImplementedError("Exercise 12.1: merge_lse")


def ring_step(q: np.ndarray, k_block: np.ndarray, v_block: np.ndarray, q_pos: np.ndarray,
              k_pos: np.ndarray, o: np.ndarray, lse: np.ndarray, *, is_causal: bool, scale: float):
    """One ring step on one device: attend to the K/V block it holds now and fold it into (o, lse).

    q: (n, d) this device's queries at global positions q_pos: (n,); k_block: (m, d), v_block: (m, dv)
    the block it holds now, at global positions k_pos: (m,); o: (n, dv), lse: (n,) the partial so far.
    With is_causal, query i may see key j only if k_pos[j] <= q_pos[i]. Returns the new (o, lse).
    """
    # HINT: first the block's own partial (normalised over this block, with its lse) ...
    # HINT: ... then merge it with what the device had
    raise NotImplementedError("Exercise 12.2: ring_step")


def zigzag_shards(n: int, n_devices: int) -> list:
    """Zig-zag layout: cut 0..n-1 into 2·n_devices equal chunks; device r gets chunk r and chunk
    2·n_devices-1-r. Returns a list of n_devices sorted int arrays. Raise ValueError (naming n and
    n_devices) if n is not a multiple of 2·n_devices.
    """
    raise NotImplementedError("Exercise 12.3: zigzag_shards")
