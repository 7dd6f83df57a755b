"""tinyattn.linear: causal/recurrent/parallel forms agree, FAVOR+ is unbiased with variance ~ 1/m,
Linformer and the delta rule match closed forms, bad input raises."""
import math

import numpy as np
import pytest

from tinyattn import functional as F
from tinyattn import linear as LA
from tinyattn.tensor import Tensor


def elu1_ref(x):
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))


def quadratic_linear(q, k, v, causal):
    """Independent O(N^2) reference: weights phi(q_i)^T phi(k_j), masked, row-normalised."""
    a = elu1_ref(q) @ np.swapaxes(elu1_ref(k), -1, -2)
    if causal:
        a = a * np.tril(np.ones(a.shape[-2:]))
    return a @ v / a.sum(-1, keepdims=True)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_linear_attention_matches_quadratic_form(causal, chunk):
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 3, 29, 6)), rng.standard_normal((2, 3, 29, 6)), rng.standard_normal((2, 3, 29, 5))
    got = LA.linear_attention(q, k, v, causal=causal, chunk=chunk)
    np.testing.assert_allclose(got, quadratic_linear(q, k, v, causal), rtol=1e-11, atol=1e-12)


def test_recurrent_equals_parallel_and_state_carries():
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((2, 40, 4)), rng.standard_normal((2, 40, 4)), rng.standard_normal((2, 40, 3))
    rec, (S, z) = LA.linear_attention_recurrent(q, k, v)
    np.testing.assert_allclose(rec, LA.linear_attention(q, k, v, causal=True, chunk=16), rtol=1e-11)
    assert S.shape == (2, 4, 3) and z.shape == (2, 4)            # O(1) state: independent of L
    a, st = LA.linear_attention_recurrent(q[:, :25], k[:, :25], v[:, :25])
    b, _ = LA.linear_attention_recurrent(q[:, 25:], k[:, 25:], v[:, 25:], state=st)
    np.testing.assert_allclose(np.concatenate([a, b], 1), rec, rtol=1e-11)


def test_relu_zero_normaliser_gives_zero_not_nan():
    q = -np.ones((3, 4))                                       # relu(q) = 0: no weight anywhere
    out = LA.linear_attention(q, np.ones((3, 4)), np.ones((3, 2)), feature_map="relu")
    assert np.all(out == 0)


def test_favor_unbiased_and_variance_one_over_m():
    rng = np.random.default_rng(2)
    d = 8
    q, k = 0.5 * rng.standard_normal(d), 0.5 * rng.standard_normal(d)
    exact = math.exp(q @ k / math.sqrt(d))
    for m, reps in ((16, 3000), (64, 3000)):
        est = np.array([LA.favor_kernel_estimate(q[None], k[None], LA.gaussian_features_matrix(m, d, rng, orthogonal=False))[0, 0]
                        for _ in range(reps)])
        se = est.std(ddof=1) / math.sqrt(reps)
        assert abs(est.mean() - exact) < 4 * se, (m, est.mean(), exact, se)     # unbiased within 4 sigma
        if m == 16:
            var16 = est.var(ddof=1)
        else:
            ratio = var16 / est.var(ddof=1)                  # variance falls as 1/m: 64/16 = 4
            assert 3.0 < ratio < 5.3, ratio
    # closed form of the iid variance: Var = (exp(2|qb+kb|^2) ... ) / m; check m=64 against it
    u = (q + k) / d ** 0.25
    a = math.exp(-(q @ q + k @ k) / math.sqrt(d))            # (exp(-|qb|^2/2 - |kb|^2/2))^2
    var_one = a * math.exp(2 * u @ u) - exact ** 2           # Var of one feature product
    assert abs(est.var(ddof=1) - var_one / 64) < 0.15 * var_one / 64


def test_orthogonal_rows_and_lower_variance():
    rng = np.random.default_rng(3)
    W = LA.gaussian_features_matrix(20, 8, rng)
    blk = W[:8] / np.linalg.norm(W[:8], axis=1, keepdims=True)
    np.testing.assert_allclose(blk @ blk.T, np.eye(8), atol=1e-12)
    d = 16
    q, k = 0.6 * rng.standard_normal(d), 0.6 * rng.standard_normal(d)
    ests = {o: np.array([LA.favor_kernel_estimate(q[None], k[None], LA.gaussian_features_matrix(d, d, rng, o))[0, 0]
                         for _ in range(2000)]) for o in (True, False)}
    exact = math.exp(q @ k / math.sqrt(d))
    se = ests[True].std(ddof=1) / math.sqrt(2000)
    assert abs(ests[True].mean() - exact) < 4 * se                    # orthogonal is unbiased too
    assert ests[True].var() < ests[False].var()


