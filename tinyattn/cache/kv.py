"""A contiguous key/value cache for autoregressive decoding (chapter 08; source text 2.4).

Decoding token t needs the keys and values of tokens 0..t-1 in every layer. They never change
(causal attention: a past token never sees the future), so we store them once instead of
recomputing the whole prefix at every step. Per layer and per named field the cache holds one
preallocated buffer ``(B, max_len, *feature_shape)``; ``length`` counts the tokens stored.

    new tokens t0..t0+L-1  ->  update(layer, k=(B, L, Hkv, d), v=(B, L, Hkv, dv))
                           ->  returns views (B, t0+L, Hkv, d) of everything cached so far
    after the last layer   ->  advance(L)   (length t0 -> t0 + L)

Fields are named by the attention that uses them: ``k``/``v`` for MHA/GQA/MQA, ``c_kv``/``k_rope``
for MLA (DeepSeek-V2 caches only the latent and the shared RoPE key). The cache is for inference:
it stores ndarrays, no gradient flows through it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["KVCache"]


class KVCache:
    """Preallocated per-layer buffers; ``fields`` maps a name to its per-token feature shape.

    n_layers, batch, max_len: ints >= 1. ``fields``: e.g. ``{"k": (Hkv, d), "v": (Hkv, dv)}``.
    Writing past ``max_len`` raises ValueError before anything is written.
    """

    def __init__(self, n_layers: int, batch: int, max_len: int, fields: dict[str, tuple[int, ...]],
                 dtype=np.float32):
        for name, v in (("n_layers", n_layers), ("batch", batch), ("max_len", max_len)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not fields:
            raise ValueError("fields must name at least one cached tensor, e.g. {'k': (H, d), 'v': (H, d)}")
        self.n_layers, self.batch, self.max_len = int(n_layers), int(batch), int(max_len)
        self.fields = {k: tuple(int(s) for s in shape) for k, shape in fields.items()}
        self.dtype = np.dtype(dtype)
        self.buffers = [{k: np.zeros((batch, max_len, *shape), dtype=self.dtype)
                         for k, shape in self.fields.items()} for _ in range(n_layers)]
        self.length = 0                                  # tokens stored (equal in every layer)

    def check_room(self, n_new: int) -> None:
        """Raise ValueError if ``n_new`` more tokens do not fit (call before a forward pass)."""
        if n_new < 1:
            raise ValueError(f"need at least one new token, got {n_new}")
        if self.length + n_new > self.max_len:
            raise ValueError(f"KV cache overflow: it holds {self.length} of max_len={self.max_len} "
                             f"tokens, cannot append {n_new} more (allocate a longer cache with "
                             "model.new_cache(batch, max_len))")

    def update(self, layer: int, **new: np.ndarray) -> dict[str, np.ndarray]:
        """Write ``new[name]: (B, L, *feature_shape)`` at positions [length, length + L) of
        ``layer``; return every field of that layer as a view (B, length + L, *feature_shape).
        Every field of ``self.fields`` must be given, with the same L."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be in [0, {self.n_layers}), got {layer}")
        if set(new) != set(self.fields):
            raise ValueError(f"update needs exactly the fields {sorted(self.fields)}, got {sorted(new)}")
        arrays = {k: np.asarray(getattr(v, "data", v)) for k, v in new.items()}
        L = None
        for k, a in arrays.items():
            want = (self.batch, a.shape[1] if a.ndim > 1 else -1, *self.fields[k])
            if a.shape != want:
                raise ValueError(f"cache field {k!r}: expected (B={self.batch}, L, "
                                 f"*{self.fields[k]}), got shape {a.shape}")
            if L is not None and a.shape[1] != L:
                raise ValueError(f"all fields must add the same number of tokens, got {L} and {a.shape[1]}")
            L = a.shape[1]
        self.check_room(L)
        end = self.length + L
        buf = self.buffers[layer]
        for k, a in arrays.items():
            buf[k][:, self.length:end] = a                # append at the current length
        return {k: buf[k][:, :end] for k in self.fields}

    def layer(self, layer: int):
        """A handle for one layer: ``handle(**new)`` is ``update(layer, **new)`` (what attention calls)."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be in [0, {self.n_layers}), got {layer}")
        return lambda **new: self.update(layer, **new)

    def advance(self, n_new: int) -> None:
        """Mark ``n_new`` tokens as stored (after every layer wrote them)."""
        self.check_room(n_new)
        self.length += int(n_new)

    def nbytes(self) -> int:
        """Bytes of the buffers that hold the ``length`` stored tokens (not the unused tail)."""
        per_token = sum(int(np.prod(s)) for s in self.fields.values()) * self.dtype.itemsize
        return self.n_layers * self.batch * self.length * per_token

    def __repr__(self) -> str:
        return (f"KVCache(n_layers={self.n_layers}, batch={self.batch}, length={self.length}, "
                f"max_len={self.max_len}, fields={self.fields})")
