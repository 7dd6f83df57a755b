"""Ring attention and DeepSpeed-Ulysses simulated in one process, with exact accounting.

Each simulated device is a :class:`Device` holding named arrays; every array a device keeps
between operations (its shards, the K/V block it is computing on, the one arriving, accumulators,
the score tile) goes through :meth:`Device.put`, so ``peak_bytes`` is exact for that definition
and ``sent_bytes`` counts every message. The MPI programs in :mod:`.ring` run the same algorithms
across real processes; the chapter-12 tests check both against dense attention.

Ring attention (Liu et al. 2023): the sequence is split across P devices (:mod:`.sharding`). Each
device keeps its query shard and, for P steps, attends to the K/V block it holds, merges the partial
result with the log-sum-exp rule (:func:`.local.merge_lse`) and passes the block to the next device.
Per device: P-1 sends of one K/V block each; memory O(N/P), never the full sequence.

Ulysses (Jacobs et al. 2023): an all-to-all turns "all heads of N/P tokens" into "H/P heads of all N
tokens", each device runs ordinary attention on its heads, and a second all-to-all turns the output
back. Needs ``H % P == 0``; each device sends 4·(P-1)/P of its local q/k/v/out bytes in total.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..functional._checks import floating_arrays
from .local import block_visible, merge_lse, partial_attention
from .sharding import LAYOUTS, shard_indices

Array = np.ndarray

__all__ = ["Device", "RingStats", "ring_attention", "ulysses_attention"]


@dataclass
class Device:
    """One simulated device: named arrays it holds, its peak footprint and the bytes it sent."""
    rank: int
    held: dict = field(default_factory=dict)
    peak_bytes: int = 0
    sent_bytes: int = 0
    kv_owner: int = 0

    def put(self, name: str, x: Array) -> Array:
        self.held[name] = x
        self.peak_bytes = max(self.peak_bytes, sum(a.nbytes for a in self.held.values()))
        return x

    def drop(self, *names: str) -> None:
        for n in names:
            self.held.pop(n, None)


@dataclass
class RingStats:
    """Per-device accounting of one simulated run (lists indexed by rank)."""
    sent_bytes: list
    peak_bytes: list
    steps: int


def _inputs(q, k, v, n_devices: int, scale):
    q, k, v = floating_arrays("(..., H, N, d)", 3, q=q, k=k, v=v)
    if k.shape[-1] != q.shape[-1] or k.shape[-2] != v.shape[-2] or q.shape[-2] != k.shape[-2]:
        raise ValueError(f"expected q (..., Hq, N, d), k (..., Hkv, N, d), v (..., Hkv, N, dv) with one "
                         f"sequence length N; got q {q.shape}, k {k.shape}, v {v.shape}")
    if k.shape[-3] != v.shape[-3] or q.shape[-3] % k.shape[-3]:
        raise ValueError(f"query heads ({q.shape[-3]}) must be a multiple of the K/V heads "
                         f"(k {k.shape}, v {v.shape})")
    if not isinstance(n_devices, (int, np.integer)) or n_devices < 1:
        raise ValueError(f"n_devices must be a positive int, got {n_devices!r}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return q, k, v, scale


def ring_attention(q, k, v, n_devices: int, is_causal: bool = False, *, layout: str = "contiguous",
                   scale: float | None = None, return_stats: bool = False):
    """Ring attention over ``n_devices`` simulated devices -> ``out (..., N, dv)`` (and stats).

    ``q: (..., Hq, N, d)``, ``k: (..., Hkv, N, d)``, ``v: (..., Hkv, N, dv)`` with ``Hq % Hkv == 0``;
    ``N`` a multiple of ``n_devices`` (of ``2·n_devices`` for ``layout="zigzag"``). Equal to dense
    attention (causal = ``key_pos <= query_pos``). With ``return_stats`` also a :class:`RingStats`.
    """
    q, k, v, scale = _inputs(q, k, v, n_devices, scale)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    p, n = n_devices, q.shape[-2]
    shards = shard_indices(n, p, layout)
    devs = [Device(r) for r in range(p)]
    for r, d in enumerate(devs):                      # each device starts with its own q, k, v shard
        idx = shards[r]
        d.put("q", q[..., idx, :].copy())
        d.put("kv", _KV(k[..., idx, :].copy(), v[..., idx, :].copy()))
        d.kv_owner = r                                # whose K/V block this device holds now
    out = np.zeros(q.shape[:-1] + v.shape[-1:], dtype=np.result_type(q, v))
    for d in devs:
        d.put("o", np.zeros(q.shape[:-2] + (len(shards[d.rank]), v.shape[-1]), out.dtype))
        d.put("lse", np.full(q.shape[:-2] + (len(shards[d.rank]),), -np.inf, out.dtype))
    for step in range(p):
        # 1. every device posts its current K/V block to the next rank (arrives during compute)
        if step < p - 1:
            for d in devs:
                nxt = devs[(d.rank + 1) % p]
                nxt.put("kv_in", d.held["kv"])
                d.sent_bytes += d.held["kv"].nbytes
        # 2. every device attends to the block it holds and merges with the lse rule
        for d in devs:
            if not block_visible(shards[d.rank], shards[d.kv_owner], is_causal):
                continue                              # every key is in the future: no work this step
            kb, vb = d.held["kv"].k, d.held["kv"].v
            d.put("scores", np.empty(q.shape[:-2] + (len(shards[d.rank]), kb.shape[-2]), out.dtype))
            o_p, lse_p = partial_attention(d.held["q"], *_expand(d.held["q"], kb, vb),
                                           shards[d.rank], shards[d.kv_owner], is_causal=is_causal, scale=scale)
            d.drop("scores")
            o, lse = merge_lse(d.held["o"], d.held["lse"], o_p, lse_p)
            d.put("o", o); d.put("lse", lse)
        # 3. the arrived block replaces the one just used
        if step < p - 1:
            for d in devs:
                d.put("kv", d.held.pop("kv_in"))
                d.kv_owner = (d.kv_owner - 1) % p
    for d in devs:
        out[..., shards[d.rank], :] = d.held["o"]
    if return_stats:
        return out, RingStats([d.sent_bytes for d in devs], [d.peak_bytes for d in devs], p)
    return out


class _KV:
    """A K/V block travelling as one message (``nbytes`` = both arrays)."""
    def __init__(self, k: Array, v: Array):
        self.k, self.v = k, v

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


def _expand(q: Array, k: Array, v: Array) -> tuple[Array, Array]:
    """Repeat K/V heads for GQA (query head i uses K/V head i // (Hq // Hkv)); a no-op for MHA."""
    g = q.shape[-3] // k.shape[-3]
    return (k, v) if g == 1 else (np.repeat(k, g, axis=-3), np.repeat(v, g, axis=-3))


def ulysses_attention(q, k, v, n_devices: int, is_causal: bool = False, *, scale: float | None = None,
                      return_stats: bool = False):
    """DeepSpeed-Ulysses over ``n_devices`` simulated devices -> ``out (..., Hq, N, dv)`` (and stats).

    Shapes as :func:`ring_attention`; needs ``Hq % n_devices == 0`` and ``Hkv % n_devices == 0``
    and ``N % n_devices == 0``. Devices start with contiguous sequence shards of all heads.
    """
    q, k, v, scale = _inputs(q, k, v, n_devices, scale)
    p, n, hq, hkv = n_devices, q.shape[-2], q.shape[-3], k.shape[-3]
    if hq % p or hkv % p:
        raise ValueError(f"Ulysses shards heads: Hq ({hq}) and Hkv ({hkv}) must be multiples of "
                         f"n_devices ({p}); use ring attention otherwise")
    shards = shard_indices(n, p, "contiguous")
    devs = [Device(r) for r in range(p)]
    for d in devs:
        for name, x in (("q", q), ("k", k), ("v", v)):
            d.put(name, x[..., shards[d.rank], :].copy())
    # all-to-all #1: device j receives heads group j of every device's tokens
    for name, h in (("q", hq), ("k", hkv), ("v", hkv)):
        g = h // p
        pieces = {j: [d.held[name][..., j * g:(j + 1) * g, :, :] for d in devs] for j in range(p)}
        for d in devs:
            d.sent_bytes += sum(pieces[j][d.rank].nbytes for j in range(p) if j != d.rank)
        for j, d in enumerate(devs):
            d.put(name + "_heads", np.concatenate(pieces[j], axis=-2))   # all N tokens, H/p heads
    out = np.zeros(q.shape[:-1] + v.shape[-1:], dtype=np.result_type(q, v))
    pos = np.arange(n)
    for d in devs:                                   # ordinary attention on this device's heads
        qh, (kh, vh) = d.held["q_heads"], _expand(d.held["q_heads"], d.held["k_heads"], d.held["v_heads"])
        d.put("scores", np.empty(qh.shape[:-1] + (n,), out.dtype))
        o, _ = partial_attention(qh, kh, vh, pos, pos, is_causal=is_causal, scale=scale)
        d.drop("scores", "q_heads", "k_heads", "v_heads")
        d.put("o_heads", o)
    # all-to-all #2: back to sequence shards of all heads
    g = hq // p
    for d in devs:
        for r in range(p):
            piece = d.held["o_heads"][..., shards[r], :]
            if r != d.rank:
                d.sent_bytes += piece.nbytes
            out[..., d.rank * g:(d.rank + 1) * g, shards[r], :] = piece
    if return_stats:
        return out, RingStats([d.sent_bytes for d in devs], [d.peak_bytes for d in devs], 2)
    return out
