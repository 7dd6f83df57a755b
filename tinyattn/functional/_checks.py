"""Input checks shared by the functional ops: dtype promotion and positive-number arguments.

Integer and bool inputs are computed in float32 (the library's default float dtype): a softmax of
int logits is a probability, never a truncated integer. float16 stays float16 at the output, but the
ops that square or exponentiate compute it in float32 (see each op).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..tensor import Tensor, as_tensor

DEFAULT_FLOAT = np.float32


def float_input(x: Any, fn: str, arg: str = "x") -> Tensor:
    """``x`` as a floating Tensor: floats unchanged (graph kept), int/bool cast to float32 (a
    constant: integer tensors cannot require grad). Other dtypes raise TypeError naming ``arg``."""
    t = as_tensor(x)
    dt = t.data.dtype
    if np.issubdtype(dt, np.floating):
        return t
    if np.issubdtype(dt, np.integer) or dt == np.bool_:
        return Tensor(t.data.astype(DEFAULT_FLOAT))
    raise TypeError(f"{fn}: {arg} must be a real floating, integer or bool array, got dtype {dt} "
                    f"(shape {t.data.shape})")


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float16 -> float32 (squares overflow float16 from |x| >= 256), others unchanged."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def positive(fn: str, name: str, value: Any) -> float:
    """``value`` as a float > 0 (finite), else ValueError naming it (eps = 0 divides by zero)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: {name} must be a number > 0, got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{fn}: {name} must be a finite number > 0, got {value!r}")
    return v


def reject_posinf(fn: str, m: np.ndarray) -> None:
    """Raise if a row max ``m`` is +inf: softmax of +inf logits is inf/inf (NaN), not a probability."""
    if np.isposinf(m).any():
        raise ValueError(f"{fn}: input contains +inf ({int(np.isposinf(m).sum())} row(s)); "
                         "softmax is undefined there (inf/inf). Clip the logits, or look for an "
                         "overflow upstream (e.g. a diverging run: lower the learning rate)")


def floating_arrays(layout: str, min_ndim: int, **arrays: Any) -> list[np.ndarray]:
    """Each keyword argument as an ``np.ndarray``, in order; requires a floating dtype (else
    TypeError) and at least ``min_ndim`` axes (else ValueError quoting ``layout``, e.g. ``"(..., L, d)"``),
    both naming the argument. Used by the NumPy mechanisms that take plain q, k, v arrays."""
    out = []
    for name, x in arrays.items():
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{name} must be a floating array, got dtype {x.dtype}")
        if x.ndim < min_ndim:
            raise ValueError(f"{name} must have shape {layout}, got {x.shape}")
        out.append(x)
    return out


def same_batch_kv(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    """Require ``k: (..., Lk, d)`` with q's leading axes and last dim, and ``v: (..., Lk, dv)``
    with k's leading axes and length; ValueError with the expected and received shapes."""
    if k.shape[-1] != q.shape[-1] or k.shape[:-2] != q.shape[:-2]:
        raise ValueError(f"k: expected (..., Lk, {q.shape[-1]}) with leading axes {q.shape[:-2]}, got {k.shape}")
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(f"v: expected {k.shape[:-1] + ('dv',)} (from k), got {v.shape}")
