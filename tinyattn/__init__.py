"""tinyattn: every attention mechanism of modern Transformers, from scratch in NumPy.

Layer 1 (the tensor core) is imported eagerly; every other subpackage loads on first use,
so ``import tinyattn`` stays fast and never imports numba or a GPU library::

    import tinyattn as ta
    from tinyattn import functional as F
    x = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    ta.flash.flash_attention(q, k, v)      # imports tinyattn.flash on first use
"""
from __future__ import annotations

import importlib
from typing import Any

from .tensor import Tensor
from .autograd import gradcheck, no_grad

__version__ = "0.1.0"

_SUBMODULES = (
    "tensor", "autograd", "functional", "nn", "optim",                                   # layers 1-2
    "positional", "attention", "flash", "cache", "sparse", "linear", "distributed",     # layer 3
    "models", "data", "train", "experiments",                                           # layer 4
    "viz", "gpu",                                                                       # layer 5
    "grading",                                                                          # layer 6
)

__all__ = ["Tensor", "no_grad", "gradcheck", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tinyattn' has no attribute {name!r}")
