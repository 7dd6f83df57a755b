# %% [markdown] slideshow={"slide_type": "slide"}
# # Chapter 08: The KV cache, MQA/GQA and MLA (KV缓存, 多查询/分组查询注意力, 多头潜在注意力)
#
# A language model writes one token at a time. Chapter 04's `generate` ran the whole context
# through the model for every new token, although the keys and values of the earlier tokens never
# change (a causal model never lets a past token see the future). This chapter stores them once:
#
# 1. the **KV cache**: prefill the prompt, then decode one token per step against the cache; the
#    logits equal one full forward pass (float64), for every position encoding;
# 2. **decode speed** with and without the cache against context length (a committed benchmark);
# 3. **how big the cache is** for published models (source text 2.4), and why it became the
#    bottleneck of serving;
# 4. **MQA and GQA** (source text 2.4, 3.5 "shared taxi"): fewer key/value heads; converting a trained
#    multi-head model by mean-pooling its key/value heads;
# 5. **MLA** (source text 2.5, 3.6 "compression"): DeepSeek-V2 caches one small latent per token;
#    the naive and the absorbed forms, and why RoPE needs its own decoupled key.
#
# Library: `tinyattn.cache` (`KVCache`, `kv_cache_bytes`, `mla_cache_bytes`, `PUBLISHED`),
# `TransformerLM.new_cache / forward(cache=) / generate(use_cache=)`,
# `tinyattn.attention.MultiHeadLatentAttention`, `tinyattn.models.mha_to_gqa`.

# %% slideshow={"slide_type": "skip"}
%config InlineBackend.figure_formats = ['png']
import json
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import tinyattn as ta
from tinyattn.attention import MultiHeadLatentAttention, rope_on_content_absorption_error
from tinyattn.cache import PUBLISHED, cache_table, kv_cache_bytes, mla_cache_bytes
from tinyattn.data import CharCorpus
from tinyattn.models import TransformerLM, mha_to_gqa
from tinyattn.train import evaluate_lm, train
from tinyattn.viz import setup_notebook
from tinyattn.viz import cache as vc
setup_notebook()            # small PNG figures, fixed style
rng = np.random.default_rng(0)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Decoding recomputes everything, unless we cache
#
# At step $t$ the model needs, in every layer, the query of the newest token and the keys and values
# of tokens $0..t$. Without a cache it recomputes all $t+1$ keys and values (and all queries it
# then throws away). With a cache each step computes the new token's $q, k, v$ only, appends $k, v$
# to the per-layer buffers and attends over everything stored:
#
# $$\text{prefill: } K_{0:L_0}, V_{0:L_0} \text{ stored}; \qquad
# \text{step } t:\ K \leftarrow [K; k_t],\ V \leftarrow [V; v_t],\ o_t = \mathrm{softmax}(q_t K^\top/\sqrt{d})\,V .$$
#
# Positions must continue from the cache length: RoPE rotates the new query and key by their
# absolute position $t$, ALiBi and T5 biases use the distance to every cached key, learned and
# sinusoidal encodings look up row $t$. The causal mask is aligned bottom-right (chapter 01): the
# new query is the last one and sees every cached key.
#
# The check: a float64 model, a 5-token prefill, then 9 single-token steps, against one full
# forward over all 14 tokens, for the four attention kinds and six position encodings.

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
KINDS = {"MHA": {}, "GQA (2 KV heads)": {"n_kv_heads": 2}, "MQA (1 KV head)": {"n_kv_heads": 1},
         "MLA": {"attention": "mla", "kv_lora_rank": 10, "qk_rope_head_dim": 4}}


def float64_lm(positional="rope", seed=0, **kw):
    m = TransformerLM(31, 24, 2, 4, 32, positional=positional, rng=np.random.default_rng(seed), **kw)
    for p in m.parameters():
        p.data = p.data.astype(np.float64)
    return m.eval()


def prefill_then_decode(model, tokens, prefill):
    cache = model.new_cache(tokens.shape[0], tokens.shape[1])
    logits = [model(tokens[:, :prefill], cache=cache).data]                 # prefill
    for t in range(prefill, tokens.shape[1]):
        logits.append(model(tokens[:, t:t + 1], cache=cache).data)          # one token per step
    return np.concatenate(logits, axis=1), cache


