"""Attention heatmaps (matplotlib only): one (Lq, Lk) weight matrix, or a grid of heads.

Rows are queries (who is looking), columns are keys (who is looked at); each row of a softmax
attention matrix sums to 1 (or is all 0 for a query with no allowed key).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _as_array(weights, ndim: int, name: str) -> np.ndarray:
    w = np.asarray(getattr(weights, "data", weights), dtype=np.float64)
    if w.ndim != ndim:
        shape = "(Lq, Lk)" if ndim == 2 else "(H, Lq, Lk)"
        raise ValueError(f"{name}: weights must be {shape}, got shape {w.shape}")
    return w


def plot_attention(weights, ax=None, title: str | None = None,
                   xlabels: Sequence[str] | None = None, ylabels: Sequence[str] | None = None,
                   vmax: float | None = 1.0, annotate: bool = False, colorbar: bool = True):
    """Heatmap of weights (Lq, Lk) (ndarray or Tensor). Returns the Axes.

    xlabels: Lk key labels; ylabels: Lq query labels; vmax=None scales to the data;
    annotate writes each weight in its cell (for small matrices)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    w = _as_array(weights, 2, "plot_attention")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.35 * w.shape[1], 0.8 + 0.35 * w.shape[0]))
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.grid(False)
    for labels, n, axis in ((xlabels, w.shape[1], "x"), (ylabels, w.shape[0], "y")):
        if labels is None:   # integer positions only
            getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))
        else:
            if len(labels) != n:
                raise ValueError(f"plot_attention: {axis}labels has {len(labels)} entries for {n} "
                                 f"{'keys' if axis == 'x' else 'queries'}")
            getattr(ax, f"set_{axis}ticks")(range(n))
            getattr(ax, f"set_{axis}ticklabels")(labels, rotation=90 if axis == "x" else 0)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    if annotate:
        for (i, j), val in np.ndenumerate(w):
            ax.text(j, i, f"{val:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if val < 0.5 * (vmax or w.max() or 1.0) else "black")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_heads(weights, ncols: int = 4, titles: Sequence[str] | None = None,
               xlabels: Sequence[str] | None = None, ylabels: Sequence[str] | None = None,
               vmax: float | None = 1.0, size: float = 2.2, suptitle: str | None = None):
    """Grid of heatmaps, one per head, from weights (H, Lq, Lk). Returns the Figure."""
    import matplotlib.pyplot as plt

    w = _as_array(weights, 3, "plot_heads")
    h = w.shape[0]
    ncols = max(1, min(ncols, h))
    nrows = -(-h // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for idx, ax in enumerate(axes.flat):
        if idx >= h:
            ax.axis("off")
            continue
        title = titles[idx] if titles is not None else f"head {idx}"
        plot_attention(w[idx], ax=ax, title=title, xlabels=xlabels, ylabels=ylabels,
                       vmax=vmax, colorbar=False)
        if idx % ncols:
            ax.set_ylabel("")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
