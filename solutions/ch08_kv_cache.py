"""Chapter 08 exercises: decoding with a KV cache, GQA and MLA, in plain NumPy.

Exercise 08.1  append_kv             write new keys/values into a preallocated cache
Exercise 08.2  rope_for_decode       rotate the new queries/keys at the positions that follow the cache
Exercise 08.3  gqa_decode_attention  one decoding step with fewer KV heads than query heads
Exercise 08.4  mla_absorbed_scores   MLA attention scores computed from the latent cache

The graded tests compare your functions with ``tinyattn`` (``KVCache``, ``apply_rope``,
``MultiHeadLatentAttention``) and with dense float64 computations on seeded random inputs.
You may use ``tinyattn.positional.apply_rope`` (layout "half") in 08.2.
"""
from __future__ import annotations

import numpy as np

from tinyattn.positional import apply_rope


def append_kv(k_cache: np.ndarray, v_cache: np.ndarray, length: int, k_new: np.ndarray,
              v_new: np.ndarray) -> int:
    """Store L new tokens after the ``length`` cached ones, IN PLACE, and return the new length.

    k_cache, v_cache: (B, Hkv, max_len, d) buffers whose first ``length`` positions are filled;
    k_new, v_new: (B, Hkv, L, d). If the L tokens do not fit (length + L > max_len) raise
    ValueError and leave both buffers unchanged.
    """
    # BEGIN SOLUTION
    # HINT: check the capacity BEFORE writing anything
    L = k_new.shape[2]
    if length + L > k_cache.shape[2]:
        raise ValueError(f"cache overflow: {length} + {L} > max_len={k_cache.shape[2]}")
    k_cache[:, :, length:length + L] = k_new
    v_cache[:, :, length:length + L] = v_new
    return length + L
    # END SOLUTION


def rope_for_decode(q_new: np.ndarray, k_new: np.ndarray, cache_length: int,
                    inv_freq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RoPE ("half" layout) for L new tokens that follow ``cache_length`` cached ones.

    q_new: (B, H, L, d), k_new: (B, Hkv, L, d), inv_freq: (d // 2,). Returns the rotated (q, k),
    such that scores against the cached (already rotated) keys equal those of a full forward pass.
    """
    # BEGIN SOLUTION
    # HINT: which absolute positions do the new tokens have?
    pos = np.arange(cache_length, cache_length + q_new.shape[2])
    return apply_rope(q_new, pos, inv_freq), apply_rope(k_new, pos, inv_freq)
    # END SOLUTION


def gqa_decode_attention(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, length: int,
                         scale: float | None = None) -> np.ndarray:
    """One decoding step: each of the B sequences has ONE new query per head.

    q: (B, Hq, d); k_cache, v_cache: (B, Hkv, max_len, d) with the first ``length`` positions valid
    (the new token's own key already appended); Hq is a multiple of Hkv and query heads are grouped
    contiguously as in chapter 02. scale defaults to 1/sqrt(d). Returns (B, Hq, d):
    softmax(q · K[:length]ᵀ · scale) V[:length] for every head.
    """
    # BEGIN SOLUTION
    B, hq, d = q.shape
    hkv = k_cache.shape[1]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    # HINT: query head i reads KV head i // (Hq // Hkv)
    kv_head = np.arange(hq) // (hq // hkv)
    k = k_cache[:, kv_head, :length]                          # (B, Hq, length, d)
    v = v_cache[:, kv_head, :length]
    s = np.einsum("bhd,bhtd->bht", q, k) * scale
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("bht,bhtd->bhd", p, v)
    # END SOLUTION


def mla_absorbed_scores(q_nope: np.ndarray, q_rope: np.ndarray, c_kv: np.ndarray, k_rope: np.ndarray,
                        w_uk: np.ndarray, scale: float) -> np.ndarray:
    """MLA scores of one new token per sequence, read from the latent cache without building keys.

    q_nope: (B, H, d_nope) content queries; q_rope: (B, H, d_rope) rotated queries;
    c_kv: (B, T, d_c) cached latents; k_rope: (B, T, d_rope) cached shared rotary keys;
    w_uk: (d_c, H·d_nope), columns [i·d_nope, (i+1)·d_nope) belong to head i (k^C_i = c_kv W^UK_i).
    Returns (B, H, T): (q^C_i · k^C_i(t) + q^R_i · k^R(t)) · scale, computed by folding W^UK_i into
    the query (do not form the (B, T, H, d_nope) keys).
    """
    # BEGIN SOLUTION
    B, H, dn = q_nope.shape
    w = w_uk.reshape(w_uk.shape[0], H, dn)                    # (d_c, H, d_nope)
    # HINT: q^C_i · (c W^UK_i) = (q^C_i W^UK_iᵀ) · c
    q_lat = np.einsum("bhn,chn->bhc", q_nope, w)              # (B, H, d_c)
    content = np.einsum("bhc,btc->bht", q_lat, c_kv)
    rotary = np.einsum("bhr,btr->bht", q_rope, k_rope)        # one k^R shared by every head
    return (content + rotary) * scale
    # END SOLUTION
