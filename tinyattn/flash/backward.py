"""FlashAttention backward pass: gradients without storing the Lq x Lk attention matrix.

The forward pass keeps only ``out`` and ``lse = m + log l`` per row. The backward pass recomputes
each tile's probabilities from them, ``P_ij = exp(S_ij - lse_i)`` (exact: it is the softmax), and
uses the softmax-Jacobian identity (REFERENCE section 4)::

    dV = P^T dO        dP = dO V^T        D_i = rowsum(dO_i * O_i) = sum_j P_ij dP_ij
    dS = P * (dP - D)  dQ = dS K * scale  dK = dS^T Q * scale

Loop order as in FlashAttention-2's backward: key/value blocks outside (dK_j, dV_j accumulate on
chip), query blocks inside (dQ_i accumulates in HBM).
"""
from __future__ import annotations

import numpy as np

from .forward import SKIP, _scores, prepare_inputs, tile_class

__all__ = ["flash_attention_backward"]


def flash_attention_backward(q, k, v, out, lse, dout, *, is_causal: bool = False,
                             scale: float | None = None, block_q: int = 64, block_k: int = 64
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``out = flash_attention(q, k, v)`` given ``dout = dL/dout``.

    q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv), out: (..., Lq, dv), lse: (..., Lq),
    dout: (..., Lq, dv); ``out`` and ``lse`` must come from the forward with the same ``is_causal``
    and ``scale``. Returns ``(dq, dk, dv)`` with the shapes and dtypes of ``q, k, v`` (if the batch
    axes were broadcast, the gradients are summed back to each input's shape).
    """
    q_in, k_in, v_in = (np.asarray(x) for x in (q, k, v))
    q, k, v, scale, _ = prepare_inputs(q_in, k_in, v_in, block_q, block_k, scale)
    cdt = q.dtype
    Lq, Lk = q.shape[-2], k.shape[-2]
    out = np.asarray(out)
    dout = np.asarray(dout)
    lse = np.asarray(lse)
    exp_o = q.shape[:-1] + (v.shape[-1],)
    for name, x, shape in (("out", out, exp_o), ("dout", dout, exp_o), ("lse", lse, q.shape[:-1])):
        try:
            ok = np.broadcast_shapes(x.shape, shape) == shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{name}: expected shape {shape}, got {x.shape}")
    out = np.broadcast_to(out.astype(cdt, copy=False), exp_o)
    dout = np.broadcast_to(dout.astype(cdt, copy=False), exp_o)
    lse = np.broadcast_to(lse.astype(cdt, copy=False), q.shape[:-1])
    D = (dout * out).sum(axis=-1)                                     # D_i = rowsum(dO_i * O_i)
    lse_safe = np.where(np.isneginf(lse), np.inf, lse)                # no key: P = exp(-inf) = 0
    off = Lk - Lq
    dq = np.zeros(q.shape, dtype=cdt)
    dk = np.zeros(k.shape, dtype=cdt)
    dv = np.zeros(v.shape, dtype=cdt)
    for k0 in range(0, Lk, block_k):
        k1 = min(k0 + block_k, Lk)
        kj, vj = k[..., k0:k1, :], v[..., k0:k1, :]
        dkj = np.zeros(kj.shape, dtype=cdt)                           # accumulators on chip
        dvj = np.zeros(vj.shape, dtype=cdt)
        for q0 in range(0, Lq, block_q):
            q1 = min(q0 + block_q, Lq)
            cls = tile_class(q0, q1, k0, k1, off, is_causal)
            if cls == SKIP:
                continue
            qi, doi = q[..., q0:q1, :], dout[..., q0:q1, :]
            s = _scores(qi, kj, scale, q0, k0, cls, off)
            p = np.exp(s - lse_safe[..., q0:q1, None])                # P_ij = exp(S_ij - lse_i)
            dvj += np.swapaxes(p, -1, -2) @ doi                       # dV_j += P^T dO_i
            dp = doi @ np.swapaxes(vj, -1, -2)                        # dP = dO_i V_j^T
            ds = p * (dp - D[..., q0:q1, None])                       # dS = P * (dP - D_i)
            dq[..., q0:q1, :] += (ds @ kj) * scale                    # dQ_i += dS K_j * scale
            dkj += (np.swapaxes(ds, -1, -2) @ qi) * scale             # dK_j += dS^T Q_i * scale
        dk[..., k0:k1, :] = dkj
        dv[..., k0:k1, :] = dvj
    return tuple(_unbroadcast(g, x.shape).astype(x.dtype, copy=False)
                 for g, x in ((dq, q_in), (dk, k_in), (dv, v_in)))


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` over the axes that broadcasting added or stretched, to get back ``shape``."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for ax, n in enumerate(shape):
        if n == 1 and g.shape[ax] != 1:
            g = g.sum(axis=ax, keepdims=True)
    return g
