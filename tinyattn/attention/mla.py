"""Multi-head latent attention, MLA (DeepSeek-V2, arXiv:2405.04434, section 2.1; source text 2.5).

Keys and values of all heads are rebuilt from ONE small latent per token, so only the latent is cached:

    c^KV = h W^DKV                       (B, L, d_c)          d_c = kv_lora_rank (512 in DeepSeek-V2)
    k^C_i = c^KV W^UK_i,  v_i = c^KV W^UV_i                   (d_nope, d_v per head)
    k^R  = RoPE(h W^KR)                  (B, L, d_R)          ONE rotary key shared by every head
    c^Q = h W^DQ (if q_lora_rank),  q^C_i = c^Q W^UQ_i,  q^R_i = RoPE(c^Q W^QR_i)
    score_i(t, s) = (q^C_i·k^C_i(s) + q^R_i·k^R(s)) / sqrt(d_nope + d_R)
    out = Concat_i(softmax(score_i) V_i) W^O

Absorption (inference): q^C_i·k^C_i = q^C_i (c^KV W^UK_i)ᵀ = (q^C_i W^UK_iᵀ)·c^KV, so W^UK_i moves
to the query side, and softmax(.)V_i W^O_i = softmax(.) c^KV (W^UV_i W^O_i), so W^UV_i folds into
the output. Attention then runs directly on the cache [c^KV ; k^R] (d_c + d_R per token): it is MQA
with one KV head of width d_c + d_R. That only works because RoPE never touches k^C: a rotation
R_s between c^KV and the query would depend on the key position s and could not be folded into a
fixed matrix (see :func:`rope_on_content_absorption_error`). Hence the decoupled key k^R.
DeepSeek-V2 also RMS-normalises c^Q and c^KV; we leave the norms out (they do not change the algebra).
"""
from __future__ import annotations

import numpy as np

from ..functional.attention import scaled_dot_product_attention
from ..nn import Linear, Module
from ..positional import apply_rope, rope_inv_freq
from ..tensor import Tensor, as_tensor, concatenate
from .mha import merge_heads, split_heads

__all__ = ["MultiHeadLatentAttention", "rope_on_content_absorption_error"]


def _pos_int(name: str, v, allow_zero: bool = False) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be an int >= {0 if allow_zero else 1}, got {v!r}")
    return int(v)


