"""FlashAttention forward pass in NumPy, tile by tile, with both loop orders.

``loop_order="q_outer"`` is FlashAttention-2: the outer loop walks query blocks, the inner loop
streams key/value blocks; the running ``(m, l, O)`` stay "on chip" and O is divided by l once.
``loop_order="kv_outer"`` is FlashAttention-1 (Dao et al. 2022, Algorithm 1) read literally: the
outer loop walks key/value blocks, the inner loop walks query blocks, and every inner step reads
``O_i, l_i, m_i`` back from HBM and writes them again (O kept normalised at every step).
(The source text, section 4.4, swaps the two: FA1 is the one with K/V outside.)

Causal masks are bottom-right aligned: query ``i`` sees keys ``j <= i + Lk - Lq``. Tiles entirely
above that diagonal are skipped (and counted by the counter); only diagonal tiles need an element
mask. Rows that see no key return 0 and ``lse = -inf`` without NaN.
"""
from __future__ import annotations

import math

import numpy as np

from ..functional._checks import floating_arrays
from .io_sim import HBMCounter
from .online_softmax import block_update, safe_max, source_text_block_update

__all__ = ["flash_attention", "source_text_flash_forward", "classify_tiles", "prepare_inputs",
           "SKIP", "PARTIAL", "FULL"]

SKIP, PARTIAL, FULL = 0, 1, 2   # tile classes: fully masked, needs an element mask, fully visible


def prepare_inputs(q, k, v, block_q: int, block_k: int, scale: float | None):
    """Validate shapes/dtypes; return ``(q, k, v, scale, out_dtype)`` broadcast to common batch axes.

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)``, ``v: (..., Lk, dv)``; leading axes must broadcast.
    Work happens in float64 if any input is float64, else float32 (fp16 is upcast per tile).
    """
    q, k, v = floating_arrays("(..., L, d)", 2, q=q, k=k, v=v)
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"k: expected last dim d={q.shape[-1]} (from q {q.shape}), got {k.shape}")
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(f"v: expected (..., Lk={k.shape[-2]}, dv) (from k {k.shape}), got {v.shape}")
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(f"leading (batch) axes of q {q.shape}, k {k.shape}, v {v.shape} "
                         "do not broadcast") from None
    for name, b in (("block_q", block_q), ("block_k", block_k)):
        if not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"{name} must be a positive int, got {b!r}")
    out_dtype = np.result_type(q.dtype, k.dtype, v.dtype)
    cdt = np.float64 if out_dtype == np.float64 else np.float32
    q, k, v = (np.broadcast_to(x.astype(cdt, copy=False), batch + x.shape[-2:]) for x in (q, k, v))
    if scale is None:             # d = 0: every score is the empty sum 0, so any scale gives the same
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] > 0 else 1.0
    scale = float(scale)
    return q, k, v, scale, out_dtype


def tile_class(q0: int, q1: int, k0: int, k1: int, offset: int, is_causal: bool) -> int:
    """Class of the tile rows [q0, q1) x keys [k0, k1); query i sees keys j <= i + offset."""
    if not is_causal:
        return FULL
    if k0 > q1 - 1 + offset:          # first key is beyond what even the last row may see
        return SKIP
    if k1 - 1 <= q0 + offset:         # last key is visible to the first row, hence to all
        return FULL
    return PARTIAL


def classify_tiles(Lq: int, Lk: int, block_q: int, block_k: int, is_causal: bool) -> np.ndarray:
    """``(T_r, T_c)`` int array of tile classes (SKIP=0, PARTIAL=1, FULL=2), bottom-right causal."""
    off = Lk - Lq
    return np.array([[tile_class(q0, min(q0 + block_q, Lq), k0, min(k0 + block_k, Lk), off, is_causal)
                      for k0 in range(0, Lk, block_k)] for q0 in range(0, Lq, block_q)], dtype=np.int8)


def _scores(qi, kj, scale, q0, k0, cls, offset):
    """Scaled scores of one tile, ``(..., Bq, Bk)``, with -inf where the causal mask forbids."""
    s = (qi @ np.swapaxes(kj, -1, -2)) * scale                        # S_ij = Q_i K_j^T * scale
    if cls == PARTIAL:
        rows = np.arange(q0, q0 + qi.shape[-2])[:, None]
        cols = np.arange(k0, k0 + kj.shape[-2])[None, :]
        s = np.where(cols <= rows + offset, s, -np.inf)
    return s


