"""Figures for chapter 06 (FlashAttention): tile grids, loop orders, IO scaling. matplotlib only."""
from __future__ import annotations

import numpy as np

__all__ = ["plot_tile_classes", "plot_loop_order", "plot_loglog"]

_CLASS_COLORS = {0: "#f0f0f0", 1: "#f4a261", 2: "#2a9d8f"}   # skip, partial (mask), full


def plot_tile_classes(ax, classes: np.ndarray, title: str | None = None) -> None:
    """Draw a ``(T_r, T_c)`` tile-class grid (0 skip, 1 needs a mask, 2 full) as coloured squares."""
    from matplotlib.patches import Patch

    t_r, t_c = classes.shape
    rgb = np.array([[_hex(_CLASS_COLORS[int(c)]) for c in row] for row in classes])
    ax.imshow(rgb, interpolation="nearest")
    ax.set_xticks(range(t_c)); ax.set_yticks(range(t_r))
    ax.set_xlabel("key block j"); ax.set_ylabel("query block i")
    ax.grid(False)
    labels = {0: "skipped", 1: "diagonal: element mask", 2: "full"}
    ax.legend(handles=[Patch(color=_CLASS_COLORS[c], label=f"{labels[c]} ({int((classes == c).sum())})")
                       for c in (2, 1, 0)], loc="upper right", fontsize=7, framealpha=0.9)
    if title:
        ax.set_title(title, fontsize=9)


def plot_loop_order(ax, t_r: int, t_c: int, loop_order: str) -> None:
    """Number the tiles of a ``t_r x t_c`` grid in the order a loop order visits them.

    ``"q_outer"`` (FlashAttention-2) walks a row of key blocks for each query block;
    ``"kv_outer"`` (FlashAttention-1) walks a column of query blocks for each key block.
    """
    order = np.zeros((t_r, t_c), dtype=int)
    step = 0
    pairs = ([(i, j) for i in range(t_r) for j in range(t_c)] if loop_order == "q_outer"
             else [(i, j) for j in range(t_c) for i in range(t_r)])
    for i, j in pairs:
        order[i, j] = step
        step += 1
    ax.imshow(order, cmap="viridis", interpolation="nearest")
    for i in range(t_r):
        for j in range(t_c):
            ax.text(j, i, str(order[i, j] + 1), ha="center", va="center", fontsize=8,
                    color="white" if order[i, j] < step / 2 else "black")
    xs = [j for _, j in pairs]
    ys = [i for i, _ in pairs]
    ax.plot(xs, ys, color="white", lw=0.8, alpha=0.6)
    ax.set_xticks(range(t_c)); ax.set_yticks(range(t_r))
    ax.set_xlabel("key/value block j"); ax.set_ylabel("query block i")
    ax.grid(False)
    name = "FA2: Q outer, K/V inner" if loop_order == "q_outer" else "FA1: K/V outer, Q inner"
    ax.set_title(name, fontsize=9)


def plot_loglog(ax, x, series: dict, xlabel: str, ylabel: str = "HBM elements moved") -> None:
    """Log-log plot of several ``{label: (y, style)}`` series against ``x``."""
    for label, (y, style) in series.items():
        ax.loglog(x, y, style, label=label)
    ax.set_xlabel(xlabel); ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def _hex(color: str) -> tuple[float, float, float]:
    color = color.lstrip("#")
    return tuple(int(color[i:i + 2], 16) / 255 for i in (0, 2, 4))
