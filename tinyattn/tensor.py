"""The Tensor: an ``np.ndarray`` plus the record of how it was computed (reverse-mode autograd).

``Tensor(data, requires_grad=True)`` is a leaf; every op on Tensors returns a new Tensor that
remembers its parents and how to send a gradient back to them (see :mod:`tinyattn.autograd`).
Operators follow NumPy (broadcasting, batched ``@``, indexing); gradients keep the data's dtype.

Module functions: :func:`as_tensor`, :func:`concatenate`, :func:`stack`, :func:`split`,
:func:`where` (defined in :mod:`tinyattn.ops_shape`, re-exported here).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import autograd as _ag

Axis = int | tuple[int, ...] | None


class Tensor:
    """An n-dimensional array with an optional gradient.

    data: the values (any shape, any dtype; gradients need a floating dtype).
    grad: ``dL/d(data)`` after ``backward()`` (same shape and dtype), else None.
    requires_grad: whether gradients flow to (and are stored on) this tensor.
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "_op", "_retain",
                 "name", "__weakref__")
    __array_ufunc__ = None          # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None,
                 name: str | None = None):
        arr = data.data if isinstance(data, Tensor) else data
        arr = np.asarray(arr, dtype=dtype)
        if requires_grad and not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require grad, got dtype {arr.dtype} "
                            f"(shape {arr.shape})")
        self.data = arr
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._parents: tuple = ()
        self._backward: Callable | None = None
        self._op = "leaf"
        self._retain = False
        self.name = name

    @classmethod
    def _make(cls, data: Any, parents: tuple, backward: Callable, op: str) -> "Tensor":
        """Build an op's output; the graph is recorded only if grad mode is on and a parent needs it."""
        t = Tensor.__new__(Tensor)
        t.data = data if type(data) is np.ndarray else np.asarray(data)
        t.grad = None
        t._op, t._retain, t.name = op, False, None
        if _ag._GRAD_ENABLED and any(p.requires_grad for p in parents):
            t.requires_grad, t._parents, t._backward = True, parents, backward
        else:
            t.requires_grad, t._parents, t._backward = False, (), None
        return t

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def T(self) -> "Tensor":
        return _sh.transpose(self)

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = f", requires_grad=True, op={self._op!r}" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}{grad})"

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __format__(self, spec: str) -> str:
        """f"{loss:.4f}" formats a one-element tensor like the number it holds."""
        return format(self.data.item(), spec) if self.data.size == 1 else format(str(self), spec)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    # ------------------------------------------------------------------ autograd
    def backward(self, grad: Any = None) -> None:
        """Accumulate ``d self / d leaf`` (times ``grad``) into every leaf's ``.grad``.

        grad: ``dL/d(self)``, shaped like self; may be omitted only for a one-element tensor.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad "
                               f"(shape {self.shape}); create leaves with requires_grad=True")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() without a gradient needs a scalar, but the tensor "
                                 f"has shape {self.shape}; pass grad= of shape {self.shape}")
            g = np.ones_like(self.data)
        else:
            g = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if g.shape != self.shape:
                raise ValueError(f"backward(grad): grad has shape {g.shape}, expected {self.shape}")
        _ag.run_backward(self, g)

    def retain_grad(self) -> "Tensor":
        """Also store ``.grad`` on this non-leaf tensor during backward (for teaching/inspection)."""
        self._retain = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def detach(self) -> "Tensor":
        """Same data (shared), no history, no grad."""
        return Tensor(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> Any:
        return self.data.item()

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, o: Any) -> "Tensor": return _m.add(self, o)
    def __radd__(self, o: Any) -> "Tensor": return _m.add(self, o)
    def __sub__(self, o: Any) -> "Tensor": return _m.sub(self, o)
    def __rsub__(self, o: Any) -> "Tensor": return _m.rsub(self, o)
    def __mul__(self, o: Any) -> "Tensor": return _m.mul(self, o)
    def __rmul__(self, o: Any) -> "Tensor": return _m.mul(self, o)
    def __truediv__(self, o: Any) -> "Tensor": return _m.div(self, o)
    def __rtruediv__(self, o: Any) -> "Tensor": return _m.rdiv(self, o)
    def __pow__(self, o: Any) -> "Tensor": return _m.power(self, o)
    def __rpow__(self, o: Any) -> "Tensor": return _m.rpower(self, o)
    def __neg__(self) -> "Tensor": return _m.neg(self)
    def __matmul__(self, o: Any) -> "Tensor": return _m.matmul(self, o)
    def __rmatmul__(self, o: Any) -> "Tensor": return _m.matmul(Tensor(o), self)
    def __getitem__(self, key: Any) -> "Tensor": return _sh.getitem(self, key)

    # comparisons give constant bool tensors (no gradient); == stays identity-based
    def __lt__(self, o: Any) -> "Tensor": return Tensor(self.data < _raw(o))
    def __le__(self, o: Any) -> "Tensor": return Tensor(self.data <= _raw(o))
    def __gt__(self, o: Any) -> "Tensor": return Tensor(self.data > _raw(o))
    def __ge__(self, o: Any) -> "Tensor": return Tensor(self.data >= _raw(o))

    # ------------------------------------------------------------------ elementwise / reductions
    def exp(self) -> "Tensor": return _m.exp(self)
    def log(self) -> "Tensor": return _m.log(self)
    def tanh(self) -> "Tensor": return _m.tanh(self)
    def sqrt(self) -> "Tensor": return _m.sqrt(self)
    def relu(self) -> "Tensor": return _m.relu(self)
    def sigmoid(self) -> "Tensor": return _m.sigmoid(self)
    def abs(self) -> "Tensor": return _m.absolute(self)

    def sum(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        return _m.sum_(self, axis, keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        return _m.mean(self, axis, keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        return _m.max_(self, axis, keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        return -_m.max_(-self, axis, keepdims)

    def argmax(self, axis: int | None = None) -> np.ndarray:
        return self.data.argmax(axis=axis)

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape: Any) -> "Tensor": return _sh.reshape(self, *shape)
    def transpose(self, *axes: Any) -> "Tensor": return _sh.transpose(self, *axes)
    def swapaxes(self, a: int, b: int) -> "Tensor": return _sh.swapaxes(self, a, b)
    def astype(self, dtype: Any) -> "Tensor": return _sh.astype(self, dtype)


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


_ag._register_tensor_class(Tensor)

# the op modules import Tensor from here, so they are imported after the class exists
from . import ops_math as _m  # noqa: E402
from . import ops_shape as _sh  # noqa: E402
from .ops_shape import as_tensor, concatenate, split, stack, where  # noqa: E402,F401

__all__ = ["Tensor", "as_tensor", "concatenate", "stack", "split", "where"]

