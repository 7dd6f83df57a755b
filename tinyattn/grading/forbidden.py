"""Which library functions a graded exercise may NOT call: the library's own implementation of the
very thing the exercise asks for (calling it would score without doing the exercise).

``FORBIDDEN[module][exercise function] = [dotted names]``. Everything else in the library stays
allowed (ch02's mha_forward may use the library's attention; ch08's rope_for_decode may use
apply_rope, as the solutions do). The worker resolves each name to its code object and, while student
code runs, a profile hook watches for calls to those code objects made from inside that exercise
(:mod:`tinyattn.grading.guard`); such a call fails the test and is flagged in the report. The solutions
module itself needs no entry: the worker cannot read solutions/ at all.

Rule for adding entries: never list something the solution of that exercise calls (the regression
suite grades the solutions with this map active, so a wrong entry shows up as lost points).
"""
from __future__ import annotations

_SDPA = "tinyattn.functional.attention.scaled_dot_product_attention"
_SOFTMAX = "tinyattn.functional.activations.softmax"

FORBIDDEN: dict[str, dict[str, list[str]]] = {
    "ch00_tensor_core": {
        "unbroadcast": ["tinyattn.ops_math.unbroadcast"],
        "topological_order": ["tinyattn.autograd.topological_order"],
        "backward": ["tinyattn.autograd.run_backward"],
        "numerical_gradient": ["tinyattn.autograd.gradcheck"],
    },
    "ch01_attention": {
        "softmax": [_SOFTMAX],
        "causal_mask": ["tinyattn.functional.attention.causal_mask", "tinyattn.sparse.masks.causal_mask"],
        "attention": [_SDPA],
        "attention_backward": [_SDPA, "tinyattn.autograd.run_backward"],
    },
    "ch02_multi_head": {
        "split_heads": ["tinyattn.attention.mha.split_heads"],
        "merge_heads": ["tinyattn.attention.mha.merge_heads"],
        "kv_head_for_query_head": ["tinyattn.attention.mha.kv_head_for_query_head"],
        "mha_forward": ["tinyattn.attention.mha.MultiHeadAttention.forward"],
    },
    "ch03_positional": {
        "sinusoidal_table": ["tinyattn.positional.sinusoidal.sinusoidal",
                             "tinyattn.positional.sinusoidal.sinusoidal_at"],
        "rope_interleaved": ["tinyattn.positional.rope.apply_rope"],
        "rope_half": ["tinyattn.positional.rope.apply_rope"],
        "alibi_slopes": ["tinyattn.positional.alibi.alibi_slopes"],
    },
    "ch04_transformer": {
        "layer_norm": ["tinyattn.functional.normalization.layer_norm"],
        "gelu": ["tinyattn.functional.activations.gelu"],
        "softmax": [_SOFTMAX],
        "prenorm_block_forward": ["tinyattn.models.block.TransformerBlock.forward"],
        "causal_lm_loss": ["tinyattn.functional.losses.cross_entropy"],
        "sampling_distribution": ["tinyattn.models.sampling.sampling_probs"],
        "sample_token": ["tinyattn.models.sampling.sample_next"],
    },
    "ch05_length_extrapolation": {
        name: ["tinyattn.positional.scaling.scaled_rope"]
        for name in ("pi_inv_freq", "ntk_inv_freq", "yarn_inv_freq", "dynamic_ntk_inv_freq")
    },
    "ch06_flash": {
        "classify_tiles": ["tinyattn.flash.forward.classify_tiles"],
        "backward_tile": ["tinyattn.flash.backward.flash_attention_backward"],
    },
    "ch10_sparse": {
        "sliding_window_mask": ["tinyattn.sparse.masks.sliding_window_mask"],
        "bigbird_block_mask": ["tinyattn.sparse.masks.bigbird_mask"],
        "block_sparse_attention": ["tinyattn.sparse.block_sparse.block_sparse_attention"],
    },
    "ch11_linear": {
        "elu1": ["tinyattn.linear.feature_maps.elu1"],
        "causal_linear_attention": ["tinyattn.linear.linear_attention.linear_attention"],
        "favor_features": ["tinyattn.linear.feature_maps.favor_features"],
    },
    "ch12_distributed": {
        "merge_lse": ["tinyattn.distributed.local.merge_lse"],
        "ring_step": ["tinyattn.distributed.simulate.ring_attention"],
    },
}


def resolve(dotted: str):
    """The code object of ``pkg.module.func`` or ``pkg.module.Class.method`` (None if it does not exist)."""
    import importlib
    import inspect
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        obj = inspect.unwrap(obj)
        return getattr(obj, "__code__", None)
    return None