tokens = rng.integers(0, 31, (2, 14))
for name, kw in KINDS.items():
    encodings = ["rope"] if name == "MLA" else ["rope", "alibi", "learned", "sinusoidal", "t5", "nope"]
    for pos in encodings:
        model = float64_lm(pos, **kw)
        got, cache = prefill_then_decode(model, tokens, 5)
        err = np.abs(got - model(tokens).data).max()
        print(f"{name:17s} {pos:10s} cache fields {cache.fields}  max |diff| < 1e-9: {err < 1e-9}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Every row prints `True`: prefill plus one token at a time gives the same logits as the full forward
# pass to better than $10^{-9}$. The printed cache fields already show the first saving of this
# chapter: MHA stores 4 key heads and 4 value heads of width 6 per token and layer, GQA 2, MQA 1, and
# MLA a 10-wide latent plus one 4-wide RoPE key.
#
# A cache has a capacity. Writing past it raises before anything is written, so a failed call leaves
# the cache as it was:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
model = float64_lm("rope")
cache = model.new_cache(batch=1, max_len=6)
model(tokens[:1, :5], cache=cache)
try:
    model(tokens[:1, 5:7], cache=cache)
except ValueError as e:
    print("ValueError:", e)
print("cache length still", cache.length)

# %% [markdown] slideshow={"slide_type": "fragment"}
# `generate(..., use_cache=True)` (the default) prefills the prompt and then decodes token by token;
# `use_cache=False` recomputes the context at every step. Same model, same random stream: the same
# tokens.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
prompt = rng.integers(0, 31, (2, 4))
for kw in ({"temperature": 0}, {"temperature": 1.0, "top_k": 8}):
    a = model.generate(prompt, 12, use_cache=True, rng=np.random.default_rng(1), **kw)
    b = model.generate(prompt, 12, use_cache=False, rng=np.random.default_rng(1), **kw)
    print(kw, "identical tokens:", bool(np.array_equal(a, b)), a[0, 4:].tolist())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. How much faster is decoding with the cache?
#
# Without a cache, step $t$ costs a full forward over $t+1$ tokens: $O(t \cdot d^2)$ for the
# projections and MLP plus $O(t^2 d)$ for attention, so generating $n$ tokens costs $O(n^2 d^2 + n^3 d)$.
# With the cache a step costs $O(d^2 + t\,d)$. `benchmarks/decode.py` times one next-token step
# of a small LM (vocabulary 256, $d = 128$, 2 layers, 4 heads, RoPE, batch 1, one thread) both ways,
# alternating the two, and stores the medians. This cell reads the committed result (timings vary
# by machine, so they are not re-measured here).

# %% slideshow={"slide_type": "subslide"} tags=["ledger-08-s2"]
candidates = [Path(p) / "benchmarks" / "results" / "decode.json" for p in ("..", ".")]
bench = json.loads(next((c for c in candidates if c.exists()), candidates[0]).read_text())
rows = bench["results"]
print(f"measured {bench['date']} on {bench['machine']['processor'] or bench['machine']['platform']}, "
      f"{bench['threads']} thread, load average {bench['loadavg_1min_before_after']}")
print(" context  uncached ms  cached ms  speedup")
for r in rows:
    print(f"{r['context']:8d} {r['uncached_ms']:12.2f} {r['cached_ms']:10.2f} {r['speedup']:8.2f}")
first = bench["cached_faster_from_context"]
print(f"the cached step is faster at every measured context length from {first} tokens on")

ctx = [r["context"] for r in rows]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(ctx, [r["uncached_tok_s"] for r in rows], "o-", label="no cache (full forward per token)")
ax.loglog(ctx, [r["cached_tok_s"] for r in rows], "s-", label="KV cache (one token per step)")
ax.set_xlabel("context length (tokens already generated)"), ax.set_ylabel("tokens / s")
ax.set_title("decode speed of one next-token step"), ax.legend()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# At a one-token context the two steps do almost the same work (a forward over 2 tokens vs 1 token
# plus a 1-token cache) and take the same time (speedup 1.00 in the table). From the length printed above on the cached step wins at every measured length, and
# the gap widens with the context: about 10x at a few hundred tokens and over 100x at 2048 in this
# run, because the uncached step's cost grows with the context while the cached step's grows only
# through the $O(t\,d)$ attention read.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. How big is the cache?
#
# Per token and layer the cache holds one key and one value per KV head:
#
# $$\text{bytes} = 2 \cdot n_\text{layers} \cdot n_\text{kv heads} \cdot d_\text{head} \cdot
# \text{tokens} \cdot \text{batch} \cdot \text{bytes per element}.$$
#
# The source text's example (section 2.4) is GPT-3 175B: 96 layers, 96 heads of width 128, fp16,
# 2048 tokens.

# %% slideshow={"slide_type": "fragment"} tags=["ledger-08-s3"]
# NBVAL_CHECK_OUTPUT
per_layer = kv_cache_bytes(1, 96, 128, 2048)
total = kv_cache_bytes(96, 96, 128, 2048)
print(f"per layer: {per_layer / 2**20:.0f} MiB = {per_layer / 1e6:.1f} MB")
print(f"96 layers: {total / 2**30:.2f} GiB = {total / 1e9:.2f} GB for ONE sequence of 2048 tokens")
print(f"MQA (one KV head instead of 96): {kv_cache_bytes(96, 1, 128, 2048) / 2**20:.0f} MiB, "
      f"{total / kv_cache_bytes(96, 1, 128, 2048):.0f}x smaller")

# %% [markdown] slideshow={"slide_type": "fragment"}
# The source text's "96 MB per layer" is 96 MiB and its "9.2 GB" is 9 GiB (9216 MiB) = 9.66 GB:
# right up to the unit. One 2048-token GPT-3 sequence needs 9 GiB of cache; MQA divides it by the
# number of heads, 96.
#
# Real models, each row with the document its numbers come from (fp16, batch 1). Mistral-7B keeps a
# rolling buffer of its 4096-token sliding window, so its cache stops growing at 4096 tokens.
# DeepSeek-V2's row uses the MLA formula of section 5: $n_\text{layers}\cdot(d_c + d_R)$ per token.

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
table = cache_table((4096, 32768, 131072))
print(f"{'model':26s} {'kind':4s} {'KB/token':>9s} {'MHA/this':>9s} {'4k GiB':>8s} {'32k GiB':>8s} {'128k GiB':>9s}")
for r in table:
    print(f"{r['model']:26s} {r['kind']:4s} {r['bytes_per_token'] / 1024:9.1f} {r['vs_mha']:9.2f} "
          f"{r[4096] / 2**30:8.3f} {r[32768] / 2**30:8.2f} {r[131072] / 2**30:9.2f}")
print()
for c in PUBLISHED:
    print(f"{c.name}: {c.source}")

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(7, 3.6))
names = [r["model"].replace(" (window 4096)", "\n(window 4096)") for r in table]
x = np.arange(len(table))
for i, n in enumerate((4096, 32768, 131072)):
    ax.bar(x + (i - 1) * 0.27, [r[n] / 2**30 for r in table], 0.27, label=f"{n // 1024}k tokens")
