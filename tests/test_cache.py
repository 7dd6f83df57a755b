"""KV cache (chapter 08): prefill + token-by-token decoding equals one full forward (float64, 1e-9)
for MHA, GQA, MQA and MLA with every position encoding; generate with and without the cache
samples the same tokens; overflow and bad input raise before anything is written."""
import numpy as np
import pytest

from tinyattn.cache import KVCache
from tinyattn.models import TransformerLM

V, D, H, MAXLEN = 29, 24, 4, 24
KINDS = {"mha": {}, "gqa": {"n_kv_heads": 2}, "mqa": {"n_kv_heads": 1},
         "mla": {"attention": "mla", "kv_lora_rank": 10, "qk_rope_head_dim": 4, "qk_nope_head_dim": 6,
                 "v_head_dim": 5}}


def _model(kind, positional, seed=0):
    m = TransformerLM(V, D, 2, H, MAXLEN, positional=positional, rng=np.random.default_rng(seed), **KINDS[kind])
    for p in m.parameters():                           # float64 and non-trivial weights everywhere
        p.data = p.data.astype(np.float64) + 0.05 * np.random.default_rng(seed + 1).standard_normal(p.shape)
    return m.eval()


def _decode(model, tokens, prefill, absorbed=False):
    cache = model.new_cache(tokens.shape[0], tokens.shape[1])
    outs = [model(tokens[:, :prefill], cache=cache, absorbed=absorbed).data]
    for t in range(prefill, tokens.shape[1]):
        outs.append(model(tokens[:, t:t + 1], cache=cache, absorbed=absorbed).data)
    assert cache.length == tokens.shape[1]
    return np.concatenate(outs, axis=1)


POSITIONALS = ["rope", "alibi", "learned", "sinusoidal", "t5", "nope"]
CASES = [(k, p) for k in ("mha", "gqa", "mqa") for p in POSITIONALS] + [("mla", "rope")]


@pytest.mark.parametrize("kind,positional", CASES)
def test_prefill_then_decode_equals_full_forward(kind, positional):
    model = _model(kind, positional)
    tokens = np.random.default_rng(7).integers(0, V, (3, 13))
    full = model(tokens).data                                     # (B, L, V) in one pass
    for prefill in (1, 6):
        np.testing.assert_allclose(_decode(model, tokens, prefill), full, rtol=0, atol=1e-9,
                                   err_msg=f"{kind}/{positional} prefill={prefill}")


def test_mla_absorbed_decode_equals_full_forward_and_cache_holds_latent_only():
    model = _model("mla", "rope", seed=3)
    tokens = np.random.default_rng(8).integers(0, V, (2, 11))
    full = model(tokens).data
    np.testing.assert_allclose(_decode(model, tokens, 4, absorbed=True), full, rtol=0, atol=1e-9)
    cache = model.new_cache(2, 11)
    assert cache.fields == {"c_kv": (10,), "k_rope": (4,)}       # d_c and d_R only, no per-head K/V
    model(tokens, cache=cache)
    assert cache.nbytes() == 2 * 2 * 11 * (10 + 4) * 8           # layers·batch·tokens·(d_c+d_R)·8 bytes


def test_chunked_prefill_in_uneven_pieces():
    model = _model("gqa", "rope")
    tokens = np.random.default_rng(2).integers(0, V, (2, 17))
    full = model(tokens).data
    cache = model.new_cache(2, 20)
    outs = [model(tokens[:, a:b], cache=cache).data for a, b in ((0, 3), (3, 10), (10, 11), (11, 17))]
    np.testing.assert_allclose(np.concatenate(outs, 1), full, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["mha", "mla"])
def test_generate_same_tokens_with_and_without_cache(kind):
    model = _model(kind, "rope", seed=5)
    prompt = np.random.default_rng(4).integers(0, V, (2, 5))
    greedy = [model.generate(prompt, 10, use_cache=u, temperature=0) for u in (True, False)]
    np.testing.assert_array_equal(greedy[0], greedy[1])
    sampled = [model.generate(prompt, 10, use_cache=u, temperature=1.0, top_k=7, rng=np.random.default_rng(9))
               for u in (True, False)]
    np.testing.assert_array_equal(sampled[0], sampled[1])
    assert sampled[0].shape == (2, 15)


def test_generate_beyond_max_len_falls_back_to_the_cropped_window():
    model = _model("mha", "learned")
    prompt = np.random.default_rng(4).integers(0, V, (1, 20))
    a = model.generate(prompt, 9, use_cache=True, temperature=0)   # 29 > MAXLEN = 24
    b = model.generate(prompt, 9, use_cache=False, temperature=0)
    np.testing.assert_array_equal(a, b)


