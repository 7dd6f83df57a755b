# GENERATED from solutions/ch04_transformer.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
"""Chapter 04 exercises: the Transformer block and the language-model loss, in plain NumPy.

Exercise 04.1  prenorm_block_forward   one pre-norm decoder block (causal attention + MLP)
Exercise 04.2  causal_lm_loss          next-token cross-entropy with the shift and ignored positions
Exercise 04.3  lm_parameter_count      how many parameters a decoder-only LM has
Exercise 04.4  sampling_distribution   temperature, top-k and top-p (nucleus) applied to logits
Exercise 04.5  sample_token            one draw per row from that distribution, given uniforms u

Helpers ``layer_norm``, ``gelu`` and ``softmax`` are given (they are not exercises).
Conventions: a weight matrix W maps row vectors, ``y = x @ W + b``; W has shape (d_in, d_out).
"""
from __future__ import annotations

import numpy as np


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """x (..., d) -> (x - mean) / sqrt(var + eps) * gamma + beta over the last axis (biased var)."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def softmax(s: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (-inf entries get probability 0)."""
    s = s - s.max(axis=axis, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=axis, keepdims=True)


def prenorm_block_forward(x: np.ndarray, p: dict, n_heads: int) -> np.ndarray:
    """One pre-norm decoder block with causal multi-head self-attention.

    x: (B, L, d). p: dict of arrays
      ln1_g, ln1_b, ln2_g, ln2_b: (d,)        LayerNorm gains and biases (eps = 1e-5)
      Wq, Wk, Wv, Wo: (d, d)                  attention projections, no biases
      W1: (d, 4d), b1: (4d,), W2: (4d, d), b2: (d,)   the MLP
    n_heads: H, with d % H == 0; head h uses columns [h*d_h, (h+1)*d_h) of Wq, Wk, Wv (d_h = d/H).
    Returns y: (B, L, d) with
      h = x + Concat_h(softmax(Q_h K_h^T / sqrt(d_h) + causal) V_h) Wo,   Q = LN1(x) Wq, ...
      y = h + gelu(LN2(h) W1 + b1) W2 + b2
    where "causal" sets the score of every key j > i to -inf (query i sees keys 0..i).
    """
    # HINT: normalise the INPUT of the sublayer (pre-norm); the residual adds the raw x back
    # HINT: reshape (B, L, d) -> (B, L, H, d_h) -> transpose to (B, H, L, d_h)
    # HINT: np.triu(np.ones((L, L), bool), k=1) marks the future keys
    raise NotImplementedError("Exercise 04.1: prenorm_block_forward")


def causal_lm_loss(logits: np.ndarray, tokens: np.ndarray, ignore_index: int = -100) -> float:
    """Mean next-token cross-entropy of a causal LM.

    logits: (B, L, V), the model's output for input ``tokens`` (B, L) (ints). Position t predicts
    token t + 1, so the loss uses ``logits[:, :-1]`` against ``tokens[:, 1:]``; target entries equal
    to ``ignore_index`` are skipped. Returns the mean of -log softmax(logits[b, t])[tokens[b, t+1]]
    over the scored pairs, as a Python float. Must stay finite for logits as large as +-1e4.
    Raises ValueError if no pair is scored.
    """
    # HINT: shift first: predictions from positions 0..L-2, targets from positions 1..L-1
    # HINT: log softmax = s - max - log(sum(exp(s - max))) never overflows
    raise NotImplementedError("Exercise 04.2: causal_lm_loss")


def lm_parameter_count(vocab_size: int, d_model: int, n_layers: int, d_ff: int | None = None,
                       tie_weights: bool = False) -> int:
    """Parameters of ``tinyattn.models.TransformerLM(..., positional="rope")`` (RoPE adds none).

    Per block: two LayerNorms (gain + bias each), Wq Wk Wv Wo (d x d, no bias), MLP W1 (d x d_ff)
    + b1 + W2 (d_ff x d) + b2, with d_ff = 4 d by default. Plus the token embedding (V x d), the
    final LayerNorm, and an output head (d x V, no bias) unless tie_weights.
    """
    # HINT: the embedding is always there; the head only when the weights are not tied
    raise NotImplementedError("Exercise 04.3: lm_parameter_count")


def sampling_distribution(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                          top_p: float | None = None) -> np.ndarray:
    """The next-token distribution a sampler draws from. logits: (B, V) floats (may hold -inf for
    banned tokens) -> probabilities (B, V), each row summing to 1.

    Applied in this order: temperature (T > 0 divides the logits; T == 0 returns the one-hot of
    each row's argmax); top_k (None = off): keep the k largest logits of each row, ties at the
    k-th value all kept; top_p (None = off, else 0 < p <= 1): of what is left, keep the most
    probable tokens (ranked by probability, descending, ties by lower index) up to and including
    the first one at which their total probability reaches p. Dropped tokens get probability 0.
    """
    # HINT: np.sort(z, axis=-1)[:, -k] is the k-th largest value of each row
    # HINT: sort each row descending (np.argsort(-probs, kind="stable")), then compare the mass
    # HINT: ranked BEFORE each token with p; undo the sort with np.put_along_axis
    raise NotImplementedError("Exercise 04.4: sampling_distribution")


def sample_token(logits: np.ndarray, u: np.ndarray, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """Draw one token per row: logits (B, V), u (B,) uniform numbers in [0, 1) -> int64 (B,).

    Row b returns the smallest index i whose cumulative probability (under
    ``sampling_distribution(logits, temperature, top_k, top_p)``) is strictly greater than u[b].
    A token of probability 0 is never returned, whatever u is. temperature == 0 is greedy argmax.
    """
    # HINT: counting the entries with cdf <= u gives the first index with cdf > u
    raise NotImplementedError("Exercise 04.5: sample_token")
