"""How many bytes a KV cache takes (chapter 08; source text 2.4, 2.5).

    MHA/GQA/MQA:  bytes = 2 · n_layers · n_kv_heads · head_dim · tokens · batch · bytes_per_element
                  (the 2 counts K and V; n_kv_heads = n_heads for MHA, 1 for MQA)
    MLA:          bytes = n_layers · (d_latent + d_rope) · tokens · batch · bytes_per_element
                  (DeepSeek-V2 caches the latent c^KV and the one shared RoPE key k^R)
    sliding window W (Mistral): tokens = min(seq_len, W) (a rolling buffer keeps the last W)

``PUBLISHED`` lists real configurations, each with the document its numbers come from.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["kv_cache_bytes", "mla_cache_bytes", "ModelConfig", "PUBLISHED", "cache_table"]


def _pos(name: str, v, allow_zero: bool = False) -> int:
    lo = 0 if allow_zero else 1
    if isinstance(v, bool) or not isinstance(v, int) and not hasattr(v, "__index__") or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def _tokens(seq_len: int, sliding_window: int | None) -> int:
    seq_len = _pos("seq_len", seq_len, allow_zero=True)
    if sliding_window is None:
        return seq_len
    return min(seq_len, _pos("sliding_window", sliding_window))


def kv_cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, seq_len: int, batch: int = 1,
                   bytes_per_element: int = 2, *, sliding_window: int | None = None) -> int:
    """Bytes of a K and V cache: 2 · n_layers · n_kv_heads · head_dim · tokens · batch · bytes.

    tokens = seq_len, or min(seq_len, sliding_window) with a rolling-buffer cache."""
    for name, v in (("n_layers", n_layers), ("n_kv_heads", n_kv_heads), ("head_dim", head_dim),
                    ("batch", batch), ("bytes_per_element", bytes_per_element)):
        _pos(name, v)
    t = _tokens(seq_len, sliding_window)
    return 2 * n_layers * n_kv_heads * head_dim * t * batch * bytes_per_element


def mla_cache_bytes(n_layers: int, d_latent: int, d_rope: int, seq_len: int, batch: int = 1,
                    bytes_per_element: int = 2) -> int:
    """Bytes of an MLA cache: n_layers · (d_latent + d_rope) · seq_len · batch · bytes
    (no factor 2: keys and values are both rebuilt from the one latent c^KV)."""
    for name, v in (("n_layers", n_layers), ("d_latent", d_latent), ("batch", batch),
                    ("bytes_per_element", bytes_per_element)):
        _pos(name, v)
    _pos("d_rope", d_rope, allow_zero=True)
    return n_layers * (d_latent + d_rope) * _pos("seq_len", seq_len, allow_zero=True) * batch * bytes_per_element


@dataclass(frozen=True)
class ModelConfig:
    """One published model: attention kind and the dimensions that set its cache size."""
    name: str
    kind: str                       # "MHA", "GQA" or "MLA"
    n_layers: int
    n_heads: int
    head_dim: int
    n_kv_heads: int | None = None   # MHA/GQA
    d_latent: int | None = None     # MLA: kv_lora_rank
    d_rope: int | None = None       # MLA: qk_rope_head_dim
    sliding_window: int | None = None
    source: str = ""

    def bytes_per_token(self, bytes_per_element: int = 2) -> int:
        return self.cache_bytes(1, bytes_per_element)

    def cache_bytes(self, seq_len: int, bytes_per_element: int = 2, batch: int = 1) -> int:
        if self.kind == "MLA":
            return mla_cache_bytes(self.n_layers, self.d_latent, self.d_rope, seq_len, batch, bytes_per_element)
        return kv_cache_bytes(self.n_layers, self.n_kv_heads, self.head_dim, seq_len, batch,
                              bytes_per_element, sliding_window=self.sliding_window)


PUBLISHED = (
    ModelConfig("GPT-3 175B", "MHA", 96, 96, 128, n_kv_heads=96,
                source="Brown et al. 2020, arXiv:2005.14165, Table 2.1 (96 layers, 96 heads, d_head 128)"),
    ModelConfig("Llama-2-7B", "MHA", 32, 32, 128, n_kv_heads=32,
                source="Touvron et al. 2023, arXiv:2307.09288; HF meta-llama/Llama-2-7b-hf config.json "
                       "(32 layers, 32 heads, hidden 4096)"),
    ModelConfig("Llama-2-70B", "GQA", 80, 64, 128, n_kv_heads=8,
                source="Touvron et al. 2023, arXiv:2307.09288 (GQA); HF meta-llama/Llama-2-70b-hf config.json "
                       "(80 layers, 64 heads, 8 KV heads, hidden 8192)"),
    ModelConfig("Llama-3-8B", "GQA", 32, 32, 128, n_kv_heads=8,
                source="Llama 3 paper, arXiv:2407.21783, Table 3 (32 layers, 32 heads, 8 KV heads, "
                       "hidden 4096)"),
    ModelConfig("Mistral-7B (window 4096)", "GQA", 32, 32, 128, n_kv_heads=8, sliding_window=4096,
                source="Jiang et al. 2023, arXiv:2310.06825, Table 1 (32 layers, 32 heads, 8 KV heads, "
                       "head_dim 128, window 4096; rolling buffer cache, section 2)"),
    ModelConfig("DeepSeek-V2", "MLA", 60, 128, 128, d_latent=512, d_rope=64,
                source="DeepSeek-AI 2024, arXiv:2405.04434, sections 2.1 and 3.1.2 (60 layers, 128 heads, "
                       "d_h 128, d_c 512, d_h^R 64)"),
)


def cache_table(contexts=(4096, 32768, 131072), bytes_per_element: int = 2, configs=PUBLISHED) -> list[dict]:
    """One row per config: bytes per token, MHA-equivalent ratio and cache bytes at each context."""
    rows = []
    for c in configs:
        mha = kv_cache_bytes(c.n_layers, c.n_heads, c.head_dim, 1, 1, bytes_per_element)
        row = {"model": c.name, "kind": c.kind, "bytes_per_token": c.bytes_per_token(bytes_per_element),
               "vs_mha": mha / c.bytes_per_token(bytes_per_element), "source": c.source}
        for n in contexts:
            row[n] = c.cache_bytes(n, bytes_per_element)
        rows.append(row)
    return rows
