"""Learned absolute position embeddings (BERT, GPT-2): a trainable table ``(max_len, d_model)``.

Row p is the vector added at position p. Positions >= max_len have no row: asking for one raises,
which is exactly why this encoding cannot extrapolate (source text 4.1).
"""
from __future__ import annotations

import numpy as np

from ..autograd import custom_op
from ..nn import Module, Parameter
from ..tensor import Tensor

__all__ = ["LearnedPositionalEmbedding"]


class LearnedPositionalEmbedding(Module):
    """Trainable table ``weight: (max_len, d_model)``, initialised N(0, 0.02^2) from ``rng``.

    forward(positions: int array of any shape S) -> Tensor (*S, d_model).
    Raises ValueError if a position is >= max_len or negative.
    """

    def __init__(self, max_len: int, d_model: int, rng: np.random.Generator | None = None):
        super().__init__()
        for name, v in (("max_len", max_len), ("d_model", d_model)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        self.max_len, self.d_model = int(max_len), int(d_model)
        rng = np.random.default_rng(0) if rng is None else rng
        self.weight = Parameter((0.02 * rng.standard_normal((max_len, d_model))).astype(np.float32))

    def forward(self, positions) -> Tensor:
        pos = np.asarray(positions.data if isinstance(positions, Tensor) else positions)
        if not np.issubdtype(pos.dtype, np.integer):
            raise TypeError(f"positions must be integers, got dtype {pos.dtype}")
        if pos.size and pos.max() >= self.max_len:
            raise ValueError(
                f"position {int(pos.max())} is out of range for a learned table with max_len="
                f"{self.max_len} (valid positions 0..{self.max_len - 1}); learned embeddings "
                "cannot extrapolate: use a longer table or a relative/rotary encoding")
        if pos.size and pos.min() < 0:
            raise ValueError(f"positions must be >= 0, got {int(pos.min())}")
        weight = self.weight
        out = weight.data[pos]                                       # (*S, d): gather rows

        def backward(g: np.ndarray):
            d_weight = np.zeros_like(weight.data)
            np.add.at(d_weight, pos.ravel(), g.reshape(-1, self.d_model))  # scatter-add rows
            return (d_weight,)

        return custom_op(out, (weight,), backward, name="learned_positional_embedding")
