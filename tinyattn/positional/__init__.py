"""Position encodings (chapter 03): how attention, which is blind to order, learns where tokens are.

Absolute, added to the token embeddings:
    ``sinusoidal`` / ``sinusoidal_at`` (fixed), ``LearnedPositionalEmbedding`` (trainable table),
    ``cape_positions`` / ``cape_encoding`` (sinusoidal with training-time position augmentation).
Relative, inside attention:
    ``rope_inv_freq`` + ``apply_rope`` (rotate q and k), ``alibi_slopes`` + ``alibi_bias``
    (linear bias on scaled logits), ``t5_relative_bucket`` + ``T5RelativeBias`` (learned bucketed
    bias on unscaled logits).
None: ``NOPE`` (the causal mask alone carries order).
Length extrapolation (chapter 05): ``scaled_rope`` (PI, NTK, dynamic NTK, YaRN, Llama 3).
"""
from __future__ import annotations

from .alibi import alibi_bias, alibi_slopes
from .cape import NOPE, cape_encoding, cape_positions
from .learned import LearnedPositionalEmbedding
from .rope import (LAYOUTS, apply_rope, half_permutation, rope_angles, rope_decay_bound,
                   rope_inv_freq, rope_matrix)
from .scaling import scaled_rope, yarn_ramp_range
from .sinusoidal import shift_matrix, sinusoidal, sinusoidal_at, sinusoidal_frequencies, wavelengths
from .t5 import T5RelativeBias, t5_relative_bucket

__all__ = [
    "sinusoidal", "sinusoidal_at", "sinusoidal_frequencies", "wavelengths", "shift_matrix",
    "LearnedPositionalEmbedding", "cape_positions", "cape_encoding", "NOPE",
    "rope_inv_freq", "apply_rope", "rope_angles", "rope_matrix", "half_permutation", "LAYOUTS",
    "rope_decay_bound",
    "alibi_slopes", "alibi_bias", "t5_relative_bucket", "T5RelativeBias",
    "scaled_rope", "yarn_ramp_range",
]

