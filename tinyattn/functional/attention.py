"""Scaled dot-product attention (SDPA) as ONE autograd node with a hand-derived fused backward.

    O = softmax(Q Kᵀ · scale + bias, masked) V          scale = 1/sqrt(d) by default

Shapes: q (..., Hq, Lq, d), k (..., Hkv, Lk, d), v (..., Hkv, Lk, dv) -> (..., Hq, Lq, dv).
Grouped-query attention needs no copies: query head i reads KV head i // (Hq // Hkv), so we view
q as (..., Hkv, rep·Lq, d) and every product is one batched matmul per KV head.

Backends: ``backend="dense"`` is this file. Other implementations (chapter 06's flash) register
themselves with :func:`register_sdpa_backend`; the first use of an unknown name imports
``tinyattn.<name>`` so that module can register itself (functional never imports upward).
"""
from __future__ import annotations

import importlib
import math
import os
from typing import Callable

import numpy as np

from ..autograd import custom_op
from ..tensor import Tensor, as_tensor

SDPABackend = Callable[..., Tensor]
_BACKENDS: dict[str, SDPABackend] = {}


def register_sdpa_backend(name: str, fn: SDPABackend) -> None:
    """Make ``fn`` available as ``scaled_dot_product_attention(..., backend=name)``.

    ``fn(q, k, v, mask, *, bias, is_causal, scale, dropout_p, rng) -> Tensor`` receives validated
    Tensors q (..., Hq, Lq, d), k/v (..., Hkv, Lk, d|dv), a bool ndarray mask broadcastable to
    (..., Hq, Lq, Lk) or None, a Tensor bias or None, and a float ``scale`` (never None)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"backend name must be a non-empty str, got {name!r}")
    if not callable(fn):
        raise TypeError(f"backend {name!r}: fn must be callable, got {type(fn).__name__}")
    _BACKENDS[name] = fn


def _backend(name: str) -> SDPABackend:
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str, got {type(name).__name__}")
    if name not in _BACKENDS and name.isidentifier():
        try:  # e.g. "flash" -> tinyattn.flash, which calls register_sdpa_backend on import
            importlib.import_module(f"tinyattn.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tinyattn.{name}":
                raise                    # the module exists but is broken: show the real error
    if name not in _BACKENDS:
        raise ValueError(f"unknown SDPA backend {name!r}; registered backends: {sorted(_BACKENDS)}")
    return _BACKENDS[name]


def _floating(name: str, x) -> Tensor:
    t = x if isinstance(x, Tensor) else as_tensor(np.asarray(x))
    if not np.issubdtype(t.data.dtype, np.floating):
        raise TypeError(f"{name} must be a floating array, got dtype {t.data.dtype}")
    return t


def _validate(q: Tensor, k: Tensor, v: Tensor, mask, bias) -> tuple[np.ndarray | None, Tensor | None]:
    """Check the shapes of the contract; return (mask as bool ndarray or None, bias Tensor or None)."""
    if not (q.ndim == k.ndim == v.ndim) or q.ndim < 3:
        raise ValueError(f"q, k, v must have the same rank >= 3 (..., H, L, d); got q {q.shape}, "
                         f"k {k.shape}, v {v.shape}")
    if q.shape[:-3] != k.shape[:-3] or k.shape[:-3] != v.shape[:-3]:
        raise ValueError(f"batch axes differ: q {q.shape}, k {k.shape}, v {v.shape} "
                         "(expected equal leading axes before (H, L, d))")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"head dim mismatch: q {q.shape} has d={q.shape[-1]} but k {k.shape} has "
                         f"d={k.shape[-1]} (expected q (..., Hq, Lq, d), k (..., Hkv, Lk, d))")
    if k.shape[-2] != v.shape[-2] or k.shape[-3] != v.shape[-3]:
        raise ValueError(f"k {k.shape} and v {v.shape} must agree on (Hkv, Lk): "
                         "expected k (..., Hkv, Lk, d), v (..., Hkv, Lk, dv)")
    hq, hkv = q.shape[-3], k.shape[-3]
    if hkv == 0:
        raise ValueError(f"k must have at least one head (Hkv >= 1), got k {k.shape}")
    if hq % hkv != 0:
        raise ValueError(f"Hq={hq} (q {q.shape}) must be a multiple of Hkv={hkv} (k {k.shape})")
    full = (*q.shape[:-1], k.shape[-2])  # (..., Hq, Lq, Lk)
    if mask is not None:
        mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must be bool (True = attend), got dtype {mask.dtype}; "
                            "pass additive float scores as bias=")
        if not _broadcasts(mask.shape, full):
            raise ValueError(f"mask of shape {mask.shape} is not broadcastable to "
                             f"(..., Hq, Lq, Lk) = {full}")
    if bias is not None:
        bias = _floating("bias", bias)
        if not _broadcasts(bias.shape, full):
            raise ValueError(f"bias of shape {bias.shape} is not broadcastable to "
                             f"(..., Hq, Lq, Lk) = {full}")
        if np.isnan(bias.data).any() or np.isposinf(bias.data).any():
            raise ValueError("bias contains NaN or +inf (only -inf is allowed, meaning 'masked')")
    return mask, bias


def _broadcasts(shape: tuple, target: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def causal_mask(lq: int, lk: int) -> np.ndarray:
    """Bottom-right aligned causal mask, bool (Lq, Lk): query i sees key j iff j <= i + Lk - Lq."""
    return np.tri(lq, lk, k=lk - lq, dtype=bool)


def _allowed(mask, is_causal: bool, lq: int, lk: int):
    """Combined bool 'may attend' array broadcastable to (..., Lq, Lk), or None if all allowed."""
    allowed = None if mask is None else np.asarray(mask, dtype=bool)
    if is_causal:
        tri = causal_mask(lq, lk)
        allowed = tri if allowed is None else (allowed & tri)
    return allowed


def _group(x: np.ndarray, hkv: int) -> np.ndarray:
    """(..., Hq, L, n) -> (..., Hkv, rep·L, n): query heads i = g·rep + r share KV head g."""
    return x.reshape(*x.shape[:-3], hkv, (x.shape[-3] // hkv) * x.shape[-2], x.shape[-1])


def _probs(q: np.ndarray, k: np.ndarray, allowed, bias, scale: float) -> np.ndarray:
    """Attention probabilities P (..., Hq, Lq, Lk) in q's dtype; rows with no allowed key are 0.

    Every step after the matmul works in place on the one (..., Lq, Lk) buffer."""
    hkv = k.shape[-3]
    qs = q * q.dtype.type(scale)                                  # scale the (L, d) side, not (L, L)
    s = (_group(qs, hkv) @ np.swapaxes(k, -1, -2)).reshape(*q.shape[:-1], k.shape[-2])  # S = Q Kᵀ·scale
    if bias is not None:
        s += bias                                                 # S += bias (ALiBi, T5, ...)
    if allowed is not None:
        np.copyto(s, -np.inf, where=~allowed)                     # masked logits -> -inf
    m = np.max(s, axis=-1, keepdims=True, initial=-np.inf)        # row max, for stability
    m[~np.isfinite(m)] = 0.0                                      # empty rows: avoid (-inf) - (-inf)
    s -= m
    p = np.exp(s, out=s)                                          # exp(-inf) = 0 for masked keys
    l = p.sum(axis=-1, keepdims=True)                             # ℓ = rowsum(exp(S - m))
    l[l == 0] = 1.0                                               # empty rows stay 0
    p /= l                                                        # P = exp(S - m) / ℓ
    return p


def _sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Reduce a broadcast gradient g back to ``shape`` (sum over broadcast axes)."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _physical_memory() -> int | None:
    """Bytes of RAM, or None where the OS does not say (then nothing is refused up front)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _oom_message(q_shape: tuple, lk: int, ct: np.dtype) -> str:
    shape = (*q_shape[:-1], lk)
    gib = math.prod(shape) * ct.itemsize / 2**30
    return (f"dense attention materialises the score matrix P of shape {shape} ({ct}): "
            f"{gib:.3g} GiB per copy (the backward needs ~3 copies). Use "
            "backend='flash' (O(L) extra memory, same result), a shorter sequence or a smaller batch")


