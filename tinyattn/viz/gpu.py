"""Figures for chapter 07 (FlashAttention on the GPU): execution model, thread/fragment ownership,
roofline, measured throughput. matplotlib only; every figure draws from numbers passed in."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = ["plot_execution_model", "plot_thread_ownership", "mma_fragment_owners", "plot_mma_fragments",
           "plot_roofline", "plot_tflops_vs_n", "IMPL_STYLE"]

IMPL_STYLE = {   # impl -> (label, colour, marker)
    "cupy_fp16_mma": ("ours: CUDA C fp16 mma.sync", "#d62828", "o"),
    "cupy_bf16_mma": ("ours: CUDA C bf16 mma.sync", "#f77f00", "o"),
    "cupy_fp32": ("ours: CUDA C fp32", "#6a4c93", "s"),
    "numba_fp32": ("ours: Numba fp32", "#1982c4", "s"),
    "naive_gpu_fp16": ("naive 3-kernel fp16", "#8a8a8a", "x"),
    "naive_gpu_fp32": ("naive 3-kernel fp32", "#bdbdbd", "x"),
    "torch_sdpa_flash": ("torch SDPA flash (FA2)", "#2a9d8f", "^"),
    "torch_sdpa_cudnn": ("torch SDPA cuDNN", "#264653", "^"),
    "torch_sdpa_efficient": ("torch SDPA mem-efficient", "#8ac926", "v"),
    "torch_sdpa_math": ("torch SDPA math", "#a0a0a0", "v"),
}


def plot_execution_model(ax, n_sm: int, smem_kb: int, regs_per_sm: int, threads_per_block: int = 128) -> None:
    """Schematic: grid of thread blocks -> SMs; one block = warps of 32 threads; per-SM memories."""
    from matplotlib.patches import FancyBboxPatch, Rectangle

    ax.set_xlim(0, 12); ax.set_ylim(0, 7); ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.2, 3.9), 3.6, 2.8, boxstyle="round,pad=0.05", fc="#eef4fb", ec="#1982c4"))
    ax.text(2.0, 6.45, "grid: one block per (query tile, head)", ha="center", fontsize=7)
    for i in range(4):
        for j in range(6):
            ax.add_patch(Rectangle((0.45 + j * 0.55, 4.15 + i * 0.5), 0.45, 0.38, fc="#9cc3e6", ec="white"))
    ax.annotate("", xy=(5.0, 5.3), xytext=(3.9, 5.3), arrowprops=dict(arrowstyle="->"))
    ax.text(4.45, 5.5, "scheduled\non SMs", ha="center", fontsize=6)
    ax.add_patch(FancyBboxPatch((5.1, 1.9), 6.7, 4.8, boxstyle="round,pad=0.05", fc="#fdf3e7", ec="#f77f00"))
    ax.text(8.45, 6.4, f"one SM (of {n_sm})", ha="center", fontsize=8, weight="bold")
    n_warps = threads_per_block // 32
    for w in range(n_warps):
        y = 5.6 - w * 0.55
        ax.add_patch(Rectangle((5.4, y), 3.3, 0.42, fc="#ffd6a5", ec="#f77f00"))
        ax.text(7.05, y + 0.2, f"warp {w}: 32 threads, one instruction", ha="center", va="center", fontsize=6)
    ax.text(7.05, 5.6 - n_warps * 0.55 + 0.15, f"{threads_per_block} threads = 1 block", ha="center", fontsize=6)
    boxes = [(f"registers: {regs_per_sm // 1024}K x 32 bit\n(private to a thread)", "#caffbf"),
             (f"shared memory: up to {smem_kb} KB\n(shared by one block)", "#ffadad"),
             ("tensor cores + FP32 units + SFU (exp)", "#bdb2ff")]
    for i, (label, color) in enumerate(boxes):
        ax.add_patch(Rectangle((9.0, 5.0 - i * 1.05), 2.6, 0.9, fc=color, ec="gray"))
        ax.text(10.3, 5.45 - i * 1.05, label, ha="center", va="center", fontsize=6)
    # outside every SM: the L2 cache (on the chip, shared by all SMs) and HBM (off the chip)
    ax.add_patch(Rectangle((0.2, 1.0), 11.6, 0.6, fc="#e9ecef", ec="gray"))
    ax.text(6.0, 1.3, "L2 cache: on the chip, outside the SMs, shared by all of them", ha="center", va="center", fontsize=7)
    ax.add_patch(Rectangle((0.2, 0.1), 11.6, 0.6, fc="#d8dde3", ec="gray"))
    ax.text(6.0, 0.4, "HBM (device memory): off the chip", ha="center", va="center", fontsize=7)


def plot_thread_ownership(axes: Sequence, tx: int, ty: int, rq: int, ck: int, d: int) -> None:
    """Which thread (tx + TX*ty, coloured) owns each score of an S tile and each element of O."""
    bq, bk = ty * rq, tx * ck
    s_owner = np.zeros((bq, bk), int)
    o_owner = np.zeros((bq, d), int)
    for y in range(ty):
        for x in range(tx):
            for i in range(rq):
                for j in range(ck):
                    s_owner[y * rq + i, x + tx * j] = y * tx + x
                for c in range(d // tx):
                    o_owner[y * rq + i, x + tx * c] = y * tx + x
    # one colour per thread: tx picks the hue (8 clearly different colours), ty the lightness, so no
    # two threads of a block share a colour (a 20-colour map repeated every 20 threads before)
    import matplotlib.colors as mcolors
    from matplotlib import colormaps
    hues = colormaps["tab10"].colors
    rgb = np.zeros((tx * ty, 3))
    for t in range(tx * ty):
        y, x = divmod(t, tx)
        base = np.array(mcolors.to_rgb(hues[x % len(hues)]))
        w = y / max(ty - 1, 1)                              # 0 (t_y = 0, dark) .. 1 (last t_y, light)
        dark, light = base * 0.45, base * 0.35 + 0.65
        rgb[t] = dark + (light - dark) * w
    for ax, img, title, xl in ((axes[0], s_owner, f"S tile {bq} x {bk}", "key in tile"),
                               (axes[1], o_owner, f"O accumulator {bq} x {d}", "output column")):
        ax.imshow(rgb[img], interpolation="nearest", aspect="auto")
        ax.set_title(title + "\n(hue = t_x, lightness = t_y: one colour per thread)", fontsize=7)
        ax.set_xlabel(xl); ax.set_ylabel("query row in tile"); ax.grid(False)


def mma_fragment_owners() -> dict[str, np.ndarray]:
    """Lane that holds each element of the m16n8k16 operands (PTX ISA fragment layouts).

    g = lane // 4, t = lane % 4. A (16x16): rows g, g+8 x cols 2t, 2t+1, 2t+8, 2t+9.
    B (16x8, k x n): rows 2t, 2t+1, 2t+8, 2t+9 x col g. C (16x8): rows g, g+8 x cols 2t, 2t+1.
    """
    a = np.zeros((16, 16), int); b = np.zeros((16, 8), int); c = np.zeros((16, 8), int)
    for lane in range(32):
        g, t = lane // 4, lane % 4
        for r in (g, g + 8):
            for col in (2 * t, 2 * t + 1, 2 * t + 8, 2 * t + 9):
                a[r, col] = lane
            for col in (2 * t, 2 * t + 1):
                c[r, col] = lane
        for k in (2 * t, 2 * t + 1, 2 * t + 8, 2 * t + 9):
            b[k, g] = lane
    return {"A": a, "B": b, "C": c}


def plot_mma_fragments(axes: Sequence) -> None:
    """Three panels: lane numbers over A (16x16), B (16x8) and C/D (16x8) of mma.sync m16n8k16."""
    owners = mma_fragment_owners()
    titles = {"A": "A = Q or P  (16 x 16)", "B": "B = K^T or V  (16 x 8)", "C": "C = S or O accum. (16 x 8)"}
    for ax, key in zip(axes, ("A", "B", "C")):
        m = owners[key]
        ax.imshow(m % 8, cmap="Set3", interpolation="nearest")
        for (r, col), lane in np.ndenumerate(m):
            ax.text(col, r, str(lane), ha="center", va="center", fontsize=4.5)
        ax.set_title(titles[key], fontsize=8); ax.set_xticks([]); ax.set_yticks([]); ax.grid(False)


def plot_roofline(ax, peak_tflops: dict[str, float], bandwidth_tbps: float,
                  points: Iterable[tuple[str, float, float]]) -> None:
    """Roofline: attainable TFLOP/s = min(peak, intensity x bandwidth); points (label, FLOP/byte, TFLOP/s)."""
    x = np.logspace(0, 4.5, 200)
    for name, peak in peak_tflops.items():
        ax.loglog(x, np.minimum(peak, x * bandwidth_tbps), lw=1, label=f"ceiling {name} {peak:.0f}")
    for label, intensity, tflops in points:
        style = IMPL_STYLE.get(label, (label, "k", "o"))
        ax.loglog([intensity], [tflops], style[2], color=style[1], ms=6, label=style[0])
    ax.set_xlabel("arithmetic intensity (FLOP / byte of HBM traffic)")
    ax.set_ylabel("TFLOP/s"); ax.legend(fontsize=6, loc="lower right")


def plot_tflops_vs_n(ax, results: list[dict], d: int, causal: bool, impls: Sequence[tuple[str, str]]) -> None:
    """Measured TFLOP/s against N for each (impl, dtype) in impls, from benchmark records."""
    for impl, dtype in impls:
        rows = sorted((r for r in results if r["impl"] == impl and r["dtype"] == dtype and r["d"] == d
                       and r["causal"] == causal and r.get("tflops")), key=lambda r: r["N"])
        if not rows:
            continue
        label, color, marker = IMPL_STYLE.get(impl, (impl, None, "o"))
        ax.plot([r["N"] for r in rows], [r["tflops"] for r in rows], marker=marker, color=color, ms=4,
                label=f"{label}" + ("" if dtype in label or "fp" in label else f" {dtype}"))
    ax.set_xscale("log", base=2); ax.set_yscale("log")
    ax.set_xlabel("sequence length N"); ax.set_ylabel("TFLOP/s")
    ax.set_title(f"d = {d}, {'causal' if causal else 'non-causal'}", fontsize=9)
