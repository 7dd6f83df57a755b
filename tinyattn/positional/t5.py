"""T5 relative position bias (Raffel et al. 2020).

Each (query i, key j) pair gets a bucket of ``rel = j - i``; each bucket has one learned scalar per
head, shared by all layers, added to the *unscaled* logits (T5 uses no 1/sqrt(d) factor).

Buckets (num_buckets = B, max_distance = D): if bidirectional, B is halved and keys to the right
(rel > 0) use the upper half (offset B/2); then n = |rel| (bidirectional) or max(-rel, 0) (causal:
keys in the future all fall in bucket 0). With ``exact = B/2``:
    n < exact  -> bucket n                                          (one bucket per distance)
    n >= exact -> exact + floor(log(n/exact) / log(D/exact) * (B - exact)), clipped to B - 1
so distances from ``exact`` to D are spread logarithmically and everything beyond D shares the last.
"""
from __future__ import annotations

import numpy as np

from ..autograd import custom_op
from ..nn import Module, Parameter
from ..tensor import Tensor
from .alibi import _check_pos_int

__all__ = ["t5_relative_bucket", "T5RelativeBias"]


def t5_relative_bucket(relative_position, bidirectional: bool = True, num_buckets: int = 32,
                       max_distance: int = 128) -> np.ndarray:
    """Bucket index of ``relative_position = key_pos - query_pos`` (int array, any shape) -> int64."""
    B = _check_pos_int(num_buckets, "num_buckets")
    D = _check_pos_int(max_distance, "max_distance")
    rel = np.asarray(relative_position)
    if not np.issubdtype(rel.dtype, np.integer):
        raise TypeError(f"relative_position must be integers, got dtype {rel.dtype}")
    rel = rel.astype(np.int64)
    bucket = np.zeros(rel.shape, dtype=np.int64)
    if bidirectional:
        B //= 2
        bucket += (rel > 0) * B                        # keys to the right use the upper half
        n = np.abs(rel)
    else:
        n = np.maximum(-rel, 0)                        # future keys -> distance 0
    exact = B // 2
    if exact < 1 or D <= exact:
        raise ValueError(f"need num_buckets >= {4 if bidirectional else 2} and max_distance > "
                         f"{exact} (half the buckets), got num_buckets={num_buckets}, "
                         f"max_distance={max_distance}")
    is_small = n < exact
    n_safe = np.maximum(n, 1).astype(np.float64)       # avoid log(0); small n never use this branch
    # exact + log(n / exact) / log(D / exact) * (B - exact), truncated toward zero, then clipped
    large = exact + (np.log(n_safe / exact) / np.log(D / exact) * (B - exact)).astype(np.int64)
    large = np.minimum(large, B - 1)
    return bucket + np.where(is_small, n, large)


class T5RelativeBias(Module):
    """Learned bias table ``(num_buckets, n_heads)``; forward(Lq, Lk) -> Tensor (H, Lq, Lk).

    One instance is shared by every layer of a model. The query block is bottom-right aligned:
    query i sits at absolute position ``i + Lk - Lq`` (decoding with a KV cache).
    The table starts at N(0, 0.1^2) (drawn from ``rng``) so the untrained bias is small.
    Add the result to the unscaled logits ``q @ k^T`` (T5 has no 1/sqrt(d)).
    """

    def __init__(self, n_heads: int, num_buckets: int = 32, max_distance: int = 128,
                 bidirectional: bool = False, rng: np.random.Generator | None = None):
        super().__init__()
        self.n_heads = _check_pos_int(n_heads, "n_heads")
        self.num_buckets = _check_pos_int(num_buckets, "num_buckets")
        self.max_distance = _check_pos_int(max_distance, "max_distance")
        self.bidirectional = bool(bidirectional)
        t5_relative_bucket(np.zeros(1, dtype=np.int64), self.bidirectional, self.num_buckets,
                           self.max_distance)                   # validate the bucket settings now
        rng = np.random.default_rng(0) if rng is None else rng
        self.table = Parameter(
            (0.1 * rng.standard_normal((self.num_buckets, self.n_heads))).astype(np.float32))

    def buckets(self, Lq: int, Lk: int) -> np.ndarray:
        """Bucket index of every (query, key) pair -> (Lq, Lk) int64."""
        Lq = _check_pos_int(Lq, "Lq")
        Lk = _check_pos_int(Lk, "Lk")
        q_pos = np.arange(Lq)[:, None] + max(Lk - Lq, 0)        # bottom-right aligned queries
        rel = np.arange(Lk)[None, :] - q_pos                    # key_pos - query_pos
        return t5_relative_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance)

    def forward(self, Lq: int, Lk: int) -> Tensor:
        idx = self.buckets(Lq, Lk)                               # (Lq, Lk)
        table = self.table
        out = np.ascontiguousarray(table.data[idx].transpose(2, 0, 1))   # (H, Lq, Lk)

        def backward(g: np.ndarray):
            # scatter-add each (i, j) gradient into its bucket: dT[b, h] = sum_{idx[i,j]=b} g[h,i,j]
            d_table = np.zeros_like(table.data)
            np.add.at(d_table, idx.ravel(), g.reshape(g.shape[0], -1).T)
            return (d_table,)

        return custom_op(out, (table,), backward, name="t5_relative_bias")