def _dense(q: Tensor, k: Tensor, v: Tensor, mask=None, *, bias=None, is_causal=False,
           scale: float, dropout_p=0.0, rng=None) -> Tensor:
    """The dense backend: materialises P (..., Hq, Lq, Lk); float16 is computed in float32.

    MemoryError (raised up front when one copy of P exceeds the machine's RAM, so an
    overcommitting OS never starts swapping) names the bytes needed and suggests backend='flash'."""
    ct = np.result_type(q.data.dtype, k.data.dtype, v.data.dtype, np.float32)  # compute dtype
    ram = _physical_memory()
    if ram is not None and math.prod((*q.shape[:-1], k.shape[-2])) * ct.itemsize > ram:
        raise MemoryError(_oom_message(q.shape, k.shape[-2], ct) + f"; this machine has "
                          f"{ram / 2**30:.3g} GiB of RAM")
    try:
        return _dense_impl(q, k, v, mask, bias=bias, is_causal=is_causal, scale=scale,
                           dropout_p=dropout_p, rng=rng, ct=ct)
    except MemoryError as exc:
        raise MemoryError(_oom_message(q.shape, k.shape[-2], ct)) from exc


def _dense_impl(q: Tensor, k: Tensor, v: Tensor, mask, *, bias, is_causal, scale: float,
                dropout_p: float, rng, ct: np.dtype) -> Tensor:
    out_dtype = np.result_type(q.data.dtype, k.data.dtype, v.data.dtype)
    qd, kd, vd = (t.data.astype(ct, copy=False) for t in (q, k, v))
    hkv, lq, lk = kd.shape[-3], qd.shape[-2], kd.shape[-2]
    bd = None if bias is None else bias.data.astype(ct, copy=False)
    p = _probs(qd, kd, _allowed(mask, is_causal, lq, lk), bd, scale)
    keep = None
    if dropout_p > 0.0:                                           # inverted dropout on P
        keep = (rng.random(p.shape) >= dropout_p) / ct.type(1.0 - dropout_p)
    pd = p if keep is None else p * keep
    out = (_group(pd, hkv) @ vd).reshape(*qd.shape[:-1], vd.shape[-1])  # O = P V

    def backward(dout: np.ndarray):
        try:
            return _backward(dout)
        except MemoryError as exc:
            raise MemoryError("in the backward of SDPA: " + _oom_message(qd.shape, lk, ct)) from exc

    def _backward(dout: np.ndarray):
        do = _group(dout.astype(ct, copy=False), hkv)              # (..., Hkv, rep·Lq, dv)
        dv = np.swapaxes(_group(pd, hkv), -1, -2) @ do             # dV = Pᵀ dO (sums the group)
        dp = (do @ np.swapaxes(vd, -1, -2)).reshape(p.shape)       # dP = dO Vᵀ
        if keep is not None:
            dp *= keep                                             # through the dropout mask
        # rowsum(dP ∘ P) = rowsum(dO ∘ O): an (L, dv) product instead of an (L, L) one
        dp -= (dout.astype(ct, copy=False) * out).sum(axis=-1, keepdims=True)
        ds = np.multiply(dp, p, out=dp)                            # dS = P ∘ (dP − rowsum(dO ∘ O))
        dsg = _group(ds, hkv)                                      # (..., Hkv, rep·Lq, Lk)
        dq = (dsg @ (kd * ct.type(scale))).reshape(qd.shape)       # dQ = dS K · scale
        dk = np.swapaxes(dsg, -1, -2) @ _group(qd * ct.type(scale), hkv)  # dK = dSᵀ Q · scale
        grads = [dq.astype(q.data.dtype), dk.astype(k.data.dtype), dv.astype(v.data.dtype)]
        if bias is not None:
            grads.append(_sum_to(ds, bias.shape).astype(bias.data.dtype))  # dBias = dS, reduced
        return grads

    inputs = [q, k, v] + ([] if bias is None else [bias])
    return custom_op(out.astype(out_dtype, copy=False), inputs, backward, name="sdpa")