def test_source_text_map_is_biased_by_the_closed_form_factor():
    rng = np.random.default_rng(4)
    d, m = 4, 200000
    q, k = 0.7 * rng.standard_normal(d), 0.7 * rng.standard_normal(d)
    W = rng.standard_normal((m, d))
    est = (LA.source_text_features(q[None], W) @ LA.source_text_features(k[None], W).T)[0, 0]
    qb, kb = q / d ** 0.25, k / d ** 0.25
    biased_limit = math.exp(qb @ kb + qb @ qb / 2 + kb @ kb / 2)
    assert abs(est / biased_limit - 1) < 0.05
    assert abs(est / math.exp(qb @ kb) - 1) > 0.3                     # far from the softmax kernel


def test_performer_approaches_softmax_attention():
    rng = np.random.default_rng(5)
    L, d = 32, 8
    q, k, v = (0.5 * rng.standard_normal((2, L, d)) for _ in range(3))
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(d)
    p = np.exp(s - s.max(-1, keepdims=True))
    exact = p / p.sum(-1, keepdims=True) @ v
    errs = [np.abs(LA.performer_attention(q, k, v, m, np.random.default_rng(6)) - exact).mean() for m in (8, 512)]
    assert errs[1] < errs[0] / 3
    # causal form equals the masked quadratic estimate with the same W
    W = LA.gaussian_features_matrix(64, d, np.random.default_rng(7))
    fq, fk = LA.favor_features(q, W), LA.favor_features(k, W)
    a = np.tril(fq @ np.swapaxes(fk, -1, -2))
    np.testing.assert_allclose(LA.performer_attention(q, k, v, 64, None, causal=True, W=W),
                               a @ v / a.sum(-1, keepdims=True), rtol=1e-9)


def test_performer_stable_with_large_inputs():
    rng = np.random.default_rng(8)
    q, k, v = (30 * rng.standard_normal((16, 8)) for _ in range(3))
    out = LA.performer_attention(q, k, v, 32, np.random.default_rng(0))
    assert np.isfinite(out).all()


def test_linformer_identity_projection_is_exact_attention():
    rng = np.random.default_rng(9)
    q, k, v = rng.standard_normal((2, 10, 4)), rng.standard_normal((2, 12, 4)), rng.standard_normal((2, 12, 3))
    I = np.eye(12)
    s = q @ np.swapaxes(k, -1, -2) / 2
    p = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    np.testing.assert_allclose(LA.linformer_attention(q, k, v, I, I), p @ v, rtol=1e-12)
    E, Fp = LA.linformer_projections(12, 5, np.random.default_rng(0))
    got = LA.linformer_attention(q, k, v, E, Fp)
    kp, vp = E @ k, Fp @ v
    s = q @ np.swapaxes(kp, -1, -2) / 2
    p = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    np.testing.assert_allclose(got, p @ vp, rtol=1e-12)
    assert got.shape == (2, 10, 3)


def test_delta_rule_closed_forms():
    rng = np.random.default_rng(10)
    dk, dv = 6, 3
    K = np.linalg.qr(rng.standard_normal((dk, dk)))[0][:4]        # 4 orthonormal keys
    V = rng.standard_normal((4, dv))
    Q = rng.standard_normal((4, dk))
    out, S = LA.delta_rule_attention(Q, K, V, beta=1.0)
    # orthonormal keys written once: delta rule = unnormalised linear attention sum_{j<=t} v_j k_j^T q_t
    want = np.array([sum(V[j] * (K[j] @ Q[t]) for j in range(t + 1)) for t in range(4)])
    np.testing.assert_allclose(out, want, atol=1e-12)
    # the same key written twice: the delta rule overwrites, plain accumulation would add
    k2 = np.stack([K[0], K[0]])
    v2 = np.stack([V[0], V[1]])
    _, S2 = LA.delta_rule_attention(k2, k2, v2, beta=1.0)
    np.testing.assert_allclose(S2 @ K[0], V[1], atol=1e-12)
    # alpha = 0 forgets everything before the current step
    out0, _ = LA.delta_rule_attention(Q, K, V, beta=0.5, alpha=0.0)
    np.testing.assert_allclose(out0, 0.5 * V * (K * Q).sum(-1, keepdims=True), atol=1e-12)


