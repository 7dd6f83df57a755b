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
    # BEGIN SOLUTION
    b, l, hd = x.shape
    # HINT: reshape to (B, L, H, d) first, then move the head axis in front of L
    return x.reshape(b, l, n_heads, hd // n_heads).transpose(0, 2, 1, 3)
    # END SOLUTION


def merge_heads(x: np.ndarray) -> np.ndarray:
    """x: (B, H, L, d) -> (B, L, H*d); merge_heads(split_heads(y, H)) == y."""
    # BEGIN SOLUTION
    b, h, l, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, l, h * d)
    # END SOLUTION


def kv_head_for_query_head(i: int, n_heads: int, n_kv_heads: int) -> int:
    """Index of the key/value head used by query head i (0 <= i < n_heads).

    Query heads are split into n_kv_heads CONTIGUOUS groups of n_heads // n_kv_heads heads; group g
    shares KV head g. (MHA: n_kv_heads = n_heads; MQA: n_kv_heads = 1.)
    """
    # BEGIN SOLUTION
    # HINT: how many query heads share one KV head?
    group_size = n_heads // n_kv_heads
    return i // group_size
    # END SOLUTION


def mha_forward(x: np.ndarray, wq: np.ndarray, wk: np.ndarray, wv: np.ndarray, wo: np.ndarray,
                n_heads: int, n_kv_heads: int | None = None, causal: bool = False) -> np.ndarray:
    """Multi-head attention without biases.

    x: (B, L, D); wq: (D, H*dk); wk, wv: (D, Hkv*dk); wo: (H*dk, D) with dk = D // H.
    head_i = softmax(Q_i K_g^T / sqrt(dk) [+ causal mask]) V_g with g = kv_head_for_query_head(i, ...);
    out = Concat(head_1, ..., head_H) @ wo: (B, L, D), float64.
    You may use your split_heads, merge_heads and kv_head_for_query_head (exercises 02.1-02.3).
    """
    # BEGIN SOLUTION
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    x = np.asarray(x, dtype=np.float64)
    q = split_heads(x @ wq, n_heads)                          # (B, H, L, dk)
    k = split_heads(x @ wk, n_kv_heads)                       # (B, Hkv, L, dk)
    v = split_heads(x @ wv, n_kv_heads)
    # HINT: give every query head its KV head, e.g. k[:, idx] with idx[i] = kv_head_for_query_head(i, ...)
    idx = [kv_head_for_query_head(i, n_heads, n_kv_heads) for i in range(n_heads)]
    k, v = k[:, idx], v[:, idx]                               # (B, H, L, dk)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])    # (B, H, L, L)
    if causal:
        L = x.shape[1]
        s = np.where(np.tri(L, L, dtype=bool), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return merge_heads(p @ v) @ wo
    # END SOLUTION
