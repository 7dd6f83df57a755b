"""How a sequence of N tokens is split across P devices (chapter 12).

Three layouts, each a list of P index arrays (the global token positions a device holds):

- ``"contiguous"``: device r holds tokens ``[r·N/P, (r+1)·N/P)``. Simple, but with a causal mask
  the last device's queries see every key while the first device's see only its own block: the
  ring's step time is set by the busiest device, so most devices idle (load imbalance).
- ``"zigzag"``: cut the sequence into 2P chunks; device r holds chunk r and chunk 2P-1-r. An early
  chunk (little causal work) is paired with a late one (much work), so every device does the
  same amount (the split Llama 3's context parallelism uses: 2·CP chunks, Dubey et al. 2024).
- ``"striped"``: token t lives on device t mod P (Brandon et al. 2023, Striped Attention).

:func:`causal_work` counts the (query, key) pairs each device must score at each ring step, so the
imbalance of a layout is a number, not a picture.
"""
from __future__ import annotations

import numpy as np

Array = np.ndarray
LAYOUTS = ("contiguous", "zigzag", "striped")

__all__ = ["LAYOUTS", "shard_indices", "causal_work", "imbalance"]


def _check(n: int, n_devices: int) -> None:
    if not isinstance(n_devices, (int, np.integer)) or n_devices < 1:
        raise ValueError(f"n_devices must be a positive int, got {n_devices!r}")
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"sequence length must be a non-negative int, got {n!r}")


def shard_indices(n: int, n_devices: int, layout: str = "contiguous") -> list[Array]:
    """Global token positions held by each device: a list of ``n_devices`` sorted int arrays.

    Requires ``n % n_devices == 0`` (``n % (2·n_devices) == 0`` for ``"zigzag"``) so every device
    holds the same number of tokens, as ring attention's fixed-size messages assume.
    """
    _check(n, n_devices)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    parts = 2 * n_devices if layout == "zigzag" else n_devices
    if n % parts:
        raise ValueError(f"layout {layout!r} needs the sequence length ({n}) to be a multiple of "
                         f"{parts} for {n_devices} devices")
    t = np.arange(n)
    if layout == "contiguous":
        return list(t.reshape(n_devices, -1))
    if layout == "striped":
        return [t[r::n_devices] for r in range(n_devices)]
    chunks = t.reshape(parts, -1)                        # zigzag: chunk r and chunk 2P-1-r
    return [np.concatenate([chunks[r], chunks[parts - 1 - r]]) for r in range(n_devices)]


def causal_work(shards: list[Array]) -> Array:
    """``work[step, r]``: causal (query, key) pairs device r scores at ring step ``step``.

    At step s device r holds the K/V shard of device ``(r - s) mod P`` (blocks travel to the next
    rank each step). A pair counts when ``key_pos <= query_pos``.
    """
    p = len(shards)
    work = np.zeros((p, p), dtype=np.int64)
    for s in range(p):
        for r in range(p):
            qpos, kpos = shards[r], shards[(r - s) % p]
            # number of keys <= each query: searchsorted on the sorted key positions
            work[s, r] = np.searchsorted(kpos, qpos, side="right").sum()
    return work


def imbalance(work: Array) -> float:
    """Ring time over ideal time: ``sum_s max_r work[s, r] / (sum work / P)`` (1.0 = balanced).

    Each step ends when its slowest device finishes (the next K/V block cannot be used earlier), so
    the ring's compute time is the sum over steps of the per-step maximum.
    """
    total = work.sum()
    if total == 0:
        return 1.0
    return float(work.max(axis=1).sum() / (total / work.shape[1]))
