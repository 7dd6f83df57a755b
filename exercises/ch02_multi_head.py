# GENERATED from solutions/ch02_multi_head.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
"""Chapter 02 exercises: multi-head attention, in plain NumPy.

Exercise 02.1  split_heads              (B, L, H*d) -> (B, H, L, d)
Exercise 02.2  merge_heads              (B, H, L, d) -> (B, L, H*d), the inverse
Exercise 02.3  kv_head_for_query_head   which KV head a query head reads under GQA / MQA
Exercise 02.4  mha_forward              the whole forward pass of (grouped-query) multi-head attention

Use NumPy only (no tinyattn): the graded tests compare your functions with the library.
Weights follow tinyattn's Linear convention: y = x @ W with W of shape (d_in, d_out).
"""
from __future__ import annotations

import numpy as np


def split_heads(x: np.ndarray, n_heads: int) -> np.ndarray:
    """x: (B, L, H*d) -> (B, H, L, d), where head h owns the features [h*d, (h+1)*d)."""
    # HINT: reshape to (B, L, H, d) first, then move the head axis in front of L
    raise NotImplementedError("Exercise 02.1: split_heads")


def merge_heads(x: np.ndarray) -> np.ndarray:
    """x: (B, H, L, d) -> (B, L, H*d); merge_heads(split_heads(y, H)) == y."""
    raise NotImplementedError("Exercise 02.2: merge_heads")


def kv_head_for_query_head(i: int, n_heads: int, n_kv_heads: int) -> int:
    """Index of the key/value head used by query head i (0 <= i < n_heads).

    Query heads are split into n_kv_heads CONTIGUOUS groups of n_heads // n_kv_heads heads; group g
    shares KV head g. (MHA: n_kv_heads = n_heads; MQA: n_kv_heads = 1.)
    """
    # HINT: how many query heads share one KV head?
    raise NotImplementedError("Exercise 02.3: kv_head_for_query_head")


def mha_forward(x: np.ndarray, wq: np.ndarray, wk: np.ndarray, wv: np.ndarray, wo: np.ndarray,
                n_heads: int, n_kv_heads: int | None = None, causal: bool = False) -> np.ndarray:
    """Multi-head attention without biases.

    x: (B, L, D); wq: (D, H*dk); wk, wv: (D, Hkv*dk); wo: (H*dk, D) with dk = D // H.
    head_i = softmax(Q_i K_g^T / sqrt(dk) [+ causal mask]) V_g with g = kv_head_for_query_head(i, ...);
    out = Concat(head_1, ..., head_H) @ wo: (B, L, D), float64.
    You may use your split_heads, merge_heads and kv_head_for_query_head (exercises 02.1-02.3).
    """
    # HINT: give every query head its KV head, e.g. k[:, idx] with idx[i] = kv_head_for_query_head(i, ...)
    raise NotImplementedError("Exercise 02.4: mha_forward")
