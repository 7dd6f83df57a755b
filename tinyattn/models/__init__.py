"""Models (layer 4): the pre-norm Transformer block and a decoder-only language model (chapter 04).

``TransformerLM(vocab_size, d_model, n_layers, n_heads, max_len, positional="rope", n_kv_heads=None)``
maps tokens int (B, L) to logits (B, L, vocab); ``generate`` samples; ``attention_maps`` returns
each layer's attention probabilities for figures. ``mha_to_gqa`` converts a trained MHA model to GQA
by mean-pooling KV heads (chapter 08).
"""
from .block import MLP, TransformerBlock
from .convert import mean_pool_kv_heads, mha_to_gqa
from .lm import TransformerLM
from .positions import POSITIONAL, PositionalScheme
from .sampling import sample_next, sampling_probs, top_k_filter, top_p_filter

__all__ = ["MLP", "TransformerBlock", "TransformerLM", "POSITIONAL", "PositionalScheme",
           "sample_next", "sampling_probs", "top_k_filter", "top_p_filter", "mha_to_gqa", "mean_pool_kv_heads"]