register_sdpa_backend("dense", _dense)


def _prepare(q, k, v, mask, bias, scale):
    q, k, v = _floating("q", q), _floating("k", k), _floating("v", v)
    mask, bias = _validate(q, k, v, mask, bias)
    if scale is None and q.shape[-1] == 0:
        raise ValueError(f"head dim d = 0 (q {q.shape}): the default scale 1/sqrt(d) is undefined; "
                         "pass scale= explicitly")
    scale = 1.0 / float(np.sqrt(q.shape[-1])) if scale is None else float(scale)
    if not np.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale}")
    return q, k, v, mask, bias, scale


def scaled_dot_product_attention(q, k, v, mask=None, *, bias=None, is_causal: bool = False,
                                 scale: float | None = None, dropout_p: float = 0.0,
                                 rng: np.random.Generator | None = None,
                                 backend: str = "dense") -> Tensor:
    """softmax(Q Kᵀ · scale + bias, masked) V, differentiable in q, k, v and bias.

    q: (..., Hq, Lq, d), k: (..., Hkv, Lk, d), v: (..., Hkv, Lk, dv), ndarrays or Tensors, with
    Hq a multiple of Hkv (GQA/MQA: query head i uses KV head i // (Hq // Hkv)).
    mask: bool, True = may attend, broadcastable to (..., Hq, Lq, Lk). bias: float, same broadcast,
    added after scaling (-inf allowed). is_causal: bottom-right aligned, key j <= i + Lk - Lq.
    scale: default 1/sqrt(d). dropout_p > 0 drops probabilities and needs ``rng``.
    A row with no allowed key returns 0 with zero gradients. float16 inputs are computed in
    float32 and returned as float16. Returns a Tensor (..., Hq, Lq, dv).
    """
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0.0 and not isinstance(rng, np.random.Generator):
        raise ValueError("dropout_p > 0 needs rng=np.random.Generator (no global random state)")
    fn = _backend(backend)
    q, k, v, mask, bias, scale = _prepare(q, k, v, mask, bias, scale)
    return fn(q, k, v, mask, bias=bias, is_causal=is_causal, scale=scale,
              dropout_p=dropout_p, rng=rng)


def attention_weights(q, k, mask=None, *, bias=None, is_causal: bool = False,
                      scale: float | None = None) -> np.ndarray:
    """The probabilities P (..., Hq, Lq, Lk) that SDPA would use, as an ndarray (no gradient).

    Same arguments and conventions as :func:`scaled_dot_product_attention`; for plots and checks."""
    q, k, _, mask, bias, scale = _prepare(q, k, k, mask, bias, scale)
    ct = np.result_type(q.data.dtype, k.data.dtype, np.float32)
    bd = None if bias is None else bias.data.astype(ct)
    allowed = _allowed(mask, is_causal, q.shape[-2], k.shape[-2])
    return _probs(q.data.astype(ct), k.data.astype(ct), allowed, bd, scale)