ax.set_yscale("log"), ax.set_ylabel("KV cache, GiB (fp16, batch 1)")
ax.set_xticks(x), ax.set_xticklabels(names, fontsize=7)
ax.axhline(80e9 / 2**30, color="0.4", ls="--", lw=1), ax.text(3.6, 90, "one 80 GB accelerator", fontsize=7)
ax.set_title("cache size of one sequence"), ax.legend(fontsize=8)
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# The bars are on a log scale. At 128k tokens a single GPT-3-shaped sequence would need 576 GiB of
# cache and Llama-2-7B 64 GiB, while grouped-query Llama-2-70B needs 40 GiB and DeepSeek-V2 8.44 GiB.
# The cache, not the weights, decides how many sequences a server can hold at once.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. MQA and GQA: fewer key/value heads (the "shared taxi", 共享出租车)
#
# The source text's analogy (section 3.5): employees (query heads) fetch goods (values) from
# suppliers (keys). In MHA each employee takes their own taxi; in MQA everyone shares one bus; in
# GQA each group shares one car. The cars are the KV cache.
#
# **Multi-query attention** (Shazeer 2019) keeps $H$ query heads and one key/value head; **grouped-
# query attention** (Ainslie et al. 2023) keeps $H_{kv}$ of them, each shared by $H / H_{kv}$
# query heads. Query head $i$ reads KV head
#
# $$g(i) = \left\lfloor \frac{i}{H / H_{kv}} \right\rfloor \qquad\text{(contiguous groups)}.$$
#
# The source text writes $\lfloor i/g \rfloor$ with $g$ the *number of groups*. That is right only
# when $g$ equals the group *size* $H/H_{kv}$, i.e. when $H = g^2$: Llama-2-70B's 64 heads in 8 groups
# happen to hide the error. With 8 heads in 2 groups the two readings differ:

