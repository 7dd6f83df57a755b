"""Assertions for graded tests whose failure messages tell the student what differed.

Every message starts with what was checked and the test's seed, then says the one thing to look at:
``None`` returned, wrong type, wrong shape, or how many elements differ and the worst one (its index,
expected value, value received). Example::

    attention(q, k, v, scale=0.37) [B=2, H=3, Lq=4, Lk=6, d=5, dv=3] (seed 1101): 7 of 72 elements differ
    (allowed |got - want| <= 1e-10 + 1e-07*|want|); worst at index (1, 2, 0, 1): expected 0.4127, got 0.3920

Used by ``tests/graded/test_ch*.py`` (imported as ``from tinyattn.grading.check import assert_close``).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _where(name: str, seed: int | None) -> str:
    return f"{name} (seed {seed})" if seed is not None else name


def as_array(name: str, got: Any, *, seed: int | None = None) -> np.ndarray:
    """``np.asarray(got)``, or AssertionError when got is None or not numeric (a forgotten ``return``)."""
    if got is None:
        raise AssertionError(f"{_where(name, seed)}: your function returned None (a missing `return`?)")
    try:
        arr = np.asarray(got)
    except Exception as exc:                     # noqa: BLE001 - any failure is the student's return value
        raise AssertionError(f"{_where(name, seed)}: returned {type(got).__name__}, "
                             f"which is not an array ({exc})") from None
    if arr.dtype == object:
        raise AssertionError(f"{_where(name, seed)}: returned {type(got).__name__} that is not a numeric "
                             f"array (dtype object)")
    return arr


def assert_shape(name: str, got: Any, shape: tuple, *, seed: int | None = None) -> np.ndarray:
    """Check ``got`` has ``shape``; return it as an array."""
    arr = as_array(name, got, seed=seed)
    if tuple(arr.shape) != tuple(shape):
        raise AssertionError(f"{_where(name, seed)}: shape {tuple(arr.shape)}, expected {tuple(shape)}")
    return arr


def _fmt(x: Any) -> str:
    x = x.item() if hasattr(x, "item") else x
    return f"{x:.10g}" if isinstance(x, float) else repr(x)


def assert_close(name: str, got: Any, want: Any, *, seed: int | None = None, atol: float = 0.0,
                 rtol: float = 1e-7) -> None:
    """Assert ``|got - want| <= atol + rtol * |want|`` elementwise, shapes equal (no broadcasting).

    NaN is never close to anything; +-inf only equals the same infinity. On failure the message
    names ``name`` and ``seed``, the number of differing elements and the worst one (largest excess
    over the allowed error), with its index, expected and received values.
    """
    want = np.asarray(want)
    arr = assert_shape(name, got, want.shape, seed=seed)
    if arr.dtype.kind not in "biufc" or want.dtype.kind not in "biufc":
        raise AssertionError(f"{_where(name, seed)}: dtype {arr.dtype}, expected numbers like {want.dtype}")
    g, w = arr.astype(np.complex128 if "c" in (arr.dtype.kind, want.dtype.kind) else np.float64), \
        want.astype(np.complex128 if "c" in (arr.dtype.kind, want.dtype.kind) else np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        same_inf = np.isinf(g) & np.isinf(w) & (g == w)
        err = np.where(same_inf, 0.0, np.abs(g - w))
        excess = err - (atol + rtol * np.where(np.isinf(w), 0.0, np.abs(w)))
    excess = np.where(np.isnan(excess), np.inf, excess)
    bad = excess > 0
    if not bad.any():
        return
    idx = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.ndim else ()
    if excess.ndim == 0:
        raise AssertionError(f"{_where(name, seed)}: expected {_fmt(w[()])}, got {_fmt(g[()])} "
                             f"(allowed |got - want| <= {atol:g} + {rtol:g}*|want|)")
    raise AssertionError(
        f"{_where(name, seed)}: {int(bad.sum())} of {bad.size} element(s) differ "
        f"(allowed |got - want| <= {atol:g} + {rtol:g}*|want|); worst at index {tuple(int(i) for i in idx)}: "
        f"expected {_fmt(w[idx])}, got {_fmt(g[idx])}")


def assert_equal(name: str, got: Any, want: Any, *, seed: int | None = None) -> None:
    """Exact equality (shape, then every element), with the first differing index in the message."""
    want = np.asarray(want)
    arr = assert_shape(name, got, want.shape, seed=seed)
    diff = arr != want
    if np.any(diff):
        idx = tuple(int(i) for i in np.argwhere(diff)[0]) if diff.ndim else ()
        raise AssertionError(f"{_where(name, seed)}: {int(np.sum(diff))} of {diff.size} element(s) differ; "
                             f"first at index {idx}: expected {_fmt(want[idx])}, got {_fmt(arr[idx])}")


def check(condition: Any, name: str, message: str, *, seed: int | None = None) -> None:
    """Assert a property, e.g. ``check(x_unchanged, "numerical_gradient", "modified its input x")``."""
    if not bool(condition):
        raise AssertionError(f"{_where(name, seed)}: {message}")
