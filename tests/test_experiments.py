"""tinyattn.experiments: the recall-among-distractors task (decoded back, example by example) and
the extrapolation harness's pieces (loss against an independent cross-entropy, configs, entropy)."""
import numpy as np
import pytest

from tinyattn.experiments import distractor_recall
from tinyattn.experiments.extrapolation import (ExtrapolationConfig, attention_entropy, evaluate,
                                                make_model, scaling_config, summary)
from tinyattn.experiments.tasks import recall_vocab


@pytest.mark.parametrize("length,n_pairs", [(20, 3), (64, 4), (9, 2)])
def test_task_decodes_to_its_facts(length, n_pairs):
    K, V, Fl = 5, 6, 7
    x, y = distractor_recall(40, length, np.random.default_rng(length), n_pairs=n_pairs,
                             n_keys=K, n_values=V, n_filler=Fl)
    assert x.shape == y.shape == (40, length) and x.dtype == np.int64
    assert x.max() < recall_vocab(K, V, Fl) and x.min() >= 0
    C = length - 2 * n_pairs
    seq = np.concatenate([x, y[:, -1:]], axis=1)              # the last target is the last token
    v0, c0 = 1 + K, 1 + K + V
    for row, tgt in zip(seq, y):
        ctx = row[:C]
        cards = ctx[(ctx >= c0) & (ctx < c0 + K * V)] - c0
        facts = {int(c) // V: int(c) % V for c in cards}       # key -> value, 0-based
        assert len(cards) == n_pairs == len(facts)             # distinct keys, one card each
        assert row[C] == 0                                     # SEP
        for j in range(n_pairs):
            k, v = row[C + 1 + 2 * j], row[C + 2 + 2 * j]
            assert facts[int(k) - 1] == int(v) - v0            # the answer is the card's value
            assert tgt[C + 1 + 2 * j] == v                     # target t predicts token t + 1
        assert (tgt != -100).sum() == n_pairs


def test_task_seeded_and_errors():
    a = distractor_recall(3, 16, np.random.default_rng(1))
    b = distractor_recall(3, 16, np.random.default_rng(1))
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="n_keys"):
        distractor_recall(2, 32, np.random.default_rng(0), n_pairs=5, n_keys=4)
    with pytest.raises(ValueError, match="context"):
        distractor_recall(2, 10, np.random.default_rng(0), n_pairs=4)
    with pytest.raises(TypeError, match="rng"):
        distractor_recall(2, 16, 0)
    with pytest.raises(ValueError, match="length"):
        distractor_recall(2, 0, np.random.default_rng(0))


CFG = ExtrapolationConfig(train_len=16, d_model=16, n_eval=12, eval_batch=5, seeds=(0,))


def test_evaluate_matches_independent_cross_entropy():
    model = make_model(CFG, "rope", 0)
    got = evaluate(model, CFG, 32)
    rng = np.random.default_rng(CFG.eval_seed + 32)
    nll, right = [], []
    for size in (5, 5, 2):
        x, y = distractor_recall(size, 32, rng, **CFG.task)
        logits = model(x).data.astype(np.float64)
        for b, t in zip(*np.nonzero(y != -100)):
            z = logits[b, t]
            p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            nll.append(-np.log(p[y[b, t]]))
            right.append(z.argmax() == y[b, t])
    assert got["loss"] == pytest.approx(np.mean(nll), rel=1e-6)
    assert got["acc"] == pytest.approx(np.mean(right))


def test_learned_model_has_rows_for_the_longest_test():
    assert make_model(CFG, "learned", 0).max_len == 8 * 16
    assert make_model(CFG, "rope", 0).max_len == 16


def test_scaling_configs():
    assert scaling_config("none", CFG) is None
    assert scaling_config("yarn", CFG) == {"method": "yarn", "factor": 4.0}
    assert scaling_config("yarn_no_temp", CFG)["attention_factor"] == 1.0
    assert scaling_config("dynamic", CFG) == {"method": "dynamic", "factor": 2.0}
    with pytest.raises(ValueError, match="method"):
        scaling_config("grouped", CFG)


def test_attention_entropy_bounds():
    model = make_model(CFG, "nope", 0)
    for L in (16, 64):
        h = attention_entropy(model, CFG, L, n=4)
        assert 0.0 < h <= np.log(L)                           # at most uniform over L keys


def test_summary():
    runs = [{"eval": {"32": {"loss": v, "acc": 0.5}}} for v in (1.0, 2.0, 4.0)]
    assert summary(runs, 32) == (pytest.approx(7 / 3), 1.0, 4.0)