def test_linear_backend_gradcheck_and_values():
    rng = np.random.default_rng(11)
    q, k, v = (rng.standard_normal((1, 2, 5, 3)) for _ in range(3))
    got = F.scaled_dot_product_attention(q, k, v, is_causal=True, backend="linear").data
    a = np.tril(elu1_ref(q) @ np.swapaxes(elu1_ref(k), -1, -2))
    np.testing.assert_allclose(got, a @ v / (a.sum(-1, keepdims=True) + 1e-6), rtol=1e-9)
    import tinyattn as ta
    ts = [Tensor(x, requires_grad=True) for x in (q, k, v)]
    ta.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True, backend="linear"), *ts)


@pytest.mark.parametrize("call,err,match", [
    (lambda q, k, v: LA.linear_attention(q, k, v, feature_map="softmax"), ValueError, "feature_map"),
    (lambda q, k, v: LA.linear_attention(q, k[:, :3], v, causal=False), ValueError, "k"),
    (lambda q, k, v: LA.linear_attention(q[:5], k, v, causal=True), ValueError, "Lq == Lk"),
    (lambda q, k, v: LA.linear_attention(q.astype(int), k, v), TypeError, "q"),
    (lambda q, k, v: LA.linear_attention(q, k, v, causal=True, chunk=0), ValueError, "chunk"),
    (lambda q, k, v: LA.performer_attention(q, k, v, 0, np.random.default_rng(0)), ValueError, "n_features"),
    (lambda q, k, v: LA.performer_attention(q, k, v, 4, 0), TypeError, "rng"),
    (lambda q, k, v: LA.performer_attention(q, k, v, 4, None, W=np.ones((4, 3))), ValueError, "W"),
    (lambda q, k, v: LA.linformer_attention(q, k, v, np.ones((3, 7)), np.ones((3, 8))), ValueError, "E"),
    (lambda q, k, v: LA.delta_rule_attention(q, k, v, beta=2.0), ValueError, "beta"),
    (lambda q, k, v: LA.delta_rule_attention(q, k, v, beta=np.ones(3)), ValueError, "beta"),
    (lambda q, k, v: LA.favor_features(q, np.ones((4, 5))), ValueError, "W"),
])
def test_bad_input_raises(call, err, match):
    rng = np.random.default_rng(12)
    q, k, v = rng.standard_normal((8, 4)), rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
    with pytest.raises(err, match=match):
        call(q, k, v)


def test_edges_size_zero_and_fp16():
    z = np.zeros((0, 4))
    assert LA.linear_attention(z, z, z, causal=True).shape == (0, 4)
    assert LA.linear_attention_recurrent(z, z, z)[0].shape == (0, 4)
    assert LA.performer_attention(z, z, z, 4, np.random.default_rng(0)).shape == (0, 4)
    rng = np.random.default_rng(13)
    q, k, v = (rng.standard_normal((2, 12, 4)) for _ in range(3))
    for fn in (lambda a, b, c: LA.linear_attention(a, b, c, causal=True),
               lambda a, b, c: LA.performer_attention(a, b, c, 16, None, W=LA.gaussian_features_matrix(16, 4, np.random.default_rng(1)))):
        o16 = fn(*(x.astype(np.float16) for x in (q, k, v)))
        assert o16.dtype == np.float32 and np.isfinite(o16).all()
        o64 = fn(*(x.astype(np.float16).astype(np.float64) for x in (q, k, v)))
        np.testing.assert_allclose(o16, o64, atol=1e-5)


def test_linear_lm_trains_one_step():
    import tinyattn as ta
    from tinyattn.models import TransformerLM
    from tinyattn.train import lm_loss
    model = TransformerLM(7, 8, 1, 2, 6, backend="linear", rng=np.random.default_rng(0))
    x = np.random.default_rng(1).integers(0, 7, size=(2, 6))
    loss = lm_loss(model, x, np.roll(x, -1, axis=1))
    loss.backward()
    assert np.isfinite(float(loss.data))
    assert all(p.grad is not None and np.isfinite(p.grad).all() for p in model.parameters())
