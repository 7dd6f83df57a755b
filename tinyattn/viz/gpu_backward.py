"""Figures for chapter 07 section 8 (the tensor-core backward): the K/V-outer dataflow of one thread
block, GQA head packing, and measured backward throughput. matplotlib only; numbers are passed in."""
from __future__ import annotations

from typing import Sequence

__all__ = ["plot_backward_dataflow", "plot_gqa_packing", "plot_backward_bars"]


def _box(ax, x, y, w, h, text, fc, ec="#333333", fs=7, weight="normal"):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.03", fc=fc, ec=ec, lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fs, weight=weight)


def _arrow(ax, a, b, text="", color="#333333", fs=6, ls="-"):
    ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="->", color=color, lw=1.2, linestyle=ls))
    if text:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.12, text, ha="center", fontsize=fs, color=color)


def plot_backward_dataflow(ax) -> None:
    """One dK/dV block: what it reads from HBM (left), keeps on chip (middle), writes (right)."""
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 7.2)
    ax.axis("off")
    ax.text(1.3, 6.9, "HBM (read)", ha="center", fontsize=8, weight="bold")
    ax.text(6.0, 6.9, "one thread block (SM): registers + shared memory", ha="center", fontsize=8, weight="bold")
    ax.text(10.8, 6.9, "HBM (written)", ha="center", fontsize=8, weight="bold")
    hbm_in, onchip, hbm_out = "#e8eef7", "#fff4e0", "#e9f5ec"
    _box(ax, 0.2, 5.2, 2.2, 1.1, "K_j, V_j\n(one key tile, once)", hbm_in)
    _box(ax, 0.2, 2.6, 2.2, 2.1, "for every query\ntile i (and every\nquery head of\nthe GQA group):\nQ_i, dO_i,\nlse_i, D_i", hbm_in)
    _box(ax, 0.2, 0.5, 2.2, 1.3, "pre-pass:\nD = rowsum(dO∘O)", hbm_in, fs=6)
    _box(ax, 3.2, 5.2, 2.4, 1.1, "K_j, V_j in shared\nmem / registers", onchip)
    _box(ax, 3.2, 2.9, 5.6, 1.9, "S^T = K_j Q_i^T · scale        P^T = exp(S^T − lse_i)\n"
         "dP^T = V_j dO_i^T               dS^T = P^T∘(dP^T − D_i)\n"
         "(each warp: 16 keys × the query tile, mma.sync; P, dS stay in registers\n"
         "as the next mma's A operand)", onchip, fs=6)
    _box(ax, 6.2, 5.2, 2.6, 1.1, "dV_j += P^T dO_i\ndK_j += dS^T Q_i", onchip, weight="bold")
    _box(ax, 3.2, 0.5, 5.6, 1.6, "atomic mode: dS^T → shared memory, dQ_i(part) = dS_i K_j ·scale\n"
         "(ldmatrix.trans of dS^T and K_j)  — or separate mode: a second,\n"
         "Q-outer kernel recomputes S, dP per key tile and owns dQ_i", onchip, fs=6)
    _box(ax, 9.6, 5.2, 2.2, 1.1, "dK_j, dV_j\n(once, at the end)", hbm_out)
    _box(ax, 9.6, 0.5, 2.2, 1.6, "dQ (fp32):\nred.global.add\nfrom every K/V\nblock", hbm_out, fs=6)
    _arrow(ax, (2.4, 5.75), (3.2, 5.75))
    _arrow(ax, (2.4, 3.7), (3.2, 3.7))
    ax.text(2.8, 4.3, "cp.async\n2 stages", ha="center", fontsize=5)
    _arrow(ax, (4.4, 5.2), (4.4, 4.8))
    _arrow(ax, (7.5, 4.8), (7.5, 5.2))
    _arrow(ax, (6.0, 2.9), (6.0, 2.1))
    _arrow(ax, (8.8, 5.75), (9.6, 5.75))
    ax.text(9.2, 6.45, "after the last tile", ha="center", fontsize=5)
    _arrow(ax, (8.8, 1.3), (9.6, 1.3), color="#c1121f")
    ax.text(9.2, 2.3, "every tile\n(atomic mode)", ha="center", fontsize=5, color="#c1121f")
    _arrow(ax, (1.3, 1.8), (1.3, 2.6), color="#666666")


def plot_gqa_packing(ax, n_heads: int = 8, n_kv: int = 2) -> None:
    """Query heads of a group share one kv head: the dK/dV block of kv head g loops over its group."""
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4)
    ax.axis("off")
    group = n_heads // n_kv
    colors = ["#1982c4", "#f77f00", "#6a4c93", "#8ac926"]
    w = 9.0 / n_heads
    for h in range(n_heads):
        c = colors[(h // group) % len(colors)]
        _box(ax, 0.5 + h * w, 2.8, w * 0.85, 0.8, f"q head {h}", c + "55", fs=6)
    for g in range(n_kv):
        c = colors[g % len(colors)]
        x0 = 0.5 + g * group * w
        _box(ax, x0, 0.4, group * w * 0.95, 0.9, f"kv head {g} <- q heads {g * group}..{(g + 1) * group - 1}\n"
             f"one dK/dV block loops over {group} query heads", c + "55", fs=6)
        for h in range(g * group, (g + 1) * group):
            ax.annotate("", xy=(x0 + group * w * 0.47, 1.3), xytext=(0.5 + h * w + w * 0.42, 2.8),
                        arrowprops=dict(arrowstyle="->", color=c, lw=0.8))
    ax.text(5.0, 3.8, f"GQA {n_heads}:{n_kv}: forward reads kv head h // {group}; backward sums dK, dV over the "
            "group in registers (no repeated K/V, no atomics on dK/dV)", ha="center", fontsize=7)


def plot_backward_bars(ax, rows: Sequence[tuple[str, float, float, float, float]], title: str) -> None:
    """rows: (label, ours atomic, ours separate, torch flash, torch cuDNN) TFLOP/s -> grouped bars."""
    import numpy as np

    x = np.arange(len(rows))
    series = [("ours, atomic dQ", "#d62828"), ("ours, separate dQ (B1 dK/dV tiles)", "#f4a261"),
              ("torch SDPA flash (FA2)", "#2a9d8f"), ("torch SDPA cuDNN", "#264653")]
    for i, (lab, col) in enumerate(series):
        vals = [r[1 + i] for r in rows]
        ax.bar(x + (i - 1.5) * 0.2, vals, 0.2, label=lab, color=col)
    ax.set_xticks(x)
    ax.set_xticklabels([r[0] for r in rows], fontsize=7)
    ax.set_ylabel("backward TFLOP/s (2.5 × forward FLOPs)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6, ncol=2)
