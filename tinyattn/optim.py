"""Optimizers (SGD with momentum, AdamW), a warmup + cosine learning-rate schedule, gradient clipping.

Parameters are Tensors with ``.grad`` set by ``backward()``; optimizers update ``.data`` in place.
``params`` may be a list of Tensors or of groups ``{"params": [...], "weight_decay": 0.0, ...}``
whose keys override the defaults. ``opt.lr = x`` sets the learning rate of every group.
Hyper-parameters are checked when the optimizer is built and before every step (a schedule may
write ``group["lr"]`` directly): lr >= 0, weight_decay >= 0, eps > 0, momentum and betas in
[0, 1) (beta1 = 1 divides by zero in Adam's bias correction 1 - beta1^t), all finite.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from .tensor import Tensor

__all__ = ["Optimizer", "SGD", "AdamW", "warmup_cosine", "clip_grad_norm"]


def _real(opt: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{opt}: {name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{opt}: {name} must be finite, got {value!r}")
    return float(value)


def _at_least_zero(opt: str, name: str, value: Any) -> None:
    if _real(opt, name, value) < 0:
        raise ValueError(f"{opt}: {name} must be >= 0, got {value!r}")


def _unit_interval(opt: str, name: str, value: Any) -> None:
    if not 0.0 <= _real(opt, name, value) < 1.0:
        raise ValueError(f"{opt}: {name} must be in [0, 1), got {value!r}")


class Optimizer:
    """Holds parameter groups; subclasses implement ``_update(p, group, state)`` and may extend
    ``_check_group(group)`` (called at construction and before every step)."""

    def __init__(self, params: Iterable[Any], defaults: dict):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        seen: set[int] = set()
        name = type(self).__name__
        for g in groups:
            if not isinstance(g, dict) or "params" not in g:
                raise TypeError(f"{name}: a parameter group must be a dict with 'params', got {g!r:.80}")
            unknown = set(g) - set(defaults) - {"params"}
            if unknown:
                raise ValueError(f"{name}: unknown hyper-parameter(s) {sorted(unknown)} in a group; "
                                 f"{name} takes {sorted(defaults)}")
            group = {**defaults, **g, "params": list(g["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor):
                    raise TypeError(f"{name}: parameters must be Tensors, got {type(p)}")
                if id(p) in seen:
                    raise ValueError(f"{name}: a parameter of shape {p.shape} appears twice "
                                     "(it would be updated twice per step)")
                seen.add(id(p))
            self._check_group(group)
            self.param_groups.append(group)
        self.state: dict[int, dict] = {}

    def _check_group(self, group: dict) -> None:
        _at_least_zero(type(self).__name__, "lr", group["lr"])
        _at_least_zero(type(self).__name__, "weight_decay", group["weight_decay"])

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        _at_least_zero(type(self).__name__, "lr", value)
        for g in self.param_groups:
            g["lr"] = value

    def zero_grad(self) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def step(self) -> None:
        for g in self.param_groups:
            self._check_group(g)
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    self._update(p, g, self.state.setdefault(id(p), {}))

    def _update(self, p: Tensor, group: dict, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """v <- momentum * v + (g + weight_decay * p);  p <- p - lr * v   (torch.optim.SGD convention)."""

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        _unit_interval("SGD", "momentum", group["momentum"])

    def _update(self, p: Tensor, group: dict, state: dict) -> None:
        g = p.grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        if group["momentum"]:
            v = state.get("v")
            if v is None:
                v = state["v"] = np.array(g, dtype=p.data.dtype)     # first step: v = g
            else:
                v *= group["momentum"]
                v += g
            g = v
        p.data -= (group["lr"] * g).astype(p.data.dtype, copy=False)


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), torch.optim.AdamW convention:

    p <- p * (1 - lr * wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    """

    def __init__(self, params: Iterable[Any], lr: float = 3e-4,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay})

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"AdamW: betas must be a pair (beta1, beta2), got {betas!r}")
        _unit_interval("AdamW", "betas[0]", betas[0])
        _unit_interval("AdamW", "betas[1]", betas[1])
        if _real("AdamW", "eps", group["eps"]) <= 0:
            raise ValueError(f"AdamW: eps must be > 0, got {group['eps']!r}")

    def _update(self, p: Tensor, group: dict, state: dict) -> None:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            # moments in float32 at least: in float16, g^2 underflows to 0 (for |g| < 2.4e-4) and
            # eps = 1e-8 rounds to 0, so m / (sqrt(v) + eps) = m / 0 sent weights to -inf
            ct = np.result_type(p.data.dtype, np.float32)
            state["t"] = 0
            state["m"] = np.zeros(p.data.shape, ct)
            state["v"] = np.zeros(p.data.shape, ct)
        state["t"] += 1
        t, m, v = state["t"], state["m"], state["v"]
        g = p.grad.astype(m.dtype, copy=False)
        if wd:
            p.data *= p.data.dtype.type(1.0 - lr * wd)               # decoupled decay
        m *= b1
        m += (1 - b1) * g                                             # first moment
        v *= b2
        v += (1 - b2) * (g * g)                                       # second moment
        step = lr / (1 - b1 ** t)                                     # bias corrections
        denom = np.sqrt(v / (1 - b2 ** t))
        denom += eps
        p.data -= (step * m / denom).astype(p.data.dtype, copy=False)


def warmup_cosine(step: int, warmup: int, total: int, lr_max: float, lr_min: float = 0.0) -> float:
    """Linear warmup to ``lr_max`` over ``warmup`` steps, then cosine decay to ``lr_min`` at ``total``.

    step < warmup: lr_max * (step + 1) / warmup;  step >= total: lr_min;  else
    lr_min + (lr_max - lr_min) * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2.
    """
    if warmup < 0 or total <= 0 or warmup > total:
        raise ValueError(f"warmup_cosine: need 0 <= warmup <= total and total > 0, "
                         f"got warmup={warmup}, total={total}")
    if step < warmup:
        return lr_max * (step + 1) / warmup
    if step >= total:
        return lr_min
    progress = (step - warmup) / max(total - warmup, 1)
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * progress))


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> float:
    """Scale all gradients by min(1, max_norm / ||g||) with ||g|| the global L2 norm.

    Returns the norm before clipping (computed in float64). max_norm must be > 0 (0 would zero
    every gradient, a negative value would flip them). A non-finite norm is returned unclipped.
    """
    if not (_real("clip_grad_norm", "max_norm", max_norm) > 0):
        raise ValueError(f"clip_grad_norm: max_norm must be > 0, got {max_norm!r}")
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float(np.dot(g.ravel().astype(np.float64), g.ravel().astype(np.float64)))
                          for g in grads))
    if math.isfinite(total) and total > max_norm:          # inf * 0 would turn grads into NaN
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= g.dtype.type(scale)
    return total
