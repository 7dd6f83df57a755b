"""tinyattn.models: the LM against an independent float64 NumPy forward, finite differences,
causality, attention maps, sampling and errors."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.models import POSITIONAL, TransformerBlock, TransformerLM, sample_next, top_k_filter


# ------------------------------------------------------------------ independent float64 reference
def _ln(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _rope_complex(x, pos, base=10000.0):
    """Half layout via complex numbers: pair (i, i + d/2) is z_i = x_i + 1j x_{i+d/2}, times e^{i m theta_i}."""
    d = x.shape[-1]
    theta = base ** (-np.arange(d // 2) * 2.0 / d)
    z = (x[..., : d // 2] + 1j * x[..., d // 2:]) * np.exp(1j * pos[:, None] * theta)
    return np.concatenate([z.real, z.imag], axis=-1)


def _sinusoid(L, d):
    pe = np.zeros((L, d))
    for p in range(L):
        for i in range(d // 2):
            pe[p, 2 * i] = np.sin(p / 10000 ** (2 * i / d))
            pe[p, 2 * i + 1] = np.cos(p / 10000 ** (2 * i / d))
    return pe


def reference_logits(model, tokens, return_maps=False, rope_pos_scale=1.0):
    """float64 forward written from the formulas, reading the model's parameters by name.
    rope_pos_scale multiplies RoPE positions (position interpolation: m -> m / s)."""
    P = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    B, L = tokens.shape
    H, d = model.n_heads, model.d_model
    dh = d // H
    x = P["tok_emb.weight"][tokens]
    if model.positional == "sinusoidal":
        x = x + _sinusoid(L, d)
    if model.positional == "learned":
        x = x + P["pos.learned.weight"][:L]
    i, j = np.arange(L)[:, None], np.arange(L)[None, :]
    bias, scale = np.zeros((H, L, L)), 1 / np.sqrt(dh)
    if model.positional == "alibi":
        slopes = 2.0 ** (-8.0 * np.arange(1, H + 1) / H)          # H is a power of two here
        bias = -slopes[:, None, None] * (i - j)
    if model.positional == "t5":
        bias = P["pos.t5.table"][model.pos.t5.buckets(L, L)].transpose(2, 0, 1)
        scale = 1.0
    maps = []
    post = model.blocks[0].norm == "post"
    for layer in range(model.n_layers):
        p = lambda n: P[f"blocks.{layer}.{n}"]  # noqa: E731
        z = x if post else _ln(x, p("ln1.weight"), p("ln1.bias"))
        q, k, v = (((z @ p(f"attn.{n}_proj.weight")).reshape(B, L, -1, dh)).transpose(0, 2, 1, 3)
                   for n in "qkv")
        if model.positional == "rope":
            pos = np.arange(L) * rope_pos_scale
            q, k = _rope_complex(q, pos), _rope_complex(k, pos)
        rep = H // k.shape[1]
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)     # query head h -> KV head h // rep
        s = q @ k.transpose(0, 1, 3, 2) * scale + bias
        s = np.where(j > i, -np.inf, s)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        maps.append(a)
        o = (a @ v).transpose(0, 2, 1, 3).reshape(B, L, d)
        x = x + o @ p("attn.o_proj.weight")
        if post:                                        # h = LN1(x + attn), y = LN2(h + mlp(h))
            x = _ln(x, p("ln1.weight"), p("ln1.bias"))
        h = x if post else _ln(x, p("ln2.weight"), p("ln2.bias"))
        x = x + _gelu(h @ p("mlp.fc1.weight") + p("mlp.fc1.bias")) @ p("mlp.fc2.weight") + p("mlp.fc2.bias")
        if post:
            x = _ln(x, p("ln2.weight"), p("ln2.bias"))
    x = _ln(x, P["ln_f.weight"], P["ln_f.bias"])
    head = P["tok_emb.weight"].T if model.tie_weights else P["lm_head.weight"]
    return (x @ head, maps) if return_maps else x @ head


TOKENS = np.random.default_rng(7).integers(0, 11, size=(3, 9))


@pytest.mark.parametrize("positional", ["rope", "sinusoidal", "learned", "alibi", "t5", "nope"])
def test_forward_matches_float64_reference(positional):
    model = TransformerLM(11, 16, 2, 4, 12, positional=positional, rng=np.random.default_rng(1))
    logits = model(TOKENS)
    assert logits.shape == (3, 9, 11) and logits.dtype == np.float32
    np.testing.assert_allclose(logits.data, reference_logits(model, TOKENS), rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("kw", [{"n_kv_heads": 1}, {"n_kv_heads": 2, "tie_weights": True}, {"d_ff": 24},
                                {"norm": "post"}])
def test_variants_match_reference(kw):
    model = TransformerLM(11, 16, 2, 4, 12, rng=np.random.default_rng(2), **kw)
    np.testing.assert_allclose(model(TOKENS).data, reference_logits(model, TOKENS), rtol=2e-4, atol=2e-4)
    names = dict(model.named_parameters())
    assert ("lm_head.weight" in names) != model.tie_weights
    if "n_kv_heads" in kw:
        assert names["blocks.0.attn.k_proj.weight"].shape == (16, 4 * kw["n_kv_heads"])


def test_parameter_count_closed_form():
    V, d, n = 37, 24, 3
    per_block = 2 * 2 * d + 4 * d * d + (d * 4 * d + 4 * d) + (4 * d * d + d)
    for tie in (False, True):
        model = TransformerLM(V, d, n, 4, 16, tie_weights=tie)
        assert model.num_parameters() == V * d + n * per_block + 2 * d + (0 if tie else d * V)
    learned = TransformerLM(V, d, n, 4, 16, positional="learned")
    t5 = TransformerLM(V, d, n, 4, 16, positional="t5")
    base = TransformerLM(V, d, n, 4, 16).num_parameters()
    assert learned.num_parameters() - base == 16 * d          # one row per position
    assert t5.num_parameters() - base == 32 * 4                # one table (buckets x heads), all layers


@pytest.mark.parametrize("positional", POSITIONAL)
def test_causal_future_tokens_do_not_change_past_logits(positional):
    model = TransformerLM(11, 16, 2, 2, 12, positional=positional, rng=np.random.default_rng(3)).eval()
    a = TOKENS.copy()
    b = a.copy()
    b[:, 5:] = (b[:, 5:] + 1) % 11
    la, lb = model(a).data, model(b).data
    np.testing.assert_array_equal(la[:, :5], lb[:, :5])
    assert np.abs(la[:, 5:] - lb[:, 5:]).max() > 1e-4


def test_gradients_match_finite_differences_float64():
    model = TransformerLM(7, 8, 2, 2, 6, positional="rope", tie_weights=True, rng=np.random.default_rng(4))
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    tokens = np.random.default_rng(5).integers(0, 7, size=(2, 6))
    targets = np.random.default_rng(6).integers(0, 7, size=(2, 6))
    targets[0, :2] = -100

    def loss_value():
        with ta.no_grad():
            return float(ta.train.lm_loss(model, tokens, targets).data)

    loss = ta.train.lm_loss(model, tokens, targets)
    loss.backward()
    rng, eps = np.random.default_rng(0), 1e-6
    for name, p in model.named_parameters():
        flat = p.data.reshape(-1)
        for idx in rng.choice(flat.size, size=min(4, flat.size), replace=False):
            orig = flat[idx]
            flat[idx] = orig + eps
            plus = loss_value()
            flat[idx] = orig - eps
            minus = loss_value()
            flat[idx] = orig
            numeric = (plus - minus) / (2 * eps)
            assert p.grad.reshape(-1)[idx] == pytest.approx(numeric, rel=1e-4, abs=1e-7), name


def test_attention_maps_are_causal_distributions_matching_reference():
    model = TransformerLM(11, 16, 2, 4, 12, positional="alibi", rng=np.random.default_rng(8))
    maps = model.attention_maps(TOKENS)
    _, ref = reference_logits(model, TOKENS, return_maps=True)
    assert len(maps) == 2
    for m, r in zip(maps, ref):
        assert m.shape == (3, 4, 9, 9)
        np.testing.assert_allclose(m.sum(-1), 1.0, rtol=1e-5)
        assert np.all(np.triu(m, k=1) == 0)
        np.testing.assert_allclose(m, r, atol=1e-5)
    logits, maps2 = model(TOKENS, need_weights=True)
    np.testing.assert_allclose(maps2[1], maps[1], atol=1e-7)
    assert model.training                                     # attention_maps restored the mode


def test_cape_augments_in_training_only():
    model = TransformerLM(11, 16, 1, 2, 12, positional="cape", rng=np.random.default_rng(9))
    assert not np.allclose(model(TOKENS).data, model(TOKENS).data)       # fresh positions per call
    model.eval()
    np.testing.assert_array_equal(model(TOKENS).data, model(TOKENS).data)
    sin = TransformerLM(11, 16, 1, 2, 12, positional="sinusoidal").eval()
    sin.load_state_dict(model.state_dict())                             # same names, same weights
    np.testing.assert_allclose(model(TOKENS).data, sin(TOKENS).data, atol=1e-6)  # eval = plain sinusoidal


def test_block_need_weights_and_shapes():
    block = TransformerBlock(16, 4, rng=np.random.default_rng(0))
    x = ta.Tensor(np.random.default_rng(1).standard_normal((2, 5, 16)).astype(np.float32))
    y, w = block(x, need_weights=True)
    assert y.shape == (2, 5, 16) and np.asarray(w).shape == (2, 4, 5, 5)


def test_generate_greedy_equals_manual_argmax_loop():
    model = TransformerLM(11, 16, 2, 2, 8, positional="learned", rng=np.random.default_rng(10))
    prompt = TOKENS[:, :3]
    out = model.generate(prompt, 9, temperature=0)                 # 12 > max_len: context cropped
    assert out.shape == (3, 12) and np.array_equal(out[:, :3], prompt)
    seq = prompt.copy()
    model.eval()
    for _ in range(9):
        nxt = model(seq[:, -8:]).data[:, -1].argmax(-1)
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    np.testing.assert_array_equal(out, seq)
    np.testing.assert_array_equal(model.generate(prompt, 9, temperature=1.0, top_k=1,
                                                 rng=np.random.default_rng(0)), seq)
    one = model.generate(prompt[0], 4, rng=np.random.default_rng(3))
    assert one.shape == (7,)
    again = model.generate(prompt[0], 4, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(one, again)


def test_sample_next_distribution_and_top_k():
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4]]))
    rng = np.random.default_rng(0)
    draws = np.array([sample_next(logits, 1.0, None, rng)[0] for _ in range(20000)])
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.015)    # ~4.5 sigma of a binomial
    hot = np.array([sample_next(logits, 0.5, None, rng)[0] for _ in range(20000)])
    p_half = np.array([0.1, 0.2, 0.3, 0.4]) ** 2 / np.sum(np.array([0.1, 0.2, 0.3, 0.4]) ** 2)
    np.testing.assert_allclose(np.bincount(hot, minlength=4) / hot.size, p_half, atol=0.015)
    top2 = np.array([sample_next(logits, 1.0, 2, rng)[0] for _ in range(5000)])
    assert set(np.unique(top2)) == {2, 3}
    assert np.isclose(np.mean(top2 == 3), 0.4 / 0.7, atol=0.03)
    filtered = top_k_filter(np.array([[1.0, 5.0, 3.0, 5.0]]), 2)
    assert np.array_equal(np.isfinite(filtered), [[False, True, False, True]])
    big = sample_next(np.array([[1e4, -1e4, 0.0]]), 1.0, None, rng)
    assert big[0] == 0


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="positional"):
        TransformerLM(11, 16, 1, 2, 8, positional="xpos")
    with pytest.raises(ValueError, match="norm"):
        TransformerLM(11, 16, 1, 2, 8, norm="sandwich")
    with pytest.raises(ValueError, match="divisible"):
        TransformerLM(11, 18, 1, 4, 8)
    with pytest.raises(ValueError, match="vocab_size"):
        TransformerLM(0, 16, 1, 2, 8)
    model = TransformerLM(11, 16, 1, 2, 8, positional="learned")
    with pytest.raises(ValueError, match="max_len"):
        model(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(ValueError, match="token ids"):
        model(np.full((1, 3), 11))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        model(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="rng"):
        model.generate(np.zeros(3, dtype=np.int64), 2, temperature=1.0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(np.zeros(3, dtype=np.int64), 2, top_k=20, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="temperature"):
        sample_next(np.zeros((1, 3)), -1.0)
    rope = TransformerLM(11, 16, 1, 2, 8)
    assert rope(np.zeros((1, 20), dtype=np.int64)).shape == (1, 20, 11)   # relative: any length


def test_backend_passthrough_flash_equals_dense():
    pytest.importorskip("tinyattn.flash")
    tokens = np.random.default_rng(11).integers(0, 11, size=(2, 100))    # 100 = a 64-block + a ragged 36
    grads = {}
    for backend in ("dense", "flash"):
        model = TransformerLM(11, 16, 2, 2, 128, backend=backend, rng=np.random.default_rng(12))
        loss = ta.train.lm_loss(model, tokens, tokens)
        loss.backward()
        grads[backend] = (float(loss.data), model.tok_emb.weight.grad.copy(),
                          model.blocks[0].attn.q_proj.weight.grad.copy())
    assert grads["flash"][0] == pytest.approx(grads["dense"][0], rel=1e-5)
    for a, b in zip(grads["flash"][1:], grads["dense"][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    model = TransformerLM(11, 16, 1, 2, 128, rng=np.random.default_rng(12))
    np.testing.assert_allclose(model(tokens, backend="flash").data, model(tokens).data, atol=1e-5)


def test_rope_frequencies_can_be_rescaled_after_training():
    """Chapter 05 swaps in scaled frequencies: theta_i / s (position interpolation) must equal
    rotating by positions m / s in the float64 reference."""
    model = TransformerLM(11, 16, 2, 4, 12, rng=np.random.default_rng(13))
    model.pos.inv_freq = model.pos.inv_freq / 4.0
    tokens = np.random.default_rng(14).integers(0, 11, size=(2, 30))          # beyond max_len
    np.testing.assert_allclose(model(tokens).data, reference_logits(model, tokens, rope_pos_scale=0.25),
                               rtol=2e-4, atol=2e-4)
