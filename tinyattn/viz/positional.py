"""Plots for chapter 03 (position encodings), matplotlib only. Each returns the Axes (or Figure)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _axes(ax, figsize=(6.0, 3.0)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_encoding(pe, ax=None, title: str = "sinusoidal encoding PE[p, :]"):
    """Heatmap of an encoding table pe: (n_positions, d) -> Axes (positions down, dims across)."""
    pe = np.asarray(pe, dtype=np.float64)
    if pe.ndim != 2:
        raise ValueError(f"plot_encoding: pe must be (n_positions, d), got shape {pe.shape}")
    ax = _axes(ax)
    im = ax.imshow(pe, cmap="RdBu", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.grid(False)
    ax.set(xlabel="dimension", ylabel="position p", title=title)
    ax.figure.colorbar(im, ax=ax, fraction=0.04)
    return ax


def plot_wavelengths(wavelengths, train_length: int | None = None, ax=None,
                     title: str = "wavelength of each sin/cos pair"):
    """Wavelength (positions per full turn) per pair index, log scale; optional L_train line."""
    lam = np.asarray(wavelengths, dtype=np.float64)
    ax = _axes(ax)
    ax.semilogy(np.arange(lam.size), lam, ".-", label=r"$\lambda_i = 2\pi\, \mathrm{base}^{2i/d}$")
    if train_length is not None:
        ax.axhline(train_length, color="C3", ls="--", label=f"training length {train_length}")
    ax.set(xlabel="pair index i", ylabel="wavelength (positions)", title=title)
    ax.legend(fontsize=8)
    return ax


def plot_curves(x, curves: dict, ax=None, xlabel: str = "", ylabel: str = "", title: str = "",
                logx: bool = False):
    """Several y(x) curves with a legend: curves maps label -> (len(x),) values."""
    ax = _axes(ax)
    for label, y in curves.items():
        ax.plot(x, np.asarray(y, dtype=np.float64), label=label, lw=1.2)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return ax


def plot_matrix(m, ax=None, title: str = "", xlabel: str = "key position n",
                ylabel: str = "query position m", cmap: str = "viridis", symmetric: bool = False):
    """Heatmap of one matrix (Lq, Lk), e.g. a score matrix or one head's bias."""
    m = np.asarray(getattr(m, "data", m), dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"plot_matrix: m must be 2-D, got shape {m.shape}")
    ax = _axes(ax, figsize=(3.6, 3.0))
    vmax = np.abs(m).max() if symmetric else None
    im = ax.imshow(m, cmap=cmap, aspect="auto", interpolation="nearest",
                   vmin=-vmax if symmetric else None, vmax=vmax)
    ax.grid(False)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    return ax


def plot_heads(bias, titles: Sequence[str] | None = None, ncols: int = 4, suptitle: str = "",
               shared_scale: bool = True):
    """Grid of per-head heatmaps, bias: (H, Lq, Lk) (ndarray or Tensor) -> Figure.

    shared_scale=False gives each head its own colour range (and its own colour bar), so heads
    with small values (e.g. ALiBi's gentle slopes) stay visible."""
    import matplotlib.pyplot as plt

    b = np.asarray(getattr(bias, "data", bias), dtype=np.float64)
    if b.ndim != 3:
        raise ValueError(f"plot_heads: bias must be (H, Lq, Lk), got shape {b.shape}")
    H = b.shape[0]
    ncols = min(ncols, H)
    nrows = -(-H // ncols)
    width = 2.2 if shared_scale else 2.8                 # room for one colour bar per head
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 2.0 * nrows), squeeze=False)
    lo, hi = b.min(), b.max()
    for h, ax in enumerate(axes.ravel()):
        if h >= H:
            ax.axis("off")
            continue
        vmin, vmax = (lo, hi) if shared_scale else (b[h].min(), b[h].max())
        im = ax.imshow(b[h], cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.grid(False)
        ax.set_title(titles[h] if titles else f"head {h}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if not shared_scale:
            fig.colorbar(im, ax=ax, fraction=0.046)
    if shared_scale:
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10, y=1.0 + 0.04 / nrows)
    return fig
