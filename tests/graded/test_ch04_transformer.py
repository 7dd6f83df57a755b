"""Graded tests for chapter 04 (the Transformer block, the LM loss, parameter counting): compare
with tinyattn's modules on fresh random inputs, plus the properties that define each one."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn import functional as F
from tinyattn.models import TransformerBlock, TransformerLM

MOD = "ch04_transformer"


def _rng():
    return np.random.default_rng()                  # fresh inputs each run


def _block_and_params(rng, d, H):
    """A tinyattn block with random (not default) weights, and the same weights as the exercise's dict."""
    block = TransformerBlock(d, H, rng=rng)
    for p in block.parameters():
        p.data[...] = (rng.standard_normal(p.shape) * 0.3 + (1.0 if p.ndim == 1 else 0.0)).astype(p.dtype)
    a, m = block.attn, block.mlp
    p = {"ln1_g": block.ln1.weight, "ln1_b": block.ln1.bias, "ln2_g": block.ln2.weight,
         "ln2_b": block.ln2.bias, "Wq": a.q_proj.weight, "Wk": a.k_proj.weight, "Wv": a.v_proj.weight,
         "Wo": a.o_proj.weight, "W1": m.fc1.weight, "b1": m.fc1.bias, "W2": m.fc2.weight, "b2": m.fc2.bias}
    return block, {k: v.data.astype(np.float64) for k, v in p.items()}


@pytest.mark.points(4)
def test_prenorm_block_matches_library(impl):
    ex = impl(MOD)
    rng = _rng()
    H = int(rng.choice([1, 2, 4]))
    d, B, L = H * int(rng.integers(2, 9)), int(rng.integers(1, 4)), int(rng.integers(1, 12))
    block, params = _block_and_params(rng, d, H)
    x = rng.standard_normal((B, L, d))
    got = np.asarray(ex.prenorm_block_forward(x, params, H))
    assert got.shape == (B, L, d)
    want = block(ta.Tensor(x.astype(np.float32)), is_causal=True).data
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.points(2)
def test_prenorm_block_is_causal_and_residual(impl):
    ex = impl(MOD)
    rng = _rng()
    d, H, L = 8, 2, 6
    _, params = _block_and_params(rng, d, H)
    x = rng.standard_normal((1, L, d))
    y = np.asarray(ex.prenorm_block_forward(x, params, H))
    x2 = x.copy()
    x2[0, 3:] += rng.standard_normal((L - 3, d))        # change the future only
    y2 = np.asarray(ex.prenorm_block_forward(x2, params, H))
    np.testing.assert_allclose(y[0, :3], y2[0, :3], atol=1e-10)
    assert np.abs(y[0, 3:] - y2[0, 3:]).max() > 1e-6
    zero = {k: (np.zeros_like(v) if k in ("Wo", "W2", "b2") else v) for k, v in params.items()}
    np.testing.assert_allclose(ex.prenorm_block_forward(x, zero, H), x, atol=1e-12)  # sublayers off: identity


@pytest.mark.points(2)
def test_causal_lm_loss_matches_library(impl):
    ex = impl(MOD)
    rng = _rng()
    B, L, V = int(rng.integers(1, 5)), int(rng.integers(2, 12)), int(rng.integers(2, 30))
    logits = rng.standard_normal((B, L, V)) * 3
    tokens = rng.integers(0, V, size=(B, L))
    if B * (L - 1) > 1:
        tokens[0, 1] = -100                              # one ignored target (others remain)
    got = ex.causal_lm_loss(logits, tokens)
    keep = tokens[:, 1:].reshape(-1)
    want = F.cross_entropy(logits[:, :-1].reshape(-1, V), keep, ignore_index=-100).data
    assert isinstance(got, float)
    assert got == pytest.approx(float(want), rel=1e-6, abs=1e-9)


@pytest.mark.points(1)
def test_causal_lm_loss_edge_cases(impl):
    ex = impl(MOD)
    V = 5
    tokens = np.array([[0, 3, 1]])
    sure = np.full((1, 3, V), -1e4)
    sure[0, 0, 3] = sure[0, 1, 1] = 1e4                  # certain and right: loss 0, finite
    assert ex.causal_lm_loss(sure, tokens) == pytest.approx(0.0, abs=1e-9)
    wrong = np.full((1, 3, V), -1e4)
    wrong[0, 0, 0] = wrong[0, 1, 0] = 1e4                # certain and wrong: loss 2e4, finite
    assert ex.causal_lm_loss(wrong, tokens) == pytest.approx(2e4, rel=1e-9)
    uniform = np.zeros((2, 4, V))
    assert ex.causal_lm_loss(uniform, np.zeros((2, 4), dtype=int)) == pytest.approx(np.log(V))
    with pytest.raises(ValueError):
        ex.causal_lm_loss(uniform, np.full((2, 4), -100))


@pytest.mark.points(1)
def test_lm_parameter_count_matches_model(impl):
    ex = impl(MOD)
    rng = _rng()
    for _ in range(3):
        H = int(rng.choice([1, 2, 4]))
        V, d, n = int(rng.integers(2, 60)), H * int(rng.integers(2, 9)), int(rng.integers(1, 4))  # RoPE: d_head >= 2
        d_ff = None if rng.random() < 0.5 else int(rng.integers(1, 40))
        tie = bool(rng.random() < 0.5)
        model = TransformerLM(V, d, n, H, 16, d_ff=d_ff, tie_weights=tie)
        assert ex.lm_parameter_count(V, d, n, d_ff=d_ff, tie_weights=tie) == model.num_parameters()
