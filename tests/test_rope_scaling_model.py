"""TransformerLM's RoPE scaling config (chapter 05): PI equals the float64 reference forward at
positions m / s; YaRN's attention factor multiplies the logits by its square; dynamic NTK is plain
RoPE up to the training length; the weights are never touched; bad configs raise."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyattn.models import TransformerLM

sys.path.insert(0, str(Path(__file__).parent))
from test_models import reference_logits  # noqa: E402  (independent float64 forward)

L_TRAIN = 12


def _model(positional="rope", **kw):
    return TransformerLM(23, 16, 2, 2, L_TRAIN, positional=positional, rng=np.random.default_rng(3), **kw)


def _tokens(L, seed=0):
    return np.random.default_rng(seed).integers(0, 23, (2, L))


@pytest.mark.parametrize("s", [2.0, 4.0])
def test_linear_scaling_equals_reference_at_interpolated_positions(s):
    model = _model()
    tokens = _tokens(3 * L_TRAIN)
    model.set_rope_scaling({"method": "linear", "factor": s})
    np.testing.assert_allclose(model(tokens).data, reference_logits(model, tokens, rope_pos_scale=1 / s),
                               rtol=2e-4, atol=2e-4)


def test_constructor_config_equals_set_later_and_none_restores():
    tokens = _tokens(2 * L_TRAIN)
    a = _model(rope_scaling={"method": "yarn", "factor": 4.0})
    b = _model()
    plain = b(tokens).data
    b.set_rope_scaling({"method": "yarn", "factor": 4.0})
    np.testing.assert_array_equal(a(tokens).data, b(tokens).data)
    assert not np.allclose(b(tokens).data, plain, atol=1e-3)
    b.set_rope_scaling(None)
    np.testing.assert_array_equal(b(tokens).data, plain)


def test_yarn_attention_factor_scales_logits_by_its_square():
    # layer 0's attention scores are s_ij; with factor f on cos and sin (q and k) they are f^2 s_ij.
    # So P_f = softmax(f^2 log P_1) row by row (the row constant of log P_1 cancels).
    s = 8.0
    f = 0.1 * math.log(s) + 1                                   # 1.2079
    tokens = _tokens(2 * L_TRAIN, seed=1)
    model = _model()
    model.set_rope_scaling({"method": "yarn", "factor": s, "attention_factor": 1.0})
    p1 = model.attention_maps(tokens)[0].astype(np.float64)
    model.set_rope_scaling({"method": "yarn", "factor": s})
    assert model.pos.attention_factor == pytest.approx(f)
    pf = model.attention_maps(tokens)[0].astype(np.float64)
    causal = np.tril(np.ones(p1.shape[-2:], dtype=bool))
    z = np.where(causal, f * f * np.log(np.where(causal, p1, 1.0)), -np.inf)
    want = np.exp(z - z.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(pf, want, atol=2e-5)
    assert np.abs(pf - p1).max() > 1e-3                        # the factor really changed something


def test_dynamic_ntk_is_plain_rope_up_to_training_length():
    model, plain = _model(), _model()
    model.set_rope_scaling({"method": "dynamic", "factor": 2.0})
    for L in (5, L_TRAIN):
        np.testing.assert_array_equal(model(_tokens(L)).data, plain(_tokens(L)).data)
    L = 3 * L_TRAIN
    assert not np.allclose(model(_tokens(L)).data, plain(_tokens(L)).data, atol=1e-3)
    inv, _ = model.pos.rope_frequencies(L)
    d = 8
    base = 10000.0 * (2.0 * L / L_TRAIN - 1.0) ** (d / (d - 2))  # HF dynamic, factor 2
    np.testing.assert_allclose(inv, base ** (-np.arange(0, d, 2) / d), rtol=1e-12)


def test_weights_untouched_and_original_length_default():
    model = _model()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    model.set_rope_scaling({"method": "ntk", "factor": 4.0})
    assert model.pos.rope_scaling["original_max_position"] == L_TRAIN
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_errors_keep_previous_state():
    model = _model()
    model.set_rope_scaling({"method": "linear", "factor": 2.0})
    with pytest.raises(ValueError, match="method"):
        model.set_rope_scaling({"method": "cubic", "factor": 2.0})
    with pytest.raises(ValueError, match="factor"):
        model.set_rope_scaling({"method": "yarn"})
    with pytest.raises(TypeError, match="beta_fast"):
        model.set_rope_scaling({"method": "ntk", "factor": 2.0, "beta_fast": 8})
    assert model.pos.rope_scaling["method"] == "linear"
    with pytest.raises(ValueError, match="positional='rope'"):
        _model("alibi").set_rope_scaling({"method": "linear", "factor": 2.0})
