"""Figures for chapters 08-09: the MLA data flow and block tables of a paged KV cache."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

__all__ = ["draw_mla_dataflow", "draw_block_tables"]


def _box(ax, x, y, w, h, text, color):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="0.3", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8)


def _arrow(ax, x0, y0, x1, y1, text=""):
    ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", color="0.3", lw=1))
    if text:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.08, text, ha="center", fontsize=7, color="0.2")


def draw_mla_dataflow(d_model=5120, d_c=512, d_rope=64, n_heads=128, d_head=128, ax=None):
    """Boxes and arrows: h -> c^KV (cached) -> per-head k^C, v; h -> k^R (cached, shared); queries.
    Cached tensors are drawn in orange. Returns the Axes."""
    ax = ax or plt.subplots(figsize=(8, 3.6))[1]
    cache, plain, q = "#f6b26b", "#cfe2f3", "#d9ead3"
    _box(ax, 0.0, 1.6, 1.2, 0.5, f"h  ({d_model})", plain)
    _box(ax, 2.0, 2.6, 1.6, 0.5, f"c^KV  ({d_c})\ncached", cache)
    _box(ax, 2.0, 1.6, 1.6, 0.5, f"k^R  ({d_rope}, RoPE)\ncached, shared", cache)
    _box(ax, 2.0, 0.4, 1.6, 0.5, "c^Q -> q^C_i, q^R_i", q)
    _box(ax, 4.6, 3.1, 2.0, 0.5, f"k^C_i ({n_heads}x{d_head})", plain)
    _box(ax, 4.6, 2.3, 2.0, 0.5, f"v_i ({n_heads}x{d_head})", plain)
    _box(ax, 7.05, 1.35, 2.75, 1.0, "head i: softmax of\n(q^C_i·k^C_i + q^R_i·k^R)\n/ sqrt(d_h + d_R), times v_i", q)
    _arrow(ax, 1.2, 1.95, 2.0, 2.8, "W^DKV")
    _arrow(ax, 1.2, 1.85, 2.0, 1.85, "W^KR")
    _arrow(ax, 1.2, 1.7, 2.0, 0.7, "W^DQ")
    _arrow(ax, 3.6, 2.95, 4.6, 3.3, "W^UK")
    _arrow(ax, 3.6, 2.75, 4.6, 2.5, "W^UV")
    _arrow(ax, 6.6, 3.3, 7.6, 2.3)
    _arrow(ax, 6.6, 2.5, 7.2, 2.1)
    _arrow(ax, 3.6, 1.85, 7.2, 1.85)
    _arrow(ax, 3.6, 0.65, 7.6, 1.4)
    ax.text(3.0, 0.05, "absorbed: q^C_i W^UK_iᵀ scores c^KV directly; W^UV_i folds into W^O", fontsize=8)
    ax.set_xlim(-0.1, 9.95), ax.set_ylim(0, 3.8), ax.axis("off")
    ax.set_title(f"MLA: cache {d_c} + {d_rope} = {d_c + d_rope} numbers per token and layer", fontsize=10)
    return ax


def draw_block_tables(allocator, seq_ids, ax=None):
    """Each sequence's logical blocks (rows, left) and the physical pool (bottom row), with lines
    from logical to physical block; shared blocks (ref count > 1) hatched. Returns the Axes."""
    ax = ax or plt.subplots(figsize=(8, 3.2))[1]
    bs, nb = allocator.block_size, allocator.n_blocks
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    pool_y = -1.2
    for b in range(nb):
        rc = int(allocator.ref_counts[b])
        ax.add_patch(plt.Rectangle((b, pool_y), 0.9, 0.6, fc="0.95" if rc == 0 else "#fde2c2", ec="0.3",
                                   hatch="//" if rc > 1 else None))
        ax.text(b + 0.45, pool_y - 0.25, f"{b}", ha="center", fontsize=7)
        ax.text(b + 0.45, pool_y + 0.3, f"rc={rc}", ha="center", fontsize=6)
    for row, sid in enumerate(seq_ids):
        table, length = allocator.tables[sid], allocator.lengths[sid]
        y = row * 1.0 + 0.4
        ax.text(-0.3, y + 0.3, str(sid), ha="right", va="center", fontsize=8)
        for j, b in enumerate(table):
            filled = min(bs, length - j * bs)
            ax.add_patch(plt.Rectangle((j * 1.2, y), 1.0, 0.6, fc=colors[row % len(colors)], alpha=0.25, ec="0.3"))
            ax.text(j * 1.2 + 0.5, y + 0.3, f"->{b} ({filled}/{bs})", ha="center", va="center", fontsize=7)
            ax.plot([j * 1.2 + 0.5, b + 0.45], [y, pool_y + 0.6], color=colors[row % len(colors)], lw=0.8, alpha=0.7)
    ax.text(-0.3, pool_y + 0.3, "pool", ha="right", va="center", fontsize=8)
    ax.set_xlim(-1.5, max(nb, 6) + 0.2), ax.set_ylim(pool_y - 0.5, len(seq_ids) + 0.3), ax.axis("off")
    return ax