class MultiHeadLatentAttention(Module):
    """MLA: x (B, L, d_model) -> (B, L, d_model); cache per token = kv_lora_rank + qk_rope_head_dim.

    qk_rope_head_dim must be even (RoPE pairs). Parameters (y = x @ weight): ``w_dq`` (d_model,
    q_lora_rank) if q_lora_rank else none, ``w_q`` (q_in, H·(d_nope + d_R)), ``w_dkv`` (d_model, d_c),
    ``w_kr`` (d_model, d_R), ``w_uk`` (d_c, H·d_nope), ``w_uv`` (d_c, H·d_v), ``o_proj`` (H·d_v, d_model).
    """

    def __init__(self, d_model: int, n_heads: int, kv_lora_rank: int, qk_nope_head_dim: int,
                 qk_rope_head_dim: int, v_head_dim: int, q_lora_rank: int | None = None, *,
                 rope_base: float = 10000.0, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.d_model, self.n_heads = _pos_int("d_model", d_model), _pos_int("n_heads", n_heads)
        self.d_c = _pos_int("kv_lora_rank", kv_lora_rank)
        self.d_nope = _pos_int("qk_nope_head_dim", qk_nope_head_dim)
        self.d_rope = _pos_int("qk_rope_head_dim", qk_rope_head_dim)
        self.d_v = _pos_int("v_head_dim", v_head_dim)
        if self.d_rope % 2:
            raise ValueError(f"qk_rope_head_dim must be even (RoPE rotates pairs), got {qk_rope_head_dim}")
        self.q_lora_rank = None if q_lora_rank is None else _pos_int("q_lora_rank", q_lora_rank)
        rng = np.random.default_rng(0) if rng is None else rng
        H, dq = self.n_heads, self.d_nope + self.d_rope
        lin = lambda a, b: Linear(a, b, bias=False, rng=rng, dtype=dtype)  # noqa: E731
        self.w_dq = None if q_lora_rank is None else lin(d_model, self.q_lora_rank)   # W^DQ
        self.w_q = lin(d_model if q_lora_rank is None else self.q_lora_rank, H * dq)  # [W^UQ | W^QR]
        self.w_dkv = lin(d_model, self.d_c)                                          # W^DKV
        self.w_kr = lin(d_model, self.d_rope)                                        # W^KR
        self.w_uk = lin(self.d_c, H * self.d_nope)                                   # W^UK
        self.w_uv = lin(self.d_c, H * self.d_v)                                      # W^UV
        self.o_proj = lin(H * self.d_v, d_model)                                     # W^O
        self.inv_freq = rope_inv_freq(self.d_rope, rope_base)
        self.scale = 1.0 / np.sqrt(dq)                            # 1/sqrt(d_nope + d_R)

    @property
    def cache_fields(self) -> dict[str, tuple[int, ...]]:
        """What a :class:`tinyattn.cache.KVCache` holds per token: the latent and the shared RoPE key."""
        return {"c_kv": (self.d_c,), "k_rope": (self.d_rope,)}

    def absorbed_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(W^UK per head (H, d_nope, d_c) to multiply queries by, W^UV_i W^O_i (H, d_c, d_model))."""
        H = self.n_heads
        w_uk = self.w_uk.weight.data.reshape(self.d_c, H, self.d_nope).transpose(1, 2, 0)  # W^UK_iᵀ
        w_uv = self.w_uv.weight.data.reshape(self.d_c, H, self.d_v).transpose(1, 0, 2)     # (H, d_c, d_v)
        w_o = self.o_proj.weight.data.reshape(H, self.d_v, self.d_model)                  # (H, d_v, d)
        return w_uk, w_uv @ w_o                                                            # W^UV_i W^O_i

    def forward(self, x, *, positions=None, is_causal: bool = True, cache=None, absorbed: bool = False,
                backend: str = "dense"):
        """x: (B, L, d_model); positions: int (L,) absolute positions (default 0..L-1, or continuing
        after the cache). cache: handle ``KVCache.layer(l)`` with fields ``cache_fields``.
        absorbed=False: rebuild per-head keys/values (training form); True: attend on the latent."""
        x = as_tensor(x)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (B, L, d_model={self.d_model}), got shape {x.shape}")
        B, L, _ = x.shape
        pos = np.arange(L) if positions is None else np.asarray(positions)
        if pos.shape != (L,):
            raise ValueError(f"positions must have shape (L={L},), got {pos.shape}")
        H, dn = self.n_heads, self.d_nope
        cq = x if self.w_dq is None else self.w_dq(x)                       # c^Q = h W^DQ
        q = split_heads(self.w_q(cq), H)                                    # (B, H, L, d_nope + d_R)
        q_nope, q_rope = q[..., :dn], apply_rope(q[..., dn:], pos, self.inv_freq)
        c_kv = self.w_dkv(x)                                                # (B, L, d_c)
        k_rope = apply_rope(self.w_kr(x).reshape(B, 1, L, self.d_rope), pos, self.inv_freq)  # (B,1,L,d_R)
        if cache is not None:                                               # store only c^KV and k^R
            kv = cache(c_kv=c_kv.data, k_rope=k_rope.data[:, 0])
            c_kv, k_rope = Tensor(kv["c_kv"]), Tensor(kv["k_rope"][:, None])
        Lk = c_kv.shape[1]
        if not absorbed:
            k_nope = split_heads(self.w_uk(c_kv), H)                        # k^C_i = c^KV W^UK_i
            v = split_heads(self.w_uv(c_kv), H)                             # v_i = c^KV W^UV_i
            ones = Tensor(np.ones((1, H, 1, 1), dtype=k_rope.data.dtype))
            k = concatenate([k_nope, k_rope * ones], axis=-1)               # [k^C_i ; k^R]
            o = scaled_dot_product_attention(concatenate([q_nope, q_rope], axis=-1), k, v,
                                             is_causal=is_causal, scale=self.scale, backend=backend)
            return self.o_proj(merge_heads(o))                              # (B, L, d_model)
        w_uk, w_uvo = self.absorbed_weights()
        q_lat = q_nope @ Tensor(w_uk.astype(q_nope.data.dtype))            # q^C_i W^UK_iᵀ: (B, H, L, d_c)
        q_abs = concatenate([q_lat, q_rope], axis=-1)                       # (B, H, L, d_c + d_R)
        c1 = c_kv.reshape(B, 1, Lk, self.d_c)
        k_abs = concatenate([c1, k_rope], axis=-1)                          # the cache itself: (B, 1, Lk, d_c + d_R)
        u = scaled_dot_product_attention(q_abs, k_abs, c1, is_causal=is_causal, scale=self.scale,
                                         backend=backend)                   # MQA over the latent: (B, H, L, d_c)
        return (u @ Tensor(w_uvo.astype(u.data.dtype))).sum(axis=1)        # sum_i u_i W^UV_i W^O_i

    def __repr__(self) -> str:
        return (f"MultiHeadLatentAttention(d_model={self.d_model}, n_heads={self.n_heads}, "
                f"kv_lora_rank={self.d_c}, qk_nope_head_dim={self.d_nope}, "
                f"qk_rope_head_dim={self.d_rope}, v_head_dim={self.d_v}, q_lora_rank={self.q_lora_rank})")


def rope_on_content_absorption_error(rng: np.random.Generator, d_c: int = 16, d_head: int = 8,
                                     L: int = 12, base: float = 10000.0) -> dict[str, float]:
    """Why MLA needs a decoupled RoPE key, in numbers (float64, one head).

    True scores s(t, j) = RoPE_t(q_t) · RoPE_j(c_j W^UK) with RoPE on the content keys. Absorption
    folds ONE matrix into the query: q̃_t = RoPE_t(q_t) W^UKᵀ, ŝ(t, j) = q̃_t · c_j. Returns the max
    |ŝ - s| with RoPE on the content key ("rope_on_content", large: the rotation R_j sits between
    W^UK and c_j and changes with j) and without RoPE ("no_rope", round-off only); "score_scale"
    is max |s| for comparison, "content_shift_change" the change of the true scores when every
    position shifts by 5 (round-off: RoPE scores depend on t - j only). Absorbing with RoPE on k^C
    would need a different folded matrix W^UKᵀ R_(j-t) for every distance: nothing to precompute.
    """
    q = rng.standard_normal((L, d_head))
    c = rng.standard_normal((L, d_c))
    w_uk = rng.standard_normal((d_c, d_head)) / np.sqrt(d_c)
    pos = np.arange(L)
    rq = apply_rope(q, pos, rope_inv_freq(d_head, base))                 # RoPE on the query
    true = rq @ apply_rope(c @ w_uk, pos, rope_inv_freq(d_head, base)).T  # RoPE on k^C = c W^UK
    absorbed = (rq @ w_uk.T) @ c.T                                        # one folded matrix
    plain = (q @ w_uk.T) @ c.T - q @ (c @ w_uk).T                         # no RoPE: exact
    return {"rope_on_content": float(np.abs(absorbed - true).max()),
            "no_rope": float(np.abs(plain).max()),
            "score_scale": float(np.abs(true).max()),
            "content_shift_change": float(np.abs(
                apply_rope(q, pos + 5, rope_inv_freq(d_head, base))
                @ apply_rope(c @ w_uk, pos + 5, rope_inv_freq(d_head, base)).T - true).max())}
