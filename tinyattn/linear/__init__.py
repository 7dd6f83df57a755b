"""Linear attention (chapter 11): kernel feature maps, the RNN view, Performer, Linformer, DeltaNet.

- :func:`linear_attention` (elu+1 by default; causal form by exact chunked prefix sums) and
  :func:`linear_attention_recurrent` (one token per step, O(1) state).
- :func:`performer_attention` with FAVOR+ positive random features (:func:`favor_features`,
  :func:`gaussian_features_matrix`, orthogonal or i.i.d.); :func:`source_text_features` is the
  source text's biased map, kept to measure its error.
- :func:`linformer_attention` (sequence projections E, F), :func:`delta_rule_attention` (DeltaNet,
  gated).
- ``backend="linear"`` for ``F.scaled_dot_product_attention`` / ``TransformerLM`` (registered on import).
"""
from __future__ import annotations

from .backend import linear_sdpa, register as _register
from .deltanet import delta_rule_attention
from .feature_maps import (FEATURE_MAPS, elu1, favor_features, gaussian_features_matrix, get_feature_map,
                           relu, softmax_kernel, source_text_features)
from .linear_attention import linear_attention, linear_attention_from_features, linear_attention_recurrent
from .linformer import linformer_attention, linformer_projections
from .performer import favor_kernel_estimate, performer_attention, performer_features

__all__ = [
    "linear_attention", "linear_attention_recurrent", "linear_attention_from_features",
    "performer_attention", "performer_features", "favor_kernel_estimate", "favor_features",
    "gaussian_features_matrix", "source_text_features", "softmax_kernel", "elu1", "relu",
    "get_feature_map", "FEATURE_MAPS", "linformer_attention", "linformer_projections",
    "delta_rule_attention", "linear_sdpa",
]

_register()
