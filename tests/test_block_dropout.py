"""Residual dropout in TransformerBlock: active only in train mode, identity in eval mode (equal to
the same block built without dropout), absent when p = 0, and its generator is checkpointed."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.models import TransformerBlock
from tinyattn.checkpoint import _named_generators


def _x(seed=0):
    return ta.Tensor(np.random.default_rng(seed).standard_normal((2, 5, 16)).astype(np.float32))


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_eval_mode_equals_block_without_dropout(norm):
    x = _x()
    plain = TransformerBlock(16, 4, rng=np.random.default_rng(3), norm=norm).eval()
    drop = TransformerBlock(16, 4, rng=np.random.default_rng(3), norm=norm, dropout=0.3,
                            dropout_rng=np.random.default_rng(9)).eval()
    np.testing.assert_array_equal(drop(x).data, plain(x).data)


def test_train_mode_draws_fresh_masks_and_matches_a_manual_composition():
    x = _x(1)
    block = TransformerBlock(16, 4, rng=np.random.default_rng(3), dropout=0.5,
                             dropout_rng=np.random.default_rng(9))
    y1, y2 = block(x).data, block(x).data
    assert not np.allclose(y1, y2), "two training calls must use different dropout masks"
    # the same computation by hand, replaying the generator: masks are 0 or 1/(1-p) = 2
    replay = np.random.default_rng(9)
    a = block.attn(block.ln1(x), is_causal=True).data
    a = a * (replay.random(a.shape) >= 0.5) * 2.0
    h = x.data + a
    m = block.mlp(block.ln2(ta.Tensor(h))).data
    m = m * (replay.random(m.shape) >= 0.5) * 2.0
    np.testing.assert_allclose(y1, h + m, rtol=1e-5, atol=1e-6)


def test_no_dropout_module_when_p_is_zero_and_generator_is_checkpointed():
    assert TransformerBlock(16, 4).drop is None
    assert not list(_named_generators(TransformerBlock(16, 4)))
    names = [n for n, _ in _named_generators(TransformerBlock(16, 4, dropout=0.1))]
    assert names == ["drop.rng"]
    with pytest.raises(ValueError, match="p must be in"):
        TransformerBlock(16, 4, dropout=1.0)
