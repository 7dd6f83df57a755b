"""Pictures for chapter 12: sequence layouts, the ring schedule, causal work per step, Ulysses."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _owner_map(shards: Sequence[np.ndarray], n: int) -> np.ndarray:
    owner = np.empty(n, dtype=int)
    for r, idx in enumerate(shards):
        owner[idx] = r
    return owner


def plot_layouts(axes, layouts: dict, n: int) -> None:
    """One strip per layout: token position on x, colour = the device that holds it."""
    import matplotlib.pyplot as plt
    cmap = plt.get_cmap("tab10")
    for ax, (name, shards) in zip(axes, layouts.items()):
        owner = _owner_map(shards, n)
        ax.imshow(owner[None, :], cmap=cmap, vmin=0, vmax=9, aspect="auto")
        for t in range(n):
            ax.text(t, 0, str(owner[t]), ha="center", va="center", fontsize=7, color="white")
        ax.set_yticks([]); ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.set_xticks(range(0, n, max(1, n // 8)))
    axes[-1].set_xlabel("token position (number = device holding it)")


def plot_ring_schedule(ax, work: np.ndarray, title: str = "") -> None:
    """Grid step x device; cell text = whose K/V block the device holds; colour = causal work."""
    p = work.shape[0]
    im = ax.imshow(work, cmap="Blues", vmin=0, vmax=max(1, work.max()))
    for s in range(p):
        for r in range(p):
            ax.text(r, s, f"KV{(r - s) % p}", ha="center", va="center", fontsize=8,
                    color="white" if work[s, r] > 0.6 * work.max() else "black")
    ax.set_xticks(range(p)); ax.set_xticklabels([f"dev {r}" for r in range(p)])
    ax.set_yticks(range(p)); ax.set_yticklabels([f"step {s}" for s in range(p)])
    ax.set_title(title, fontsize=9)
    return im


def plot_all_to_all(axes, n_heads: int, n_devices: int, n: int) -> None:
    """Who holds what before and after Ulysses' first all-to-all: heads x tokens, colour = device."""
    import matplotlib.pyplot as plt
    cmap = plt.get_cmap("tab10")
    tok_owner = np.repeat(np.arange(n_devices), n // n_devices)[None, :].repeat(n_heads, 0)
    head_owner = np.repeat(np.arange(n_devices), n_heads // n_devices)[:, None].repeat(n, 1)
    for ax, grid, title in ((axes[0], tok_owner, "before: sequence shards, all heads"),
                            (axes[1], head_owner, "after all-to-all: head shards, all tokens")):
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=9, aspect="auto")
        ax.set_xlabel("token position"); ax.set_ylabel("head"); ax.set_title(title, fontsize=9)
