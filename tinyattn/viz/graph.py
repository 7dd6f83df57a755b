"""Draw the computation graph recorded by :mod:`tinyattn.autograd` (matplotlib only).

    x = ta.Tensor(2.0, requires_grad=True, name="x")
    y = (x * x + x).tanh()
    draw_graph(y)                     # leaves on the left, the output on the right

Each box shows the op (or the tensor's ``name``), its shape and, for one-element tensors, its
value; after ``backward()`` the boxes also show ``.grad`` where it is stored (leaves, and tensors
on which ``retain_grad()`` was called). Arrows point from an input to the op that consumes it,
the direction of the forward pass; backward walks them in reverse.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import topological_order

__all__ = ["graph_nodes", "draw_graph", "draw_broadcast"]


def graph_nodes(root: Any) -> tuple[list, list[tuple[int, int]]]:
    """The recorded graph below ``root``: (nodes in topological order, edges (parent, child) as
    indices into nodes). Iterative, so deep graphs are fine."""
    order = topological_order(root, only_requiring_grad=False)
    index = {id(n): i for i, n in enumerate(order)}
    edges = [(index[id(p)], index[id(n)]) for n in order for p in n._parents]
    return order, edges


def _fmt(a: np.ndarray | None) -> str:
    if a is None:
        return ""
    return f"{a.item():.3g}" if a.size == 1 else f"{a.shape}"


def _label(t: Any, show_grad: bool) -> str:
    head = t.name if t.name else t._op
    if t.name and t._op != "leaf":
        head = f"{t.name} = {t._op}"
    lines = [head]
    lines.append(f"value {_fmt(t.data)}" if t.data.size == 1 else f"shape {t.data.shape}")
    if show_grad and t.grad is not None:
        lines.append(f"grad {_fmt(t.grad)}")
    return "\n".join(lines)


def draw_graph(root: Any, ax: Any = None, show_grad: bool = True, title: str | None = None) -> Any:
    """Draw the graph that produced ``root`` on ``ax`` (a new figure if None); returns the axes.

    Columns are depths (longest path from a leaf; a leaf sits one column left of its first
    consumer), so every arrow points to the right.
    Leaves are green when they require grad and grey when they are constants; ops are blue.
    """
    import matplotlib.pyplot as plt

    nodes, edges = graph_nodes(root)
    depth = [0] * len(nodes)
    for p, c in edges:                      # nodes are topologically sorted: parents come first
        depth[c] = max(depth[c], depth[p] + 1)
    for i, t in enumerate(nodes):           # a leaf sits just left of its first consumer
        users = [depth[c] for p, c in edges if p == i]
        if not t._parents and users:
            depth[i] = min(users) - 1
    columns: dict[int, list[int]] = {}
    for i, d in enumerate(depth):
        columns.setdefault(d, []).append(i)
    pos = {}
    for d, members in columns.items():
        for k, i in enumerate(members):
            pos[i] = (d, (len(members) - 1) / 2 - k)
    if ax is None:
        width = 1.9 * (max(depth) + 1)
        height = 1.0 + 1.0 * max(len(m) for m in columns.values())
        _, ax = plt.subplots(figsize=(max(width, 4.0), max(height, 2.5)))
    repeats: dict[tuple[int, int], int] = {}
    for p, c in edges:                      # y = x * x: the second edge is drawn curved
        k = repeats[(p, c)] = repeats.get((p, c), -1) + 1
        ax.annotate("", xy=pos[c], xytext=pos[p],
                    arrowprops=dict(arrowstyle="-|>", color="0.35", lw=1.0, shrinkA=24,
                                    shrinkB=24, connectionstyle=f"arc3,rad={0.35 * k}"))
    for i, t in enumerate(nodes):
        leaf = t._op == "leaf" or not t._parents
        color = ("#c9e8c2" if t.requires_grad else "#e3e3e3") if leaf else "#cfe0f5"
        ax.text(*pos[i], _label(t, show_grad), ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.35", fc=color, ec="0.3", lw=0.8))
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def draw_broadcast(shape_a: tuple[int, int], shape_b: tuple[int, int], ax: Any = None) -> Any:
    """Picture ``a + b`` for two 2-D shapes: each operand's real cells dark, the cells NumPy
    repeats ("stretches") to reach the broadcast shape light. Returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    out = np.broadcast_shapes(shape_a, shape_b)
    if len(out) != 2 or len(shape_a) != 2 or len(shape_b) != 2:
        raise ValueError(f"draw_broadcast: need 2-D shapes, got {shape_a} and {shape_b}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 2.6))
    panels = [(shape_a, "a", "#4c72b0"), (shape_b, "b", "#dd8452"), (out, "a + b", "#55a868")]
    x0 = 0.0
    for k, (shape, name, color) in enumerate(panels):
        for i in range(out[0]):
            for j in range(out[1]):
                real = k == 2 or (i < shape[0] and j < shape[1])
                ax.add_patch(Rectangle((x0 + j, out[0] - 1 - i), 0.95, 0.95, fc=color,
                                       alpha=0.85 if real else 0.18, ec="0.3", lw=0.5))
        ax.text(x0 + out[1] / 2, out[0] + 0.35, f"{name}: {tuple(shape)}", ha="center", fontsize=9)
        if k < 2:
            ax.text(x0 + out[1] + 0.6, out[0] / 2, "+" if k == 0 else "=", fontsize=14,
                    ha="center", va="center")
        x0 += out[1] + 1.2
    ax.set_xlim(-0.2, x0 - 1.0)
    ax.set_ylim(-0.3, out[0] + 0.9)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax
