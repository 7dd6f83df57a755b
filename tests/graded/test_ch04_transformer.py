"""Graded tests for chapter 04 (the Transformer block, the LM loss, parameter counting): compare with
tinyattn's modules (run in float64), plus the properties that define each one.

Inputs are deterministic (``np.random.default_rng(SEED)``, the seed is printed on failure). The block is
always multi-head (H >= 2, so scaling by sqrt(d_model) or ignoring n_heads cannot pass), L != d, and
``ignore_index``, ``d_ff`` and ``tie_weights`` are varied from their defaults.
"""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn import functional as F
from tinyattn.grading.check import assert_close, assert_shape, check
from tinyattn.models import TransformerBlock, TransformerLM

MOD = "ch04_transformer"


def _block_and_params(rng, d, H):
    """A float64 tinyattn block with random (not default) weights, and the same weights as the exercise's dict."""
    block = TransformerBlock(d, H, rng=rng)
    for p in block.parameters():
        p.data = rng.standard_normal(p.shape) * 0.3 + (1.0 if p.ndim == 1 else 0.0)
    a, m = block.attn, block.mlp
    p = {"ln1_g": block.ln1.weight, "ln1_b": block.ln1.bias, "ln2_g": block.ln2.weight,
         "ln2_b": block.ln2.bias, "Wq": a.q_proj.weight, "Wk": a.k_proj.weight, "Wv": a.v_proj.weight,
         "Wo": a.o_proj.weight, "W1": m.fc1.weight, "b1": m.fc1.bias, "W2": m.fc2.weight, "b2": m.fc2.bias}
    return block, {k: np.array(v.data, dtype=np.float64) for k, v in p.items()}


# (n_heads, d_head, B, L): d_model = n_heads * d_head; H >= 2 and d_head != d_model always
BLOCK_CONFIGS = [(2, 3, 2, 5), (4, 2, 1, 7), (3, 4, 2, 9)]


@pytest.mark.points(4)
def test_prenorm_block_matches_library(impl):
    ex = impl(MOD)
    SEED = 1401
    rng = np.random.default_rng(SEED)
    for H, dh, B, L in BLOCK_CONFIGS:
        d = H * dh
        block, params = _block_and_params(rng, d, H)
        x = rng.standard_normal((B, L, d))
        name = f"prenorm_block_forward(x ({B}, {L}, {d}), params, n_heads={H})"
        got = assert_shape(name, ex.prenorm_block_forward(x, params, H), (B, L, d), seed=SEED)
        want = block(ta.Tensor(x), is_causal=True).data
        assert_close(name, got, want, seed=SEED, atol=1e-9, rtol=1e-9)


@pytest.mark.points(2)
def test_prenorm_block_is_causal_and_residual(impl):
    ex = impl(MOD)
    SEED = 1402
    rng = np.random.default_rng(SEED)
    d, H, L = 8, 2, 6
    _, params = _block_and_params(rng, d, H)
    x = rng.standard_normal((1, L, d))
    y = np.asarray(ex.prenorm_block_forward(x, params, H))
    x2 = x.copy()
    x2[0, 3:] += rng.standard_normal((L - 3, d))        # change the future only
    y2 = np.asarray(ex.prenorm_block_forward(x2, params, H))
    assert_close("outputs at positions 0..2 after changing the inputs at positions 3..5 (causality)",
                 y2[0, :3], y[0, :3], seed=SEED, atol=1e-10)
    check(np.abs(y[0, 3:] - y2[0, 3:]).max() > 1e-6, "prenorm_block_forward",
          "changing inputs 3..5 must change outputs 3..5", seed=SEED)
    zero = {k: (np.zeros_like(v) if k in ("Wo", "W2", "b2") else v) for k, v in params.items()}
    assert_close("prenorm_block_forward with Wo, W2, b2 = 0 (sublayers off: the residual path is the identity)",
                 ex.prenorm_block_forward(x, zero, H), x, seed=SEED, atol=1e-12)


def _lib_loss(logits, tokens, ignore_index):
    V = logits.shape[-1]
    return float(F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1),
                                 ignore_index=ignore_index).data)


@pytest.mark.points(2)
def test_causal_lm_loss_matches_library(impl):
    ex = impl(MOD)
    SEED = 1403
    rng = np.random.default_rng(SEED)
    B, L, V = 3, 6, 11
    logits = rng.standard_normal((B, L, V)) * 3
    tokens = rng.integers(0, V, size=(B, L))
    tokens[0, 1] = tokens[2, 4] = -100                 # two ignored targets (others remain)
    name = f"causal_lm_loss(logits ({B}, {L}, {V}), tokens with two -100 targets)"
    got = ex.causal_lm_loss(logits, tokens)
    check(isinstance(got, float), name, f"must return a Python float, got {type(got).__name__}", seed=SEED)
    assert_close(name, got, _lib_loss(logits, tokens, -100), seed=SEED, rtol=1e-9, atol=1e-12)


@pytest.mark.points(1)
def test_causal_lm_loss_uses_ignore_index(impl):
    ex = impl(MOD)
    SEED = 1404
    rng = np.random.default_rng(SEED)
    B, L, V = 2, 7, 9
    logits = rng.standard_normal((B, L, V)) * 2
    tokens = rng.integers(0, V, size=(B, L))
    tokens[0, 2] = tokens[1, 5] = -1                   # padding id -1, not the default -100
    assert_close("causal_lm_loss(logits, tokens with two -1 targets, ignore_index=-1)",
                 ex.causal_lm_loss(logits, tokens, ignore_index=-1), _lib_loss(logits, tokens, -1),
                 seed=SEED, rtol=1e-9, atol=1e-12)
    tokens = rng.integers(0, V, size=(B, L))
    tokens[:, 3] = 4                                    # a real token id used as the ignored one
    assert_close("causal_lm_loss(logits, tokens, ignore_index=4)", ex.causal_lm_loss(logits, tokens, ignore_index=4),
                 _lib_loss(logits, tokens, 4), seed=SEED, rtol=1e-9, atol=1e-12)


@pytest.mark.points(1)
def test_causal_lm_loss_edge_cases(impl):
    ex = impl(MOD)
    V = 5
    tokens = np.array([[0, 3, 1]])
    sure = np.full((1, 3, V), -1e4)
    sure[0, 0, 3] = sure[0, 1, 1] = 1e4                  # certain and right: loss 0, finite
    assert_close("causal_lm_loss, certain and right (logits +-1e4)", ex.causal_lm_loss(sure, tokens), 0.0, atol=1e-9)
    wrong = np.full((1, 3, V), -1e4)
    wrong[0, 0, 0] = wrong[0, 1, 0] = 1e4                # certain and wrong: loss 2e4, finite
    assert_close("causal_lm_loss, certain and wrong (logits +-1e4)", ex.causal_lm_loss(wrong, tokens), 2e4,
                 rtol=1e-9)
    uniform = np.zeros((2, 4, V))
    assert_close(f"causal_lm_loss of uniform logits over V={V} (= ln V)",
                 ex.causal_lm_loss(uniform, np.zeros((2, 4), dtype=int)), np.log(V), rtol=1e-9)
    with pytest.raises(ValueError):
        ex.causal_lm_loss(uniform, np.full((2, 4), -100))


# (vocab, d_model, n_layers, n_heads, d_ff, tie_weights): every argument away from its default somewhere
COUNT_CONFIGS = [(37, 12, 2, 3, None, False), (50, 8, 3, 2, 20, False), (23, 16, 1, 4, None, True),
                 (41, 6, 2, 2, 9, True)]


@pytest.mark.points(1)
def test_lm_parameter_count_matches_model(impl):
    ex = impl(MOD)
    for V, d, n, H, d_ff, tie in COUNT_CONFIGS:
        model = TransformerLM(V, d, n, H, 16, d_ff=d_ff, tie_weights=tie)
        assert_close(f"lm_parameter_count({V}, {d}, {n}, d_ff={d_ff}, tie_weights={tie})",
                     ex.lm_parameter_count(V, d, n, d_ff=d_ff, tie_weights=tie), model.num_parameters(), rtol=0)
