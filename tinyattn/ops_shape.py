"""Shape ops of :class:`tinyattn.Tensor`: reshape, transpose, indexing (gather), concatenate, stack,
split, where, astype. Their backward moves gradients back to where the values came from:
a reshape is undone by a reshape, a gather by a scatter-add (``np.add.at``: repeated indices add).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .autograd import IndexedGrad
from .tensor import Tensor


def reshape(a: Tensor, *shape: Any) -> Tensor:
    """a: (any) -> (shape); ``shape`` as ints or one tuple, one entry may be -1."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    A = a.data
    try:
        out = A.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {A.shape} "
                         f"({A.size} elements) into shape {shape}") from None
    return Tensor._make(out, (a,), lambda g: (g.reshape(A.shape),), "reshape")


def transpose(a: Tensor, *axes: Any) -> Tensor:
    """Permute axes (NumPy semantics: no axes reverses them all)."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    A = a.data
    perm = tuple(range(A.ndim))[::-1] if not axes else tuple(int(x) % max(A.ndim, 1) for x in axes)
    if sorted(perm) != list(range(A.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {A.ndim} axes "
                         f"of a tensor of shape {A.shape}")
    inverse = tuple(np.argsort(perm))
    return Tensor._make(A.transpose(perm), (a,), lambda g: (g.transpose(inverse),), "transpose")


def swapaxes(a: Tensor, axis1: int, axis2: int) -> Tensor:
    return Tensor._make(np.swapaxes(a.data, axis1, axis2), (a,),
                        lambda g: (np.swapaxes(g, axis1, axis2),), "swapaxes")


def astype(a: Tensor, dtype: Any) -> Tensor:
    src = a.data.dtype
    return Tensor._make(a.data.astype(dtype), (a,), lambda g: (g.astype(src),), "astype")


def _check_index(k: Any, shape: tuple) -> tuple[Any, bool]:
    """Validate one index entry; returns (entry, is_integer_array)."""
    if isinstance(k, Tensor):
        k = k.data
    if isinstance(k, list):
        k = np.asarray(k)
    if isinstance(k, np.ndarray):
        if k.dtype == np.bool_:
            return k, False
        if not np.issubdtype(k.dtype, np.integer):
            raise TypeError(f"index arrays must have an integer or bool dtype, got dtype "
                            f"{k.dtype} (index shape {k.shape}) for a tensor of shape {shape}")
        return k, True
    if isinstance(k, (float, np.floating)):
        raise TypeError(f"index must be an int, slice or integer array, got float {k!r} "
                        f"for a tensor of shape {shape}")
    return k, False


def getitem(a: Tensor, key: Any) -> Tensor:
    """Basic (slices, ints, None, ...) and advanced (integer / bool arrays) indexing.

    Integer arrays gather: ``E[tokens]`` with E: (V, d), tokens: (B, L) -> (B, L, d); its
    backward scatter-adds into a (V, d) gradient (``np.add.at``, repeated tokens add up).
    """
    A = a.data
    if isinstance(key, tuple):
        checked = [_check_index(k, A.shape) for k in key]
        key = tuple(k for k, _ in checked)
        gather = any(f for _, f in checked)
    else:
        key, gather = _check_index(key, A.shape)
    try:
        out = A[key]
    except IndexError as exc:
        raise IndexError(f"{exc} (tensor of shape {A.shape})") from None
    shape = A.shape
    return Tensor._make(np.asarray(out), (a,),
                        lambda g: (IndexedGrad(key, g, shape, accumulate=gather),), "getitem")


def as_tensor(x: Any, dtype: Any = None) -> Tensor:
    """A Tensor from a Tensor (returned as is when the dtype matches), array, list or scalar."""
    if isinstance(x, Tensor):
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    return Tensor(np.asarray(x, dtype=dtype))


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis: shapes equal except along ``axis``."""
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("concatenate: need at least one tensor")
    try:
        out = np.concatenate([t.data for t in ts], axis=axis)
    except ValueError:
        raise ValueError(f"concatenate along axis {axis}: shapes {[t.shape for t in ts]} must "
                         "agree on every other axis") from None
    bounds = np.cumsum([t.data.shape[axis] for t in ts])[:-1]
    return Tensor._make(out, tuple(ts), lambda g: tuple(np.split(g, bounds, axis=axis)),
                        "concatenate")


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join equally shaped tensors along a new axis."""
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("stack: need at least one tensor")
    if len({t.shape for t in ts}) != 1:
        raise ValueError(f"stack: all shapes must be equal, got {[t.shape for t in ts]}")
    out = np.stack([t.data for t in ts], axis=axis)
    ax = axis % out.ndim

    def backward(g: np.ndarray) -> tuple:
        gm = np.moveaxis(g, ax, 0)
        return tuple(gm[i] for i in range(len(ts)))
    return Tensor._make(out, tuple(ts), backward, "stack")


def split(t: Any, sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """NumPy semantics: an int splits into that many equal parts, a list gives split indices.

    t: (..., n, ...) -> list of slices along ``axis``; gradients of the parts land in one buffer.
    """
    t = as_tensor(t)
    n = t.shape[axis]
    if isinstance(sections, (int, np.integer)):
        if sections <= 0 or n % sections:
            raise ValueError(f"split: axis {axis} of shape {t.shape} (size {n}) cannot be split "
                             f"into {sections} equal sections")
        bounds = [n // sections * i for i in range(sections + 1)]
    else:
        bounds = [0, *[min(max(int(i), 0), n) for i in sections], n]
    ax = axis % t.ndim
    lead = (slice(None),) * ax
    return [t[lead + (slice(s, e),)] for s, e in zip(bounds[:-1], bounds[1:])]


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Elementwise ``a if cond else b`` (all three broadcast); cond: bool array or Tensor."""
    c = cond.data if isinstance(cond, Tensor) else np.asarray(cond)
    if c.dtype != np.bool_:
        raise TypeError(f"where: cond must be a bool array, got dtype {c.dtype} (shape {c.shape})")
    ta, tb = as_tensor(a), as_tensor(b)
    A, B = ta.data, tb.data
    if not isinstance(a, Tensor) and A.ndim == 0:
        A = A.item()                                  # Python scalar: keeps b's dtype
    if not isinstance(b, Tensor) and B.ndim == 0:
        B = B.item()
    from .ops_math import unbroadcast
    out = np.where(c, A, B)

    def backward(g: np.ndarray) -> tuple:
        ga = unbroadcast(np.where(c, g, 0), ta.shape) if ta.requires_grad else None
        gb = unbroadcast(np.where(c, 0, g), tb.shape) if tb.requires_grad else None
        return ga, gb
    return Tensor._make(out, (ta, tb), backward, "where")
