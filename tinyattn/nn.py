"""Modules: objects that own Parameters and compose functions (layer 2, on top of functional).

A :class:`Module` finds its parameters by walking its attributes (Parameters, sub-Modules and
lists/tuples/dicts of them) in definition order, so names look like ``blocks.0.attn.wq.weight``.
``state_dict()`` maps those names to arrays; ``save(path)`` / ``load(path)`` use ``.npz``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator

import numpy as np

from . import functional as F
from .tensor import Tensor

__all__ = ["Parameter", "Module", "Linear", "Embedding", "LayerNorm", "RMSNorm", "Dropout",
           "Sequential", "ModuleList"]


class Parameter(Tensor):
    """A leaf Tensor that a Module trains (``requires_grad=True``)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)


def _default_rng(rng: np.random.Generator | None) -> np.random.Generator:
    # seeded default keeps results reproducible; pass rng= for independent initialisations
    return rng if rng is not None else np.random.default_rng(0)


class Module:
    """Base class. Subclasses set attributes in ``__init__`` and define ``forward``."""

    training: bool = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def _children(self) -> Iterator[tuple[str, Any]]:
        for name, value in vars(self).items():
            if isinstance(value, (Parameter, Module)):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    if isinstance(v, (Parameter, Module)):
                        yield f"{name}.{i}", v
            elif isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(v, (Parameter, Module)):
                        yield f"{name}.{k}", v

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs, each Parameter once (shared weights appear once)."""
        seen: set[int] = set()
        out: list[tuple[str, Parameter]] = []

        def walk(pfx: str, mod: Module) -> None:
            for name, child in mod._children():
                full = f"{pfx}{name}"
                if isinstance(child, Parameter):
                    if id(child) not in seen:
                        seen.add(id(child))
                        out.append((full, child))
                else:
                    walk(full + ".", child)
        walk(prefix, self)
        return iter(out)

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator["Module"]:
        yield self
        for _, child in self._children():
            if isinstance(child, Module):
                yield from child.modules()

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Name -> a copy of the parameter's array."""
        return OrderedDict((n, p.data.copy()) for n, p in self.named_parameters())

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays into the parameters (in place, keeping each parameter's dtype)."""
        params = dict(self.named_parameters())
        if strict:
            missing, extra = params.keys() - state.keys(), state.keys() - params.keys()
            if missing or extra:
                raise KeyError(f"load_state_dict: missing keys {sorted(missing)}, "
                               f"unexpected keys {sorted(extra)}")
        for name, value in state.items():
            if name not in params:
                continue
            value = np.asarray(value)
            p = params[name]
            if value.shape != p.shape:
                raise ValueError(f"load_state_dict: {name} has shape {value.shape} in the state, "
                                 f"expected {p.shape}")
            p.data[...] = value

    def save(self, path: str) -> None:
        """Write the state dict to ``path`` (.npz)."""
        np.savez(path, **self.state_dict())

    def load(self, path: str) -> "Module":
        """Read a state dict written by :meth:`save`; a file that is not one raises ``ValueError``."""
        import zipfile
        import zlib
        bad = f"{path} is not a saved tinyattn module (.npz of parameters), or it is truncated or corrupt"
        try:
            f = np.load(path, allow_pickle=False)
        except ValueError:                  # no .npy/.npz magic bytes: NumPy would suggest allow_pickle
            raise ValueError(f"{bad} (not an .npz archive)") from None
        except (EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{bad} ({type(exc).__name__}: {exc})") from None
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError(f"{bad} (a single .npy array, not an .npz archive)")
        try:
            with f:
                state = {k: f[k] for k in f.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{bad} ({type(exc).__name__}: {exc})") from None
        self.load_state_dict(state)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_parameters()} parameters)"


class Linear(Module):
    """y = x @ weight + bias. x: (..., d_in) -> (..., d_out); weight: (d_in, d_out).

    Init: U(-1/sqrt(d_in), 1/sqrt(d_in)) for weight and bias (as torch.nn.Linear).
    """

    def __init__(self, d_in: int, d_out: int, bias: bool = True,
                 rng: np.random.Generator | None = None, dtype: Any = np.float32):
        rng = _default_rng(rng)
        bound = 1.0 / np.sqrt(d_in)
        self.d_in, self.d_out = d_in, d_out
        self.weight = Parameter(rng.uniform(-bound, bound, (d_in, d_out)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, d_out).astype(dtype)) if bias else None

    def forward(self, x: Any) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class Embedding(Module):
    """Lookup table: tokens int (...) -> (..., d); weight: (n, d) ~ N(0, std^2)."""

    def __init__(self, n: int, d: int, rng: np.random.Generator | None = None,
                 std: float = 1.0, dtype: Any = np.float32):
        rng = _default_rng(rng)
        self.weight = Parameter((std * rng.standard_normal((n, d))).astype(dtype))

    def forward(self, tokens: Any) -> Tensor:
        return F.embedding(self.weight, tokens)


class LayerNorm(Module):
    """Normalise the last axis to zero mean, unit variance, then scale (ones) and shift (zeros)."""

    def __init__(self, d: int, eps: float = 1e-5, bias: bool = True, dtype: Any = np.float32):
        self.eps = eps
        self.weight = Parameter(np.ones(d, dtype=dtype))
        self.bias = Parameter(np.zeros(d, dtype=dtype)) if bias else None

    def forward(self, x: Any) -> Tensor:
        return F.layer_norm(x, self.weight, self.bias, self.eps)


class RMSNorm(Module):
    """x / rms(x) * weight over the last axis (no mean subtraction, no bias)."""

    def __init__(self, d: int, eps: float = 1e-6, dtype: Any = np.float32):
        self.eps = eps
        self.weight = Parameter(np.ones(d, dtype=dtype))

    def forward(self, x: Any) -> Tensor:
        return F.rms_norm(x, self.weight, self.eps)


class Dropout(Module):
    """Inverted dropout while training, identity in eval mode. Owns its rng."""

    def __init__(self, p: float, rng: np.random.Generator | None = None):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.rng = p, _default_rng(rng)

    def forward(self, x: Any) -> Tensor:
        return F.dropout(x, self.p, self.rng, self.training)


class Sequential(Module):
    """Apply modules (or callables) in order."""

    def __init__(self, *layers: Any):
        self.layers = list(layers)

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def _children(self) -> Iterator[tuple[str, Any]]:
        return ((str(i), m) for i, m in enumerate(self.layers) if isinstance(m, (Module, Parameter)))

    def __getitem__(self, i: int) -> Any:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)


class ModuleList(Module):
    """A list of modules whose parameters are registered (names ``<attr>.0.weight`` ...)."""

    def __init__(self, modules: Iterable[Module] = ()):
        self.items = list(modules)

    def _children(self) -> Iterator[tuple[str, Any]]:
        return ((str(i), m) for i, m in enumerate(self.items))

    def append(self, m: Module) -> None:
        self.items.append(m)

    def __getitem__(self, i: int) -> Module:
        return self.items[i]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.items)