def flash_attention(q, k, v, *, is_causal: bool = False, scale: float | None = None,
                    block_q: int = 64, block_k: int = 64, loop_order: str = "q_outer",
                    counter: HBMCounter | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact attention ``softmax(q k^T * scale) v`` without ever forming the Lq x Lk matrix.

    q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv); leading axes broadcast.
    Returns ``out: (..., Lq, dv)`` in the inputs' dtype and ``lse: (..., Lq)`` (float32, or float64
    for float64 inputs) with ``lse = log sum_j exp(s_j)`` and ``-inf`` for rows that see no key.
    ``block_q``/``block_k`` are any positive ints (ragged last blocks are fine); ``counter`` (an
    :class:`HBMCounter`) records every tile moved between HBM and SRAM.
    """
    if loop_order not in ("q_outer", "kv_outer"):
        raise ValueError(f"loop_order must be 'q_outer' (FA2) or 'kv_outer' (FA1), got {loop_order!r}")
    q, k, v, scale, out_dtype = prepare_inputs(q, k, v, block_q, block_k, scale)
    c = counter if counter is not None else HBMCounter()
    run = _q_outer if loop_order == "q_outer" else _kv_outer
    out, lse = run(q, k, v, scale, block_q, block_k, is_causal, c)
    return out.astype(out_dtype, copy=False), lse


def _q_outer(q, k, v, scale, bq, bk, is_causal, c):
    """FlashAttention-2: for each query block, stream all key blocks; one division at the end."""
    Lq, Lk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
    off = Lk - Lq
    out = np.empty(q.shape[:-1] + (dv,), dtype=q.dtype)
    lse = np.empty(q.shape[:-1], dtype=q.dtype)
    for q0 in range(0, Lq, bq):
        q1 = min(q0 + bq, Lq)
        qi = q[..., q0:q1, :]
        c.read(qi.size, "Q"); c.hold(qi.size)
        m = np.full(qi.shape[:-1], -np.inf, dtype=q.dtype)            # running max, on chip
        l = np.zeros(qi.shape[:-1], dtype=q.dtype)                    # running sum, on chip
        o = np.zeros(qi.shape[:-1] + (dv,), dtype=q.dtype)            # unnormalised output, on chip
        c.hold(m.size + l.size + o.size)
        for k0 in range(0, Lk, bk):
            k1 = min(k0 + bk, Lk)
            cls = tile_class(q0, q1, k0, k1, off, is_causal)
            c.tile(skipped=cls == SKIP)
            if cls == SKIP:
                continue
            kj, vj = k[..., k0:k1, :], v[..., k0:k1, :]
            c.read(kj.size, "K"); c.read(vj.size, "V")
            c.hold(kj.size + vj.size + qi.shape[-2] * (k1 - k0))
            s = _scores(qi, kj, scale, q0, k0, cls, off)
            m, l, o = block_update(m, l, o, s, vj)
            c.release(kj.size + vj.size + qi.shape[-2] * (k1 - k0))
        empty = l == 0                                                # rows that saw no key
        out[..., q0:q1, :] = o / np.where(empty, 1, l)[..., None]     # O = O~ / l, 0 if no key
        lse[..., q0:q1] = np.where(empty, -np.inf, m + np.log(np.where(empty, 1, l)))  # lse = m + log l
        c.write(o.size, "O"); c.write(m.size, "lse")
        c.release(qi.size + m.size + l.size + o.size)
    return out, lse


def _kv_outer(q, k, v, scale, bq, bk, is_causal, c):
    """FlashAttention-1, Algorithm 1: K/V blocks outside; O, l, m round-trip HBM every inner step."""
    Lq, Lk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
    off = Lk - Lq
    O = np.zeros(q.shape[:-1] + (dv,), dtype=q.dtype)                 # line 2: O = 0 in HBM
    l = np.zeros(q.shape[:-1], dtype=q.dtype)                         #         l = 0
    m = np.full(q.shape[:-1], -np.inf, dtype=q.dtype)                 #         m = -inf
    c.write(O.size, "O"); c.write(l.size, "l"); c.write(m.size, "m")
    for k0 in range(0, Lk, bk):                                       # line 5: for j = 1..T_c
        k1 = min(k0 + bk, Lk)
        kj, vj = k[..., k0:k1, :], v[..., k0:k1, :]
        c.read(kj.size, "K"); c.read(vj.size, "V"); c.hold(kj.size + vj.size)   # line 6
        for q0 in range(0, Lq, bq):                                   # line 7: for i = 1..T_r
            q1 = min(q0 + bq, Lq)
            cls = tile_class(q0, q1, k0, k1, off, is_causal)
            c.tile(skipped=cls == SKIP)
            if cls == SKIP:
                continue
            qi, oi, li, mi = q[..., q0:q1, :], O[..., q0:q1, :], l[..., q0:q1], m[..., q0:q1]
            tile_elems = qi.size + oi.size + li.size + mi.size + qi.shape[-2] * (k1 - k0)
            c.read(qi.size, "Q"); c.read(oi.size, "O"); c.read(li.size, "l"); c.read(mi.size, "m")
            c.hold(tile_elems)                                        # line 8
            s = _scores(qi, kj, scale, q0, k0, cls, off)              # line 9
            m_t = s.max(axis=-1)                                      # line 10: m~ = rowmax(S)
            p = np.exp(s - safe_max(m_t)[..., None])                  #          P~ = exp(S - m~)
            l_t = p.sum(axis=-1)                                      #          l~ = rowsum(P~)
            m_new = np.maximum(mi, m_t)                               # line 11: m' = max(m, m~)
            sh = safe_max(m_new)
            a_old, a_new = np.exp(mi - sh), np.exp(m_t - sh)          # e^(m - m'), e^(m~ - m')
            l_new = a_old * li + a_new * l_t                          # l' = e^(m-m') l + e^(m~-m') l~
            num = (li * a_old)[..., None] * oi + a_new[..., None] * (p @ vj)
            O[..., q0:q1, :] = num / np.where(l_new == 0, 1, l_new)[..., None]  # line 12: O_i
            l[..., q0:q1], m[..., q0:q1] = l_new, m_new               # line 13: l_i, m_i
            c.write(oi.size, "O"); c.write(li.size, "l"); c.write(mi.size, "m")
            c.release(tile_elems)
        c.release(kj.size + vj.size)
    # Algorithm 1 returns (O, l, m); lse = m + log l is a host-side view of them (not counted).
    empty = l == 0
    lse = np.where(empty, -np.inf, m + np.log(np.where(empty, 1, l)))
    return O, lse


def source_text_flash_forward(q, k, v, *, scale: float | None = None, block_q: int = 64,
                              block_k: int = 64, final_divide: bool = True) -> np.ndarray:
    """WRONG ON PURPOSE: the source text's section-2.3 pseudocode, transcribed.

    It adds ``softmax(S_ij) V_j`` (each block normalised by its own sum) to the rescaled output and
    divides by ``l`` at the end; the result is not attention. Same shapes as :func:`flash_attention`
    (non-causal only); returns ``out: (..., Lq, dv)``. Kept so chapter 06 can measure the error.
    ``final_divide=False`` drops the last line (``O_i / l_i``), which the locally-normalised sum
    would need to be even plausible; it is still wrong as soon as there are two key blocks.
    """
    q, k, v, scale, out_dtype = prepare_inputs(q, k, v, block_q, block_k, scale)
    Lq, Lk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
    out = np.empty(q.shape[:-1] + (dv,), dtype=q.dtype)
    for q0 in range(0, Lq, block_q):
        qi = q[..., q0:q0 + block_q, :]
        m = np.full(qi.shape[:-1], -np.inf, dtype=q.dtype)
        l = np.zeros(qi.shape[:-1], dtype=q.dtype)
        o = np.zeros(qi.shape[:-1] + (dv,), dtype=q.dtype)
        for k0 in range(0, Lk, block_k):
            s = (qi @ np.swapaxes(k[..., k0:k0 + block_k, :], -1, -2)) * scale
            m, l, o = source_text_block_update(m, l, o, s, v[..., k0:k0 + block_k, :])
        out[..., q0:q0 + block_q, :] = o / l[..., None] if final_divide else o  # "最终归一化" O_i/l_i
    return out.astype(out_dtype, copy=False)
