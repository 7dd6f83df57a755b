"""tinyattn.data: toy tasks checked element by element in plain Python; the corpus against its text."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyattn.data import (IGNORE_INDEX, SEP, CharCorpus, associative_recall, copy_task, reverse_task,
                           sequence_accuracy, sort_task, stdlib_text, task_batch_fn)

SETTINGS = settings(deadline=None, max_examples=25)


def _answer_rows(inputs, targets, length):
    """Rebuild (prompt, answer) from the shifted pair with plain Python lists."""
    out = []
    for row_in, row_t in zip(inputs.tolist(), targets.tolist()):
        seq = row_in + [row_t[-1]]                      # the full sequence, length 2L + 1
        assert seq[length] == SEP
        assert row_t[:length] == [IGNORE_INDEX] * length
        assert row_t[length:] == seq[length + 1:]      # scored targets are the next tokens
        out.append((seq[:length], seq[length + 1:]))
    return out


@SETTINGS
@given(n=st.integers(1, 5), length=st.integers(1, 9), vocab=st.integers(2, 30), seed=st.integers(0, 10**6))
def test_copy_reverse_sort_semantics(n, length, vocab, seed):
    for fn, expect in ((copy_task, lambda p: p), (reverse_task, lambda p: p[::-1]), (sort_task, sorted)):
        inputs, targets = fn(n, length, vocab, np.random.default_rng(seed))
        assert inputs.shape == targets.shape == (n, 2 * length)
        assert inputs.dtype == targets.dtype == np.int64
        for prompt, answer in _answer_rows(inputs, targets, length):
            assert all(1 <= t < vocab for t in prompt)
            assert answer == list(expect(prompt))


@SETTINGS
@given(n=st.integers(1, 5), n_pairs=st.integers(1, 6), extra=st.integers(0, 10), seed=st.integers(0, 10**6))
def test_associative_recall_semantics(n, n_pairs, extra, seed):
    vocab = 2 * n_pairs + 1 + extra
    inputs, targets = associative_recall(n, n_pairs, vocab, np.random.default_rng(seed))
    assert inputs.shape == targets.shape == (n, 2 * n_pairs + 2)
    n_keys = (vocab - 1) // 2
    for row_in, row_t in zip(inputs.tolist(), targets.tolist()):
        assert row_t[:-1] == [IGNORE_INDEX] * (len(row_t) - 1)
        keys, values = row_in[0:2 * n_pairs:2], row_in[1:2 * n_pairs:2]
        assert len(set(keys)) == n_pairs and all(1 <= k <= n_keys for k in keys)
        assert all(n_keys < v < vocab for v in values)
        assert row_in[2 * n_pairs] == SEP
        query = row_in[-1]
        assert row_t[-1] == dict(zip(keys, values))[query]


def test_tasks_are_seeded_and_vary():
    a = copy_task(4, 6, 10, np.random.default_rng(3))
    b = copy_task(4, 6, 10, np.random.default_rng(3))
    c = copy_task(4, 6, 10, np.random.default_rng(4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    fn = task_batch_fn("reverse", 3, 5, 8)
    assert fn(np.random.default_rng(0))[0].shape == (3, 10)


def test_task_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="length"):
        copy_task(2, 0, 5, rng)
    with pytest.raises(ValueError, match="vocab"):
        reverse_task(2, 3, 1, rng)
    with pytest.raises(ValueError, match="n_pairs"):
        associative_recall(2, 5, 9, rng)       # only 4 distinct keys
    with pytest.raises(TypeError, match="rng"):
        sort_task(2, 3, 5, 0)
    with pytest.raises(ValueError, match="task"):
        task_batch_fn("shuffle", 1, 1, 5)


def test_sequence_accuracy():
    targets = np.array([[IGNORE_INDEX, 1, 2], [IGNORE_INDEX, 3, 4]])
    preds = np.array([[9, 1, 2], [9, 3, 0]])
    tok, seq = sequence_accuracy(preds, targets)
    assert tok == pytest.approx(3 / 4) and seq == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="shape"):
        sequence_accuracy(preds[:1], targets)


@pytest.fixture(scope="module")
def corpus():
    return CharCorpus(max_chars=50_000)


def test_corpus_is_local_stdlib_and_deterministic(corpus):
    text = stdlib_text(50_000)
    assert text == corpus.text and len(text) == 50_000
    assert "def " in text and "import " in text           # it really is Python source
    assert all(c.isascii() for c in corpus.chars)
    assert corpus.chars == sorted(set(text))
    assert len(corpus.train_data) + len(corpus.val_data) == len(text)


def test_corpus_roundtrip_and_windows(corpus):
    sample = corpus.text[1000:1400]
    assert corpus.decode(corpus.encode(sample)) == sample
    x, y = corpus.batches(np.random.default_rng(1), 5, 32)
    assert x.shape == y.shape == (5, 32)
    train_text = corpus.text[:len(corpus.train_data)]
    for row_x, row_y in zip(x, y):
        sx, sy = corpus.decode(row_x), corpus.decode(row_y)
        assert sx[1:] == sy[:-1]                              # next-character targets
        assert (sx + sy[-1]) in train_text                    # a contiguous window of the train split
    xv, _ = corpus.batches(np.random.default_rng(1), 3, 16, split="val")
    val_text = corpus.text[len(corpus.train_data):]
    assert all(corpus.decode(r) in val_text for r in xv)
    x2, _ = corpus.batches(np.random.default_rng(1), 5, 32)
    assert np.array_equal(x, x2)


def test_corpus_errors(corpus):
    with pytest.raises(ValueError, match="not in the corpus"):
        corpus.encode("\u00e9")
    with pytest.raises(ValueError, match="ids must lie"):
        corpus.decode([corpus.vocab_size])
    with pytest.raises(ValueError, match="split"):
        corpus.batches(np.random.default_rng(0), 2, 8, split="test")
    with pytest.raises(ValueError, match="length"):
        corpus.batches(np.random.default_rng(0), 2, len(corpus.val_data), split="val")
    with pytest.raises(TypeError, match="rng"):
        corpus.batches(0, 2, 8)
    small = CharCorpus("abcabcabcabc", val_fraction=0.25)
    assert small.vocab_size == 3 and small.decode(small.encode("cab")) == "cab"