# %% slideshow={"slide_type": "fragment"} tags=["ledger-08-s4"]
# NBVAL_CHECK_OUTPUT
H, n_groups = 8, 2
print("query head           :", list(range(H)))
print("i // (H / H_kv)      :", [ta.attention.kv_head_for_query_head(i, H, n_groups) for i in range(H)])
print("i // g, g = #groups  :", [i // n_groups for i in range(H)], "<- KV heads 2 and 3 do not exist")

# %% [markdown] slideshow={"slide_type": "fragment"}
# The source text's GQA table for Llama-2-70B lists the KV cache as 12.5% (8 groups), 6.25% (4
# groups) and 1.56% (1 group) of 64-head MHA: that is just $H_{kv}/64$, right. Its accuracy and
# speed columns (-0.3%, 2.8x, ...) and its PaLM table (perplexity 8.3 vs 8.6, few-shot 72.1% vs
# 70.3%) have no source; note also that Llama-2-70B already uses 8 KV heads, and PaLM 540B has 48
# heads, not 96 (REFERENCE.md section 7).

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Converting a trained MHA model to GQA (the GQA paper's recipe)
#
# Ainslie et al. (2023, section 2.1) turn a multi-head checkpoint into a GQA one by replacing each
# group's key (and value) projections by their **mean**, then **uptrain** briefly (5% of the original
# pre-training compute in the paper). We train a character LM with 8 heads on the Python standard
# library's source (the corpus of chapter 04), convert it to 2 KV heads (GQA) and to 1 (MQA), and
# measure the validation loss right after the conversion and after 30 more steps; the MHA model gets
# the same 30 extra steps as a baseline.

# %% slideshow={"slide_type": "subslide"}
corpus = CharCorpus(max_chars=200_000)
CTX, STEPS, UP = 64, 250, 30
train_batches, val_batches = corpus.batch_fn(12, CTX), corpus.batch_fn(32, CTX, split="val")
mha = TransformerLM(corpus.vocab_size, 64, 2, 8, CTX, rng=np.random.default_rng(0))
train(mha, ta.optim.AdamW(mha.parameters(), lr=3e-3), train_batches, STEPS, seed=0, progress=False)
results = {"MHA (8 KV heads)": [evaluate_lm(mha, val_batches)]}
for name, hkv in (("GQA (2 KV heads)", 2), ("MQA (1 KV head)", 1)):
    converted = mha_to_gqa(mha, hkv)
    results[name] = [evaluate_lm(mha, val_batches), evaluate_lm(converted, val_batches)]
    train(converted, ta.optim.AdamW(converted.parameters(), lr=1e-3), train_batches, UP, seed=1, progress=False)
    results[name].append(evaluate_lm(converted, val_batches))
train(mha, ta.optim.AdamW(mha.parameters(), lr=1e-3), train_batches, UP, seed=1, progress=False)
results["MHA (8 KV heads)"] += [results["MHA (8 KV heads)"][0], evaluate_lm(mha, val_batches)]
print(f"{'model':18s} {'before':>7s} {'converted':>10s} {'+' + str(UP) + ' steps':>10s}   validation loss (nats/char)")
for name, (before, right_after, up) in results.items():
    print(f"{name:18s} {before:7.3f} {right_after:10.3f} {up:10.3f}")

fig, ax = plt.subplots(figsize=(6, 3.2))
for i, (name, vals) in enumerate(results.items()):
    ax.bar(np.arange(3) + (i - 1) * 0.27, vals, 0.27, label=name)
ax.set_xticks(range(3)), ax.set_xticklabels(["trained MHA", "right after conversion", f"after {UP} steps"])
ax.set_ylabel("validation loss"), ax.set_ylim(1.5, None), ax.legend(fontsize=8)
ax.set_title("mean-pooling KV heads, then uptraining")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Mean-pooling costs quality at once (the loss jumps, more for 1 KV head than for 2), and a few
# uptraining steps win most of it back; the MHA baseline with the same extra steps stays best, MQA
# worst, as the GQA paper reports at scale. This is one seed of a tiny model, an illustration of the
# recipe rather than a measurement of the trade-off at scale.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. MLA: cache one latent, rebuild every head (the "compression algorithm", 压缩算法)
#
# DeepSeek-V2 (arXiv:2405.04434, section 2.1) goes further than sharing heads: it caches a small
# **latent** $c^{KV}_t = h_t W^{DKV}$ (width $d_c = 512$) and rebuilds each head's key and value from
# it, $k^C_{t,i} = c^{KV}_t W^{UK}_i$, $v_{t,i} = c^{KV}_t W^{UV}_i$. The source text's analogy (3.6)
# is video compression: keep key frames, reconstruct the rest at the receiver.
#
# RoPE does not fit into this scheme (see below), so MLA adds a **decoupled** rotary part: every head
# gets an extra query slice $q^R_{t,i}$ and all heads share ONE rotary key $k^R_t = \mathrm{RoPE}(h_t
# W^{KR})$ (width $d_R = 64$):
#
# $$\text{score}_i(t, s) = \frac{q^C_{t,i}\cdot k^C_{s,i} + q^R_{t,i}\cdot k^R_s}{\sqrt{d_h + d_R}} .$$
#
# The cache per token and layer is $c^{KV}$ **and** $k^R$: $512 + 64 = 576$ numbers.

# %% slideshow={"slide_type": "fragment"} tags=["ledger-08-s5"]
vc.draw_mla_dataflow()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Absorption.** At inference nothing forces us to rebuild $k^C$ and $v$:
# $q^C_i \cdot (c^{KV} W^{UK}_i) = (q^C_i W^{UK\top}_i)\cdot c^{KV}$, so $W^{UK}_i$ moves to the query
# side, and $\mathrm{softmax}(\cdot)\,(c^{KV} W^{UV}_i) W^O_i = \mathrm{softmax}(\cdot)\,c^{KV}\,(W^{UV}_i W^O_i)$,
# so $W^{UV}_i$ folds into the output projection. Attention then reads the cache $[c^{KV}; k^R]$
# directly: it is MQA with a single 576-wide key head and a 512-wide value head. Both forms are in
# `MultiHeadLatentAttention` (`absorbed=False/True`); they agree to round-off, with and without a
# cache, and the absorbed cache holds only the latent and the rotary key.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
mla = MultiHeadLatentAttention(d_model=32, n_heads=4, kv_lora_rank=12, qk_nope_head_dim=8,
                               qk_rope_head_dim=4, v_head_dim=6, q_lora_rank=10,
                               rng=np.random.default_rng(3), dtype=np.float64)
x = rng.standard_normal((2, 9, 32))
naive, absorbed = mla(x).data, mla(x, absorbed=True).data
print("naive vs absorbed, max |diff| < 1e-12:", np.abs(naive - absorbed).max() < 1e-12)
c = ta.cache.KVCache(1, 2, 9, mla.cache_fields, dtype=np.float64)
steps = [mla(x[:, :3], cache=c.layer(0), absorbed=True).data]
c.advance(3)
for t in range(3, 9):
    steps.append(mla(x[:, t:t + 1], positions=np.array([t]), cache=c.layer(0), absorbed=True).data)
    c.advance(1)
print("absorbed decode vs naive full forward < 1e-12:", np.abs(np.concatenate(steps, 1) - naive).max() < 1e-12)
print("cached per token and layer:", c.fields, "->", sum(s[0] for s in c.fields.values()), "numbers")
print("per-head K and V would be:", 2 * 4 * 8, "numbers (H = 4, d_h = 8)")
w_uk, w_uvo = mla.absorbed_weights()
print("folded matrices: W^UK per head", w_uk.shape, " W^UV_i W^O_i", w_uvo.shape)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Why the decoupled key?** Put RoPE on the content keys instead, $k^C_s = R_s\,c^{KV}_s W^{UK}$.
# The score becomes $q^C_t R_t^\top R_s W^{UK\top} c^{KV}_s = q^C_t R_{s-t} W^{UK\top} c^{KV}_s$:
# a rotation that depends on the key's position now sits between the query and the cache, so no
# single matrix can be folded into the query. The cell folds one matrix anyway and compares with
# the true scores (float64, one head, 12 positions):

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
r = rope_on_content_absorption_error(np.random.default_rng(0))
print(f"no RoPE on k^C:  folded-matrix scores differ by < 1e-12 (round-off only): {r['no_rope'] < 1e-12}")
print(f"RoPE on k^C:     folded-matrix scores differ by {r['rope_on_content']:.2f}, "
      f"while the scores themselves reach {r['score_scale']:.2f}")
print(f"the true RoPE scores are relative: shifting all positions by 5 changes them by < 1e-12: "
      f"{r['content_shift_change'] < 1e-12}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# With RoPE on $k^C$ the folded scores are off by more than the scores' own size, so absorption
# needs the rotary information in a separate, small, shared key that is cached as it is.
#
# **DeepSeek-V2's numbers.** 60 layers, 128 heads of width $d_h = 128$, $d_c = 512$, $d_R = 64$
# (arXiv:2405.04434, sections 2.1 and 3.1.2). The source text (2.5) divides 512 by $2 \cdot 128
# \cdot 128$ (forgetting $k^R$) and uses 36 layers:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
mha_elems, mla_elems = 2 * 128 * 128, 512 + 64
print(f"per token and layer: MHA {mha_elems} numbers, MLA {mla_elems} -> {mha_elems / mla_elems:.1f}x smaller "
      f"(source text: 1/64 from 512 alone)")
print(f"like GQA with {mla_elems / (2 * 128):.2f} KV heads of width 128")
N = 4096
print(f"MHA-shaped cache at {N} tokens: {kv_cache_bytes(1, 128, 128, N) / 2**20:.0f} MiB per layer, "
      f"{kv_cache_bytes(60, 128, 128, N) / 2**30:.1f} GiB for 60 layers "
      f"({kv_cache_bytes(36, 128, 128, N) / 2**30:.1f} GiB for the source text's 36)")
print(f"MLA at {N} tokens: {mla_cache_bytes(1, 512, 64, N) / 2**20:.1f} MiB per layer, "
      f"{mla_cache_bytes(60, 512, 64, N) / 2**20:.0f} MiB for 60 layers "
      f"(source text: 4 MB per layer, 144 MB for 36 layers)")
print(f"Llama-2-70B (GQA, 8 KV heads) at {N} tokens: {kv_cache_bytes(80, 8, 128, N) / 2**30:.2f} GiB "
      f"(source text: 9.2 GB)")

# %% [markdown] slideshow={"slide_type": "subslide"}
# So MLA's cache is 56.9 times smaller than an MHA cache of the same head shape (not 64 times), and
# DeepSeek-V2 caches 270 MiB per 4096-token sequence, not 144 MB. The source text's comparison
# with Llama-2-70B also gives that model an MHA-sized cache; with its 8 KV heads it needs 1.25 GiB.

# %% [markdown] slideshow={"slide_type": "slide"} tags=["ledger-08"]
# ## Claims ledger
#
# | source claim (section) | what we measured (cell) | verdict |
# |---|---|---|
# | GPT-3: 96 layers, 96 heads, $d_v$ = 128; 2048 tokens: 96 MB per layer, 9.2 GB in total (2.4) | §3: 96 MiB per layer, 9.00 GiB = 9.66 GB | reproduced (the units are MiB/GiB) |
# | MQA cache = 1/h of MHA, 96x smaller for h = 96 (2.4) | §3: 96x | reproduced |
# | PaLM MHA vs MQA table: cache 1.04%, perplexity 8.3 vs 8.6, few-shot 72.1% vs 70.3% (2.4) | 1/96 = 1.04% is arithmetic for 96 heads, but PaLM 540B has 48 heads (Chowdhery et al. 2022, Table 1) and already uses multi-query attention; no source for the rest | **corrected** (48 heads); quality numbers unsourced |
# | MQA: about 2% worse, 3-5x faster inference (2.4) | not measured; §2 measures the cache itself (speedup grows with context) | unsourced |
# | GQA head mapping $\lfloor i/g \rfloor$, g = number of groups (2.4) | §4: $\lfloor i/(H/H_{kv}) \rfloor$; the source's reading indexes KV heads that do not exist | corrected |
# | Llama-2-70B GQA table: cache 12.5% / 6.25% / 1.56%, quality -0.3% / -0.6% / -1.9%, speed 2.8x / 3.5x / 4.2x (2.4) | cache fractions = $H_{kv}/64$; Llama-2-70B already has 8 KV heads; §4 conversion: loss rises at conversion, mostly recovered by uptraining, MQA worst | cache column reproduced; quality and speed columns unsourced |
# | best choice g = h/8: < 0.5% loss, close to 3x faster (2.4) | not measured | unsourced |
# | DeepSeek-V2: $d_{model}$ 5120, h = 128, $d_k$ = 128, $d_{latent}$ = 512 (2.5) | §5 (arXiv:2405.04434) | reproduced |
# | MLA/MHA = 512 / (2·128·128) = 1/64 (2.5) | §5: the cache also holds $k^R$ (64): 576 / 32768 = 1/56.9 | corrected |
# | 256 MB per layer for MHA at N = 4096 (2.5) | §5: 256 MiB | reproduced |
# | 36 layers, 9.2 GB MHA vs 144 MB MLA, 64x (2.5) | §5: 60 layers; 15.0 GiB vs 270 MiB, 56.9x | corrected |
# | 2024: MLA cuts the KV cache 8× (1.1) | §5: 576 vs 32,768 cached elements per token and layer, 56.9× less than MHA of the same shape; the DeepSeek-V2 paper reports 93.3% less than its dense DeepSeek 67B | **corrected** |
# | W^up are weights, not cache (2.5) | §5: the absorbed cache holds only $c^{KV}$ and $k^R$ | reproduced |
# | DeepSeek-V2 236B parameters (2.5) | arXiv:2405.04434 (236B total, 21B activated per token) | reproduced (quoted with its source) |
# | Llama-2-70B vs DeepSeek-V2: PPL 8.2 vs 7.9, MMLU 69.7 vs 78.5, HumanEval 29.9 vs 45.1, cache 9.2 GB vs 144 MB (2.5) | PPL rows have no source; REFERENCE.md: Llama-2-70B MMLU 68.9, DeepSeek-V2 base HumanEval 48.8; §5: caches 1.25 GiB vs 270 MiB | corrected / unsourced |
# | "MLA compresses 64x and performs better" because of regularisation, redundancy, gradient sharing (2.5) | not measured; the quality comparison mixes different models | unsourced |
# | shared taxi: 100 / 10 / 1 cars, cost 100% / 10% / 1%, satisfaction 100% / 98% / 92%, GQA keeps 90% flexibility (3.5) | analogy; §4 cache fractions are $H_{kv}/H$ | illustrative (numbers unsourced) |
# | video compression: 1 GB -> 50 MB, 20x, key frames at 5 fps (3.6) | analogy; §5: MLA's real factor is 56.9x vs MHA of the same shape | illustrative (numbers unsourced) |
# | $d_{model}$ = 5120 -> $d_{latent}$ = 512 down-projection (3.6) | §5 | reproduced |
#
# Beyond the source text: prefill + decode equals the full forward to 1e-9 for MHA, GQA, MQA and MLA
# and six position encodings (§1); the cached step is faster than the uncached one from the context
# length printed in §2 on.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# `exercises/ch08_kv_cache.py`: append to a cache and continue RoPE positions, map query heads to
# KV heads while decoding with GQA, and compute MLA's absorbed scores from the latent cache. Grade
# them with `python3 course.py grade ch08`.