def test_manual_greedy_loop_with_cache_matches_generate():
    model = _model("mqa", "alibi")
    prompt = np.random.default_rng(1).integers(0, V, (2, 4))
    cache = model.new_cache(2, 10)
    logits = model(prompt, cache=cache).data[:, -1]
    seq = prompt
    for _ in range(6):
        nxt = logits.argmax(-1)[:, None]
        seq = np.concatenate([seq, nxt], 1)
        logits = model(nxt, cache=cache).data[:, -1]
    np.testing.assert_array_equal(seq, model.generate(prompt, 6, temperature=0))


def test_decoding_past_max_len_raises_and_leaves_cache_unchanged():
    model = _model("mha", "rope")
    cache = model.new_cache(1, 6)
    model(np.zeros((1, 5), dtype=np.int64), cache=cache)
    before = [b["k"].copy() for b in cache.buffers]
    with pytest.raises(ValueError, match="overflow.*max_len=6"):
        model(np.zeros((1, 2), dtype=np.int64), cache=cache)
    assert cache.length == 5
    for b, old in zip(cache.buffers, before):
        np.testing.assert_array_equal(b["k"], old)
    model(np.zeros((1, 1), dtype=np.int64), cache=cache)          # exactly full is fine
    with pytest.raises(ValueError, match="overflow"):
        model(np.zeros((1, 1), dtype=np.int64), cache=cache)


def test_bad_cache_arguments_raise_clearly():
    model = _model("mha", "learned")
    with pytest.raises(ValueError, match="learned position table"):
        model.new_cache(1, MAXLEN + 1)
    cache = model.new_cache(2, 8)
    with pytest.raises(ValueError, match="batch 2"):
        model(np.zeros((3, 2), dtype=np.int64), cache=cache)
    with pytest.raises(TypeError, match="KVCache"):
        model(np.zeros((1, 2), dtype=np.int64), cache={"k": 1})
    with pytest.raises(ValueError, match="max_len"):
        KVCache(2, 1, 0, {"k": (1, 2)})
    c = KVCache(1, 2, 4, {"k": (3, 2), "v": (3, 2)})
    with pytest.raises(ValueError, match="expected \\(B=2, L"):
        c.update(0, k=np.zeros((2, 1, 3, 3)), v=np.zeros((2, 1, 3, 2)))
    with pytest.raises(ValueError, match="fields"):
        c.update(0, k=np.zeros((2, 1, 3, 2)))
    assert c.length == 0 and not c.buffers[0]["k"].any()
    with pytest.raises(ValueError, match="positional must be 'rope'"):
        TransformerLM(V, D, 1, H, 8, positional="alibi", attention="mla", kv_lora_rank=4)
    with pytest.raises(ValueError, match="kv_lora_rank"):
        TransformerLM(V, D, 1, H, 8, attention="mla")
    with pytest.raises(ValueError, match="attention must be"):
        TransformerLM(V, D, 1, H, 8, attention="gqa")


def test_learned_positions_past_table_raise_with_cache():
    model = _model("mha", "learned")
    cache = KVCache(2, 1, MAXLEN + 4, {"k": (H, D // H), "v": (H, D // H)}, dtype=np.float64)
    model(np.zeros((1, MAXLEN), dtype=np.int64), cache=cache)
    with pytest.raises(ValueError, match="exceeds max_len"):
        model(np.zeros((1, 1), dtype=np.int64), cache=cache)
    assert cache.length == MAXLEN


def test_mla_generate_absorbed_equals_naive_and_uncached():
    model = _model("mla", "rope", seed=11)
    prompt = np.random.default_rng(12).integers(0, V, (2, 3))
    outs = [model.generate(prompt, 8, temperature=0, use_cache=u, absorbed=a)
            for u, a in ((True, True), (True, False), (False, False))]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_attention_maps_with_cache_are_the_last_rows_of_the_full_maps():
    model = _model("gqa", "alibi")
    tokens = np.random.default_rng(13).integers(0, V, (1, 9))
    _, full_maps = model(tokens, need_weights=True)
    cache = model.new_cache(1, 9)
    model(tokens[:, :6], cache=cache)
    _, maps = model(tokens[:, 6:], cache=cache, need_weights=True)
    for full, part in zip(full_maps, maps):
        assert part.shape == (1, H, 3, 9)
        np.testing.assert_allclose(part, full[:, :, 6:], atol=1e-12)


def test_flash_backend_with_cache_equals_dense_full_forward():
    model = _model("gqa", "rope")
    model.backend = "flash"                                    # bottom-right causal tiles with Lq < Lk
    tokens = np.random.default_rng(14).integers(0, V, (2, 10))
    np.testing.assert_allclose(_decode(model, tokens, 4), model(tokens, backend="dense").data, rtol=0, atol=1e-9)
