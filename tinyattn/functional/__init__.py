"""Layer 2: differentiable functions built on the tensor core.

Every function here is ONE graph node with a hand-derived backward (``tinyattn.autograd.custom_op``):
fewer nodes, fewer temporaries, and the derivation sits in a comment beside the code.
Inputs may be Tensors or ndarrays (ndarrays are constants); outputs are Tensors.
"""
from __future__ import annotations

from .activations import gelu, relu, sigmoid, silu, softmax, log_softmax, tanh
from .layers import dropout, embedding, linear, masked_fill
from .losses import cross_entropy
from .normalization import layer_norm, rms_norm

__all__ = ["softmax", "log_softmax", "cross_entropy", "layer_norm", "rms_norm", "gelu", "silu",
           "relu", "sigmoid", "tanh", "dropout", "masked_fill", "linear", "embedding"]

try:  # written by the chapter 01-02 engineer; functional must import without it
    from .attention import register_sdpa_backend, scaled_dot_product_attention  # noqa: F401
    __all__ += ["scaled_dot_product_attention", "register_sdpa_backend"]
except ImportError:
    pass
