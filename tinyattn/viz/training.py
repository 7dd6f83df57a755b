"""Figures of chapter 04: the pre-norm block as a diagram, and training curves.

``draw_block(ax)`` draws one decoder block with its two residual paths;
``plot_history(hist, ax)`` plots the per-step loss of ``tinyattn.train.train`` (raw and smoothed)
and any evaluations it recorded.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["draw_block", "plot_history", "smooth"]

_BOXES = [  # (label, y, colour): bottom to top, the order the data flows through a pre-norm block
    ("x  (B, L, d)", 0.0, "#eeeeee"),
    ("LayerNorm", 1.0, "#cfe2f3"),
    ("causal multi-head attention\n(RoPE / ALiBi / T5 bias enter here)", 2.0, "#f9cb9c"),
    ("+", 3.0, "#ffffff"),
    ("LayerNorm", 4.0, "#cfe2f3"),
    ("MLP: Linear(d, 4d) -> GELU -> Linear(4d, d)", 5.0, "#b6d7a8"),
    ("+", 6.0, "#ffffff"),
    ("y  (B, L, d)", 7.0, "#eeeeee"),
]


def draw_block(ax=None, title: str = "pre-norm Transformer block"):
    """Draw the block: boxes for each sublayer, arrows for data flow, side arrows for the residuals
    (``h = x + Attn(LN(x))``, ``y = h + MLP(LN(h))``). Returns the Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 5.0))
    width = 3.9
    for label, y, colour in _BOXES:
        if label == "+":
            ax.add_patch(plt.Circle((0, y), 0.22, fc="white", ec="black", lw=1.2))
            ax.text(0, y, "+", ha="center", va="center", fontsize=13)
            continue
        ax.add_patch(FancyBboxPatch((-width / 2, y - 0.28), width, 0.56, boxstyle="round,pad=0.04",
                                    fc=colour, ec="black", lw=1.0))
        ax.text(0, y, label, ha="center", va="center", fontsize=8)
    arrow = dict(arrowstyle="-|>", color="black", lw=1.0)
    for (_, y0, _), (l1, y1, _) in zip(_BOXES[:-1], _BOXES[1:]):
        start = y0 + (0.22 if _BOXES[[b[1] for b in _BOXES].index(y0)][0] == "+" else 0.32)
        end = y1 - (0.22 if l1 == "+" else 0.32)
        ax.annotate("", xy=(0, end), xytext=(0, start), arrowprops=arrow)
    for y_from, y_to in ((0.5, 3.0), (3.5, 6.0)):   # shortcut around each sublayer: right, up, left
        xr = width / 2 + 0.35
        ax.plot([0, xr, xr], [y_from, y_from, y_to], color="#cc0000", lw=1.4)
        ax.annotate("", xy=(0.24, y_to), xytext=(xr, y_to),
                    arrowprops=dict(arrowstyle="-|>", color="#cc0000", lw=1.4))
        ax.text(xr + 0.1, (y_from + y_to) / 2, "residual", color="#cc0000", fontsize=8,
                ha="left", va="center", rotation=90)
    ax.set_xlim(-2.2, 2.8)
    ax.set_ylim(-0.6, 7.6)
    ax.set_aspect("auto")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def smooth(values: Sequence[float], window: int = 20) -> np.ndarray:
    """Trailing moving average: out[t] = mean(values[max(0, t-window+1) : t+1]) -> (len(values),)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_history(hist: dict, ax=None, label: str = "train", window: int = 20, eval_key: str | None = None,
                 log_y: bool = True):
    """Per-step loss (faint) and its moving average; evaluations as markers.

    hist: the dict returned by ``tinyattn.train.train``. eval_key: which entry of each evaluation
    dict to plot (evaluations that are plain floats are plotted directly). Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    steps = np.asarray(hist["step"]) + 1
    line, = ax.plot(steps, hist["loss"], alpha=0.25, lw=0.8)
    ax.plot(steps, smooth(hist["loss"], window), color=line.get_color(), lw=1.5, label=f"{label} (avg {window})")
    evals = hist.get("eval", [])
    if evals:
        ys = [e[eval_key] if isinstance(e, dict) else e for e in evals]
        ax.plot(hist["eval_step"], ys, "o-", ms=4, label=eval_key or "eval")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats)")
    if log_y:
        ax.set_yscale("log")
    ax.legend()
    return ax
