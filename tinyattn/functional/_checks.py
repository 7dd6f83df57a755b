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
