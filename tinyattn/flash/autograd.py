"""FlashAttention as ONE autograd node, and the ``backend="flash"`` of F.scaled_dot_product_attention.

Forward: :func:`flash_attention` (keeps only ``out`` and ``lse``). Backward:
:func:`flash_attention_backward` (recomputes P tile by tile from ``lse``). No Lq x Lk array is
stored between the two, which is the whole point: training memory is O(N) in sequence length.
"""
from __future__ import annotations

import numpy as np

from .backward import flash_attention_backward
from .forward import flash_attention

__all__ = ["flash_sdpa"]


def _data(name: str, x):
    from ..tensor import Tensor

    if isinstance(x, Tensor):
        return x, x.data
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be a floating array or Tensor, got dtype {arr.dtype}")
    return Tensor(arr), arr


def flash_sdpa(q, k, v, mask=None, *, bias=None, is_causal: bool = False, scale: float | None = None,
               dropout_p: float = 0.0, rng=None, block_q: int = 64, block_k: int = 64):
    """Differentiable FlashAttention with F.scaled_dot_product_attention's signature.

    q: (..., Hq, Lq, d), k: (..., Hkv, Lk, d), v: (..., Hkv, Lk, dv), Tensors or ndarrays, with
    Hq a multiple of Hkv (GQA/MQA: query head i uses KV head i // (Hq // Hkv); KV heads are
    repeated for the kernel and their gradients summed back). ``is_causal`` is bottom-right aligned.
    Unsupported here (raise NotImplementedError): ``mask``, ``bias``, ``dropout_p > 0``; use
    ``backend="dense"`` for those. Returns a Tensor (..., Hq, Lq, dv) in the inputs' dtype.
    """
    from ..autograd import custom_op

    if mask is not None:
        raise NotImplementedError("flash_sdpa: boolean mask= is not supported (only is_causal); "
                                  "use backend='dense'")
    if bias is not None:
        raise NotImplementedError("flash_sdpa: bias= is not supported; use backend='dense'")
    if dropout_p:
        raise NotImplementedError(f"flash_sdpa: dropout_p={dropout_p} is not supported")
    (qt, qd), (kt, kd), (vt, vd) = _data("q", q), _data("k", k), _data("v", v)
    if qd.ndim < 3 or kd.ndim != qd.ndim or vd.ndim != qd.ndim:
        raise ValueError(f"q, k, v must have the same rank >= 3 (..., H, L, d); got q {qd.shape}, "
                         f"k {kd.shape}, v {vd.shape}")
    hq, hkv = qd.shape[-3], kd.shape[-3]
    if hkv == 0 or hq % hkv != 0 or vd.shape[-3] != hkv:
        raise ValueError(f"Hq={hq} (q {qd.shape}) must be a multiple of Hkv={hkv} (k {kd.shape}, "
                         f"v {vd.shape})")
    rep = hq // hkv
    kr = np.repeat(kd, rep, axis=-3) if rep > 1 else kd               # KV head g serves q heads g*rep..
    vr = np.repeat(vd, rep, axis=-3) if rep > 1 else vd
    kw = dict(is_causal=is_causal, scale=scale, block_q=block_q, block_k=block_k)
    out, lse = flash_attention(qd, kr, vr, **kw)

    def backward(dout: np.ndarray):
        dq, dk, dv = flash_attention_backward(qd, kr, vr, out, lse, dout, **kw)
        if rep > 1:                                                   # sum the repeated heads' grads
            dk = dk.reshape(*kd.shape[:-3], hkv, rep, *kd.shape[-2:]).sum(axis=-3)
            dv = dv.reshape(*vd.shape[:-3], hkv, rep, *vd.shape[-2:]).sum(axis=-3)
        return [dq.astype(qd.dtype, copy=False), dk.astype(kd.dtype, copy=False),
                dv.astype(vd.dtype, copy=False)]

    return custom_op(out, [qt, kt, vt], backward, name="flash_sdpa")
