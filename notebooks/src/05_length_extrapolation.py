# %% [markdown] slideshow={"slide_type": "slide"}
# # Chapter 05: Length extrapolation (长度外推)
#
# A model is trained on sequences of length $L$. What happens when it reads $2L$, $4L$, $8L$
# tokens? The source text answers with tables of perplexities for GPT-2 and LLaMA (sections 2.1
# step 4, 2.2 step 5, 4.2, 4.3) and an explanation through its "audio spectrum" analogy (频谱分析,
# section 3.7). None of the tables has a source. This chapter **measures** instead:
#
# 1. a task where far tokens matter, so a model that ignores them fails (§1);
# 2. six encodings from chapter 03 (sinusoidal, learned, RoPE, ALiBi, T5 bias, NoPE) trained with the
#    same budget at $L$ and tested at $L$ ... $8L$, three seeds each (§2);
# 3. **which** RoPE pairs go out of distribution: the slow ones, not the fast ones the source names,
#    measured by switching pairs on and off in a trained model (§3);
# 4. the four ways to stretch RoPE without retraining, PI, NTK-aware, dynamic NTK and YaRN, written
#    from their papers, beside the source's backwards version of YaRN (§4);
# 5. all four, zero-shot and after a short fine-tune at $4L$ (§5), and what YaRN's temperature does to
#    the attention entropy (§6).
#
# Library: `ta.positional.scaled_rope` (the frequencies), `TransformerLM(..., rope_scaling=...)` /
# `model.set_rope_scaling(...)` (re-evaluate a trained model with any method, weights untouched),
# `tinyattn.experiments.extrapolation` (the seeded study). The full study is
# `python benchmarks/extrapolation.py` (its run time on a shared 2-core machine is printed in §2); it writes
# `benchmarks/results/extrapolation.json`, which this notebook reads. Without that file the notebook
# runs a reduced version (one seed, shorter training) instead.

# %% slideshow={"slide_type": "skip"}
%config InlineBackend.figure_formats = ['png']
import json
import math
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import tinyattn as ta
from tinyattn import positional as P
from tinyattn.experiments import distractor_recall
from tinyattn.experiments import extrapolation as X
from tinyattn.viz import setup_notebook
setup_notebook()            # small PNG figures, fixed style
rng = np.random.default_rng(0)

# %% [markdown] slideshow={"slide_type": "slide"}
# <a id="task"></a>
#
# ## 1. A task where far tokens matter
#
# The source's analogy for attention is a library lookup (图书馆检索, section 3.1): a query is
# compared with every key and the matching entry's content is read out. Our task is exactly that.
# The context holds a few **cards** `[k:v]` ("key k has value v", one token each) scattered at random
# among filler tokens; after `SEP` every key is asked once and the model must answer its value. Only
# the answers are scored. A card can be anywhere, so at test length $8L$ most cards lie further back
# than any distance the model saw in training. A model that does not reach them answers at chance.

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
cfg = X.ExtrapolationConfig()
t = cfg.task
x, y = distractor_recall(1, 24, np.random.default_rng(3), **t)
v0, c0 = 1 + t["n_keys"], 1 + t["n_keys"] + t["n_values"]
f0 = c0 + t["n_keys"] * t["n_values"]

def show(tok):
    if tok == 0:
        return "SEP"
    if tok < v0:
        return f"k{tok}"
    if tok < c0:
        return f"v{tok - v0}"
    if tok < f0:
        return f"[k{(tok - c0) // t['n_values'] + 1}:v{(tok - c0) % t['n_values']}]"
    return "."

seq = list(x[0]) + [y[0, -1]]
print(" ".join(show(int(s)) for s in seq))
print("scored targets:", " ".join(show(int(v)) for v in y[0] if v != -100))
print(f"training length L = {cfg.train_len}, test lengths {cfg.lengths}; vocabulary {cfg.vocab}; "
      f"chance accuracy 1/{t['n_values']} = {1 / t['n_values']:.3f}, chance loss ln {t['n_values']} = "
      f"{math.log(t['n_values']):.3f} nats")
print(f"model: d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.n_heads} heads, {cfg.steps} AdamW steps "
      f"of {cfg.batch} sequences at lr {cfg.lr}, seeds {list(cfg.seeds)}")

# %% [markdown] slideshow={"slide_type": "slide"}
# <a id="encodings"></a>
#
# ## 2. Six encodings, one budget, four lengths
#
# Every encoding gets the same model, the same data stream and the same number of steps. The learned
# table is given rows up to $8L$ so that it can be evaluated at all; the rows beyond $L$ never receive
# a gradient and keep their random initialisation (a learned table has nothing to say about
# positions it never saw). Loss is the mean cross-entropy of the scored answers in nats.

# %% slideshow={"slide_type": "-"} tags=["ledger-05-s2"]
candidates = [Path(p) / "benchmarks" / "results" / "extrapolation.json" for p in ("..", ".")]
res_path = next((c for c in candidates if c.exists()), None)
if res_path is not None:
    res = json.loads(res_path.read_text())
    print(f"read {res_path}: {res['meta']['command']}, {res['meta']['date']}, "
          f"{res['meta']['wall_seconds']:.0f} s on {res['meta']['machine']['cpu_count']} cores")
else:                       # reduced version: one seed, shorter training (about a minute)
    cfg_small = X.ExtrapolationConfig(steps=400, seeds=(0,), n_eval=64, finetune_steps=20)
    res = X.run(cfg_small, progress=True)
    res["reduced"] = True
    print("no committed results: ran the reduced study (1 seed, 400 steps); the prose below describes "
          "the full run's numbers")
LENGTHS = res["config"]["lengths"]
L_TRAIN = res["config"]["train_len"]
SEEDS = res["config"]["seeds"]

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
def row(runs, key):
    return [X.summary(runs, n, key) for n in LENGTHS]

print(f"{'encoding':<11}" + "".join(f"{'L=' + str(n):>18}" for n in LENGTHS) + "   (mean [min, max] over seeds)")
for key in ("loss", "acc"):
    print(key)
    for enc, runs in res["encodings"].items():
        print(f"{enc:<11}" + "".join(f"{m:8.3f} [{lo:.2f},{hi:.2f}]" for m, lo, hi in row(runs, key)))

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
bucket = P.t5_relative_bucket(-np.arange(8 * L_TRAIN), bidirectional=False)   # key - query <= 0
print(f"T5 buckets (32 buckets, max_distance 128): distances 0..{L_TRAIN - 1} -> buckets "
      f"{bucket[:L_TRAIN].min()}..{bucket[:L_TRAIN].max()}; distances {L_TRAIN}..{8 * L_TRAIN - 1} -> "
      f"buckets {bucket[L_TRAIN:].min()}..{bucket[L_TRAIN:].max()}")
slopes = P.alibi_slopes(cfg.n_heads)
print("ALiBi slopes", slopes.tolist(), "; bias at distance", L_TRAIN - 1, ":",
      [f"{-m * (L_TRAIN - 1):.2f}" for m in slopes], "; at distance 200:", [f"{-m * 200:.2f}" for m in slopes])

# %% slideshow={"slide_type": "subslide"}
def plot_lengths(ax, entries, key, title):
    for name, runs in entries.items():
        s = np.array(row(runs, key))
        ax.errorbar(LENGTHS, s[:, 0], yerr=[s[:, 0] - s[:, 1], s[:, 2] - s[:, 0]], marker="o",
                    capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(LENGTHS, [f"{n // L_TRAIN}L" if n > L_TRAIN else "L" for n in LENGTHS])
    ax.axvline(L_TRAIN, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(f"test length (L = {L_TRAIN})")
    ax.set_title(title)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
plot_lengths(axes[0], res["encodings"], "loss", "answer loss (nats)")
plot_lengths(axes[1], res["encodings"], "acc", "answer accuracy")
axes[1].axhline(1 / t["n_values"], color="k", lw=0.8, ls="--", label="chance")
axes[1].legend(fontsize=7, ncol=2)
fig.suptitle("six encodings trained at L, tested at 2L, 4L, 8L (bars: min..max over seeds)")
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What we see** (numbers from the table above). At the training length every encoding solves the
# task (accuracy 0.97 to 0.99). Beyond it they split:
#
# - **RoPE** without any scaling is the worst: its loss jumps from 0.08 at $L$ to 1.95 at $2L$ and
#   3.71 at $4L$ (accuracy 0.60, then 0.32). **Sinusoidal** degrades too (0.64, 2.08).
# - The **T5 bias** extrapolates best (accuracy 0.895 at $8L$). The bucket line printed above shows
#   why: distances up to $L - 1$ use buckets 0..21 in training; every longer distance falls into the
#   logarithmic buckets 21..31, which (except 21) were never trained and keep their small initial
#   values, so a far card gets an almost neutral bias and the lookup runs on content alone.
# - **NoPE** and the **learned** table hold up well to $4L$ (0.92) and reach 0.80 / 0.77 at $8L$:
#   this lookup needs the *content* of the card, not its position, and neither encoding injects
#   anything strange at the far cards (NoPE: nothing; learned: the rows beyond $L$ are small random
#   vectors).
# - **ALiBi** falls to 0.58 at $8L$: its bias $-m_h(i-j)$ pushes far keys down by design (that is
#   what lets ALiBi run at any length on text, where local evidence dominates). With our two heads'
#   slopes (printed above) a card 200 tokens back loses 12.5 logits in the steep head and 0.8 in the
#   flat one, against at most 1.9 and 0.1 for any card inside the training length, which is consistent
#   with the drop: the lookup has to run through the flat head alone.
#
# The source's tables claim the opposite ordering for RoPE and sinusoidal (section 2.2 step 5:
# "RoPE外推能力显著优于Sinusoidal", with LLaMA numbers) and steady degradation for sinusoidal
# (2.1 step 4: +20% PPL at $2\times$, +117% at $8\times$). Neither table has a source. On our task both
# encodings break as soon as the input passes $L$, RoPE harder; Press et al. (2022, ALiBi, Fig. 1)
# likewise report rotary and sinusoidal models degrading beyond their training length on
# WikiText-103. Unscaled RoPE is **not** a length-extrapolating encoding. Why it breaks, and how
# to repair it without retraining, is the rest of the chapter.

# %% [markdown] slideshow={"slide_type": "slide"}
# <a id="which-pairs"></a>
#
# ## 3. Which RoPE pairs go out of distribution? (source 3.7, 4.3 defect 2)
#
# RoPE turns pair $i$ of q and k by $m\theta_i$, $\theta_i = b^{-2i/d}$ (chapter 03). Over the
# training length pair $i$ makes $r_i = L/\lambda_i$ full turns, with wavelength
# $\lambda_i = 2\pi/\theta_i$.
#
# - A **fast** pair ($r_i \gg 1$) has been through every angle many times during training. At
#   position $4L$ its angle is one it has already seen: nothing new.
# - A **slow** pair ($r_i < 1$) has only ever seen an arc of its circle, from 0 to $2\pi r_i$. At
#   $4L$ it shows angles that never occurred in training. **These** are the out-of-distribution pairs.
#
# The source says the opposite twice: "高频部分: 超出训练范围 → 失真; 低频部分: 仍在范围内 → 保留" (3.7)
# and "外推时高频维度失真 ... 高频维度主导性能下降" (4.3, with an unsourced table of perplexity by
# dimension band). Its worked example even computes $2048 \bmod 6$, i.e. it notices that the
# fast pair wraps around to a familiar angle, and draws the wrong conclusion. First the turns per
# pair for our toy ($d_{head} = 16$, base 100, $L = 32$) and for a Llama-2-sized head
# ($d_{head} = 128$, base $10^4$, $L = 4096$):

# %% slideshow={"slide_type": "-"} tags=["ledger-05-s3"]
# NBVAL_CHECK_OUTPUT
head_dim, base = cfg.d_model // cfg.n_heads, cfg.rope_base
for name, d_, b_, L_ in (("toy", head_dim, base, L_TRAIN), ("Llama-2 head", 128, 10000.0, 4096)):
    th = P.rope_inv_freq(d_, b_)
    turns = L_ * th / (2 * math.pi)
    slow = np.where(turns < 1)[0]
    print(f"{name}: {d_ // 2} pairs; turns within L: "
          + (" ".join(f"{r:.2f}" for r in turns) if d_ <= 16 else f"pair 0: {turns[0]:.0f}, last: {turns[-1]:.3f}"))
    print(f"  pairs that complete less than one turn within L (out of distribution at 4L): "
          f"{slow[0]}..{slow[-1]} ({len(slow)} of {d_ // 2})")

# %% slideshow={"slide_type": "subslide"}
th = P.rope_inv_freq(head_dim, base)
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), subplot_kw={"projection": "polar"})
for ax, i in zip(axes, (0, head_dim // 2 - 1)):
    seen = np.arange(L_TRAIN) * th[i]
    new = np.arange(L_TRAIN, 4 * L_TRAIN) * th[i]
    ax.plot(new % (2 * np.pi), np.full(new.size, 1.0), "o", ms=3, color="tab:red", label="positions L..4L")
    ax.plot(seen % (2 * np.pi), np.full(seen.size, 0.8), "o", ms=3, color="tab:blue", label="training 0..L")
    ax.set_ylim(0, 1.1); ax.set_yticks([])
    ax.set_title(f"pair {i}: {L_TRAIN * th[i] / (2 * np.pi):.2f} turns in L", fontsize=9)
axes[1].legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.6, -0.15))
fig.suptitle("angles m*theta_i: the fast pair has seen them all, the slow pair meets new ones")
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Measured on a trained model.** We retrain the seed-0 RoPE model of §2 here (same seed, same
# code: its loss at $L$ must equal the stored one), then evaluate it at $4L$ four ways, changing only
# the frequency table: plain; only the **slow** pairs ($r_i < 1$) interpolated ($\theta_i/4$, so
# their angles at $4L$ stay inside the training arc); only the **fast** pairs interpolated; all of
# them (PI).

# %% slideshow={"slide_type": "-"}
model, _ = X.train_model(cfg, "rope", 0, progress=True)
full = not res.get("reduced") and 0 in SEEDS       # the stored numbers come from the same model
stored = res["encodings"]["rope"][0]["eval"][str(L_TRAIN)]["loss"] if full else float("nan")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print(f"retrained seed 0 at L: loss {X.evaluate(model, cfg, L_TRAIN)['loss']:.4f}, stored {stored:.4f}")
turns = L_TRAIN * th / (2 * math.pi)
variants = {"plain RoPE": th,
            "slow pairs / 4": np.where(turns < 1, th / 4, th),
            "fast pairs / 4": np.where(turns >= 1, th / 4, th),
            "all pairs / 4 (PI)": th / 4}
for name, inv in variants.items():
    model.pos.inv_freq = inv
    e = X.evaluate(model, cfg, 4 * L_TRAIN)
    print(f"{name:<20} at 4L: loss {e['loss']:.3f}, accuracy {e['acc']:.3f}")
model.set_rope_scaling(None)

# %% [markdown] slideshow={"slide_type": "subslide"}
# The retrained model reproduces the stored loss. Interpolating only the five slow pairs brings the
# loss at $4L$ from 3.78 down to 0.33, close to what interpolating all pairs (PI) does (0.29);
# interpolating only the three fast pairs leaves it at 3.82. The failure lives in the low
# frequencies.
#
# The source's audio-spectrum analogy (3.7), corrected: the treble (fast pairs) has cycled many
# times within every training example, so a longer recording holds no new treble; the bass (slow
# pairs) never completed one cycle, so a longer recording carries bass the model has never heard.
# YaRN's "变速不变调" (change the speed, keep the pitch) then means: slow down the bass (interpolate the
# slow pairs) and leave the treble alone. With chapter 03's clock gears (3.3): a slow hand that never
# completed a lap during training shows, past the end of training, a position it has never shown.

# %% [markdown] slideshow={"slide_type": "slide"}
# <a id="methods"></a>
#
# ## 4. Four ways to stretch RoPE, from their papers
#
# With $s = L_{new}/L_{train}$ (REFERENCE section 3, Hugging Face `ROPE_INIT_FUNCTIONS`):
#
# | method | new frequencies | what it does to the pairs |
# |---|---|---|
# | PI (Chen et al. 2023) | $\theta_i' = \theta_i / s$ | every pair slowed by $s$: positions squeezed into $[0, L)$ |
# | NTK-aware (bloc97 2023) | $b' = b\, s^{d/(d-2)}$, $\theta_i' = b'^{-2i/d}$ | fastest pair kept, slowest slowed by exactly $s$, geometric in between |
# | dynamic NTK (HF `dynamic`) | $b' = b\,(sL/L_{train} - (s-1))^{d/(d-2)}$, $L$ = current length $\ge L_{train}$ | plain RoPE up to $L_{train}$; NTK with a growing base beyond |
# | YaRN (Peng et al. 2023) | $\theta_i' = (1-\gamma_i)\,\theta_i/s + \gamma_i\,\theta_i$, $\gamma$ a ramp in $r_i = L_{train}/\lambda_i$ | pairs with $r_i > \beta = 32$ kept, pairs with $r_i < \alpha = 1$ interpolated like PI, linear blend between; and one temperature: cos, sin times $0.1\ln s + 1$ |
#
# The source's YaRN (4.2) is the reverse: "高频(小i): 线性内插, $\theta_i' = \theta_i \times s$; 低频(大i):
# 保持不变". Multiplying by $s$ speeds a pair up (that is extrapolation, not interpolation), and it is
# applied to the pairs that needed no help while leaving the out-of-distribution ones alone. Its 4.3
# adds a per-dimension "temperature" $t_i = 1 + \beta\exp(-\lambda_i/\lambda_{min})$ inside the
# frequency, $\theta_i' = \theta_i\,s\,t_i$; YaRN has no such thing. YaRN's temperature is **one**
# number $\sqrt{1/t} = 0.1\ln s + 1$ that multiplies cos and sin, i.e. both q and k, so every logit
# is multiplied by $(0.1\ln s + 1)^2$. The source gives no $\beta$ or $\lambda_{min}$; to draw its
# version we take $\beta = 1$ and YaRN's own thresholds $\lambda_{min} = L/32$, $\lambda_{max} = L$
# (our choice, labelled in the figure). Llama 3.1's scaling (a kept band, a divided band and a
# blend, by wavelength) is drawn for comparison.

# %% slideshow={"slide_type": "subslide"} tags=["ledger-05-s4"]
def source_yarn(d_, s, L_, b_=10000.0, beta_t=None):
    """The source text's 4.2 formula (and, with beta_t, its 4.3 'temperature'): theta * s on fast pairs."""
    th_ = P.rope_inv_freq(d_, b_)
    r = L_ * th_ / (2 * np.pi)
    w = np.clip((r - 1) / (32 - 1), 0, 1)               # 1 on fast pairs (lambda < L/32), 0 on slow
    mult = 1 + (s - 1) * w                              # theta*s on fast, theta on slow, blend between
    if beta_t is not None:
        lam = 2 * np.pi / th_
        mult = mult * (1 + beta_t * np.exp(-lam / (L_ / 32)))
    return th_ * mult

d_, L_, s = 128, 4096, 8.0
th128 = P.rope_inv_freq(d_)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for m in ("linear", "ntk", "yarn", "llama3"):
    inv, _ = P.scaled_rope(d_, m, s, L_, base=10000.0)
    axes[0].plot(inv / th128, label=m if m != "linear" else "PI (linear)")
inv, _ = P.scaled_rope(d_, "dynamic", 2.0, L_, seq_len=int(s * L_))
axes[0].plot(inv / th128, label="dynamic NTK (factor 2) at 8L")
axes[0].plot(source_yarn(d_, s, L_) / th128, "k--", label="source 4.2 'YaRN'")
axes[0].plot(source_yarn(d_, s, L_, beta_t=1.0) / th128, "k:", label="source 4.3 with t_i (beta=1, ours)")
axes[0].set_yscale("log", base=2)
axes[0].set_xlabel("pair i (0 = fastest)")
axes[0].set_ylabel("theta_i' / theta_i")
axes[0].set_title("d = 128, base 1e4, L = 4096, s = 8", fontsize=9)
axes[0].legend(fontsize=6.5)
gamma_hf = 1 - (1 - P.scaled_rope(d_, "yarn", s, L_)[0] / th128) / (1 - 1 / s)
gamma_paper = 1 - (1 - P.scaled_rope(d_, "yarn", s, L_, ramp="ratio")[0] / th128) / (1 - 1 / s)
axes[1].plot(gamma_paper, label="YaRN ramp gamma (paper: linear in r)")
axes[1].plot(gamma_hf, "--", label="YaRN ramp gamma (HF: linear in i)")
w_src = np.clip((L_ * th128 / (2 * np.pi) - 1) / 31, 0, 1)
axes[1].plot(w_src, "k:", label="source: weight of 'theta * s'")
axes[1].axvspan(*P.yarn_ramp_range(d_, L_), color="grey", alpha=0.15)
axes[1].set_xlabel("pair i")
axes[1].set_title("gamma = 1: keep theta_i; gamma = 0: theta_i / s", fontsize=9)
axes[1].legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
inv, att = P.scaled_rope(128, "yarn", 8.0, 4096)
lo, hi = P.yarn_ramp_range(128, 4096)
print(f"YaRN d=128, L=4096, s=8: ramp over pairs {lo}..{hi}; pairs 0..{lo} kept: "
      f"{np.allclose(inv[:lo + 1], th128[:lo + 1])}; pairs {hi}..63 = theta/8: {np.allclose(inv[hi:], th128[hi:] / 8)}")
print(f"attention factor 0.1 ln 8 + 1 = {att:.4f} on cos and sin -> logits x {att ** 2:.4f}")
src = source_yarn(128, 8.0, 4096)
print(f"source 4.2 version: pair 0 turns {src[0] / th128[0]:.1f}x faster, slowest pair x {src[-1] / th128[-1]:.1f} "
      f"(YaRN: x {inv[0] / th128[0]:.1f} and x {inv[-1] / th128[-1]:.3f})")
for L_cur in (2048, 4096, 8192, 32768):
    b_dyn = 10000.0 * max(2.0 * max(L_cur, 4096) / 4096 - 1.0, 1.0) ** (128 / 126)
    same = np.allclose(P.scaled_rope(128, "dynamic", 2.0, 4096, seq_len=L_cur)[0], P.rope_inv_freq(128, b_dyn))
    print(f"dynamic NTK (factor 2) at length {L_cur:>5}: base {b_dyn:9.0f}  (closed form matches: {same})")

# %% [markdown] slideshow={"slide_type": "fragment"}
# Dynamic NTK (source 4.3's "优化2") is stated there as $b = 10000\,(L_{current}/L_{train})^{d/(d-2)}$,
# which is NTK-aware scaling with $s = L_{current}/L_{train}$, i.e. Hugging Face's `dynamic` at
# factor 1 (our test `test_dynamic_factor_one_is_ntk_at_current_length` checks the identity). The
# source calls it "所有频率统一缩放" (all frequencies scaled alike); that describes PI. NTK keeps the
# fastest pair exactly and slows the slowest by $s$ (the left figure).
#
# The exercises ask you to write PI, the NTK base, YaRN's ramp and frequencies, and one dynamic-NTK
# step; the graded tests compare them with `scaled_rope`.

# %% [markdown] slideshow={"slide_type": "slide"}
# <a id="measured"></a>
#
# ## 5. Measured: PI, NTK, dynamic NTK and YaRN on the trained RoPE models
#
# Each trained RoPE model (3 seeds) is re-evaluated with `model.set_rope_scaling(config)`, weights
# untouched. The static methods use $s = 4$ (target length $4L$) at every test length; dynamic NTK
# uses Hugging Face's formula with factor 2 and recomputes its base from the current length at every
# forward pass. "yarn_no_temp" is YaRN's frequencies without the temperature. Then a copy of each
# model is fine-tuned for 40 steps (batch 8) at length $4L$ with the method's frequencies; the
# control "none" is fine-tuned the same way with plain RoPE.

# %% slideshow={"slide_type": "-"} tags=["ledger-05-s5"]
# NBVAL_CHECK_OUTPUT
# our toy at s = 4: how much each method slows every pair, and how far the slow pairs' angles reach at
# 4L, in units of the largest angle they reached in training (1.00 = still inside the training arc)
print("pair           " + "".join(f"{i:>6}" for i in range(head_dim // 2)))
for m in ("linear", "ntk", "yarn"):
    inv, _ = P.scaled_rope(head_dim, m, 4.0, L_TRAIN, base=base)
    print(f"{m:<6} theta/theta'" + "".join(f"{a:6.2f}" for a in th / inv))
    slow = turns < 1
    print(f"{'':<6} reach at 4L " + "".join(f"{4 * b / a:6.2f}" if sl else "     -"
                                          for a, b, sl in zip(th, inv, slow)))

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
for stage in ("zero_shot", "finetuned"):
    print(stage, "- loss (mean [min, max] over seeds)")
    for m, runs in res[stage].items():
        print(f"  {m:<13}" + "".join(f"{a:8.3f} [{lo:.2f},{hi:.2f}]" for a, lo, hi in row(runs, "loss")))
four = str(4 * L_TRAIN)
y_runs, n_runs = res["zero_shot"]["yarn"], res["zero_shot"]["none"]
yl = np.array([r["eval"][four]["loss"] for r in y_runs])
nl = np.array([r["eval"][four]["loss"] for r in n_runs])
print(f"at 4L, zero-shot, {len(yl)} seeds: unscaled {nl.mean():.3f} (range {nl.min():.3f}..{nl.max():.3f}), "
      f"YaRN {yl.mean():.3f} (range {yl.min():.3f}..{yl.max():.3f}); per seed ratio unscaled/YaRN: "
      + ", ".join(f"{a / b:.1f}" for a, b in zip(nl, yl)))
ya = np.array([r["eval"][four]["acc"] for r in y_runs])
na = np.array([r["eval"][four]["acc"] for r in n_runs])
print(f"accuracy at 4L: unscaled {na.mean():.3f} (range {na.min():.3f}..{na.max():.3f}), "
      f"YaRN {ya.mean():.3f} (range {ya.min():.3f}..{ya.max():.3f})")

# %% [markdown] slideshow={"slide_type": "subslide"}
# The same check live, on the seed-0 model retrained in §3: `set_rope_scaling` with YaRN must give
# the stored zero-shot number; and the source's 4.2 version of YaRN (fast pairs sped up by $s$, slow
# pairs kept, drawn in §4) is evaluated the same way.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
model.set_rope_scaling({"method": "yarn", "factor": 4.0})
e = X.evaluate(model, cfg, 4 * L_TRAIN)
stored_y = res["zero_shot"]["yarn"][0]["eval"][four]["loss"] if full else float("nan")
print(f"seed 0, YaRN s=4 at 4L: loss {e['loss']:.4f} (stored {stored_y:.4f}), accuracy {e['acc']:.3f}")
model.set_rope_scaling(None)
model.pos.inv_freq = source_yarn(head_dim, 4.0, L_TRAIN, base)
e = X.evaluate(model, cfg, 4 * L_TRAIN)
print(f"seed 0, source-text 'YaRN' (theta*s on fast pairs) at 4L: loss {e['loss']:.3f}, accuracy {e['acc']:.3f}")
model.set_rope_scaling(None)

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), sharex=True)
for col, stage in enumerate(("zero_shot", "finetuned")):
    plot_lengths(axes[0, col], res[stage], "loss", f"{stage.replace('_', '-')}: loss (nats)")
    plot_lengths(axes[1, col], res[stage], "acc", f"{stage.replace('_', '-')}: accuracy")
    axes[1, col].axhline(1 / t["n_values"], color="k", lw=0.8, ls="--")
axes[0, 0].legend(fontsize=7)
axes[0, 1].legend(fontsize=7)
fig.suptitle("RoPE models trained at L, stretched with PI (linear), NTK, dynamic NTK, YaRN (s = 4)")
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# **Zero-shot** (left). At $4L$, the length the static methods were set for, YaRN brings the loss
# from 3.71 (unscaled, 3 seeds 3.64..3.78) down to 0.14 (0.11..0.16), a 23- to 35-fold reduction
# in every seed, and accuracy from 0.32 to 0.95. The source's backwards version makes the seed-0
# model no better than unscaled RoPE (it leaves the slow pairs, the broken ones, untouched). PI
# reaches 0.33, NTK-aware only 1.39: the per-pair table above shows why. NTK slows pair 3 only 1.8-fold,
# so at $4L$ its angle still reaches 2.2 times beyond its training arc; PI and YaRN keep every slow pair
# inside it (reach 1.00). At this toy size no pair turns 32 times within $L$, so YaRN keeps only pair 0
# whole and blends pairs 1 and 2. Dynamic NTK is the
# only method that costs nothing at $L$ (it *is* plain RoPE there: 0.078, the unscaled number) and
# the best at $8L$ (1.70), because it keeps stretching; the static methods, set for $4L$, break
# again at $8L$. The price of the static methods is visible at $L$: squeezing positions raises the
# loss from 0.08 to 0.13 (PI, YaRN).
#
# **Fine-tuned** (right). Forty steps at $4L$ with YaRN's frequencies give the lowest losses at
# $2L$ and $4L$ (0.082 and 0.067), with PI (0.069) and dynamic NTK (0.091) close behind at $4L$.
# The control matters: fine-tuning the *unscaled*
# model at $4L$ for the same 40 steps leaves it at 1.75, so the gain comes from the frequencies, not
# from the extra steps at the longer length. Dynamic NTK, fine-tuned, also generalises to $8L$ (0.43).
# Fine-tuning only at $4L$ costs every variant some loss at $L$ (0.18 to 0.36, from 0.08).
#
# The source's tables (4.2: LLaMA 2k→8k, original 18.7 / linear 14.2 / YaRN 12.9 PPL; 4.3:
# 2×/4×/8× for original / NTK / YaRN) have no source. Their **ordering** (YaRN best, then PI or
# NTK, unscaled worst) is what we measure at $2L$ and $4L$; the numbers themselves are not
# comparable (their perplexities on text, ours answer losses on a lookup task).

# %% [markdown] slideshow={"slide_type": "slide"}
# <a id="entropy"></a>
#
# ## 6. Attention entropy grows with length; the temperature pulls it back (source 4.2, 4.3)
#
# Softmax over $n$ keys with logits of a fixed spread becomes flatter as $n$ grows: the uniform
# distribution has entropy $\ln n$, and a query's one correct key competes with more and more
# distractors. YaRN's temperature multiplies every logit by $(0.1\ln s + 1)^2$ (1.297 at $s = 4$) to
# sharpen the softmax back. The source's GPT-2 table (4.2) lists attention entropy **falling** with
# length (2.7 at 1024 to 1.2 at 8192), without a source. We measure the mean entropy of the last
# layer's attention at the answer queries, for the three seeds' RoPE models.

# %% slideshow={"slide_type": "-"} tags=["ledger-05-s6"]
# NBVAL_CHECK_OUTPUT
ent = res["entropy"]
print(f"YaRN s=4: logits x (0.1 ln 4 + 1)^2 = {(0.1 * math.log(4) + 1) ** 2:.4f}")
print(f"{'':<14}" + "".join(f"{'L=' + str(n):>9}" for n in LENGTHS))
print(f"{'ln(n) uniform':<14}" + "".join(f"{math.log(n):9.3f}" for n in LENGTHS))
for m in ("none", "yarn_no_temp", "yarn"):
    print(f"{m:<14}" + "".join(f"{np.mean(ent[m][str(n)]):9.3f}" for n in LENGTHS))
for m in ("yarn_no_temp", "yarn"):
    e4 = np.mean([r["eval"][four]["loss"] for r in res["zero_shot"][m]])
    print(f"loss at 4L, {m}: {e4:.3f}")

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(LENGTHS, [math.log(n) for n in LENGTHS], "k--", label="ln n (uniform)")
for m in ("none", "yarn_no_temp", "yarn"):
    e = np.array([ent[m][str(n)] for n in LENGTHS])
    ax.errorbar(LENGTHS, e.mean(1), yerr=[e.mean(1) - e.min(1), e.max(1) - e.mean(1)], marker="o",
                capsize=3, label=m)
ax.set_xscale("log", base=2)
ax.set_xlabel("sequence length n")
ax.set_ylabel("attention entropy (nats)")
ax.set_title("last layer, answer queries, 3 seeds", fontsize=9)
ax.legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# The entropy **grows** with length for every variant (the opposite of the source's table), and
# the temperature lowers it at every length. At $4L$ YaRN with its temperature has a loss of 0.140
# against 0.398 without it: on this task the temperature is worth a factor of almost 3 in loss. The
# source's 4.3 table reports the same direction (YaRN frequency only 12.9, with temperature 11.8
# PPL, no source).

# %% [markdown] slideshow={"slide_type": "slide"}
# <a id="unsourced"></a>
#
# ## 7. What the source adds that we could not find
#
# **"Grouped RoPE"** (4.3, "优化3"): different head groups with bases $10000\cdot 2^g$, with a
# document-NLI table (78.2% → 79.8%). We found no published method or result under that name; the
# table is unsourced and we do not test it. (Giving heads different bases is easy to try with
# `apply_rope`, and it would be the course's own experiment, not a known method.)
#
# **The per-dimension temperature** $t_i$ (4.3) is not in YaRN (§4): YaRN's temperature is one
# scalar per model, $0.1\ln s + 1$ on cos and sin.

# %% [markdown] slideshow={"slide_type": "slide"} tags=["ledger-05"]
# <a id="ledger"></a>
#
# ## Claims ledger
#
# | source claim (section) | what we measured (cell) | verdict |
# |---|---|---|
# | sinusoidal PPL 512→4096: +20%, +48%, +117% (2.1 step 4) | §2: sinusoidal answer loss 0.10 at L, 0.64 at 2L, 2.08 at 4L, 2.85 at 8L | direction reproduced, numbers unsourced |
# | LLaMA RoPE vs sinusoidal, RoPE "显著优于" (2.2 step 5) | §2: unscaled RoPE degrades *faster* than sinusoidal (3.71 vs 2.08 at 4L) | not reproduced (table unsourced) |
# | GPT-2 sinusoidal: PPL and attention entropy vs length, entropy 2.7 → 1.2 (4.2) | §6: entropy grows with length (RoPE models, all variants) | corrected (direction); numbers unsourced |
# | fast (high-frequency) pairs go out of distribution; "高频维度主导性能下降" (3.7, 4.3) | §3: slow pairs interpolated alone recover the loss at 4L, fast pairs alone do not | corrected |
# | YaRN: $\theta_i' = \theta_i \times s$ on high frequencies, low kept (3.7, 4.2) | §4: YaRN keeps the fast pairs and divides the slow ones by $s$ (tests: `test_scaling_limits.py`) | corrected |
# | YaRN temperature $t_i$ per dimension inside the frequency (4.3) | §4: one global factor $0.1\ln s + 1$ on cos/sin, logits × its square (test `test_yarn_attention_factor_scales_logits_by_its_square`) | corrected |
# | LLaMA 2k→8k: original 18.7, linear 14.2, YaRN 12.9 (4.2) | §5 zero-shot at 4L: unscaled 3.71, PI 0.33, YaRN 0.14 nats | ordering reproduced, numbers unsourced |
# | YaRN frequency 12.9 vs frequency + temperature 11.8 (4.3) | §5/§6 at 4L: 0.398 without, 0.140 with the temperature | direction reproduced, numbers unsourced |
# | 2×/4×/8×: original, NTK, YaRN (4.3) | §5 zero-shot: YaRN < NTK < unscaled at 2L and 4L; at 8L dynamic NTK is best | ordering reproduced at 2L, 4L; unsourced |
# | dynamic NTK $b = 10000(L/L_{train})^{d/(d-2)}$, "所有频率统一缩放" (4.3) | §4: that is NTK at $s = L/L_{train}$ (HF dynamic, factor 1); NTK keeps the fastest pair | formula consistent; "uniform" corrected |
# | ALiBi "外推10×+" (4.1) | §2: ALiBi accuracy 0.58 at 8L on a lookup task | unsourced; not reproduced here |
# | NoPE "无限外推" (4.1) | §2: NoPE 0.99 at L, 0.80 at 8L | corrected (degrades) |
# | Grouped RoPE, document NLI 78.2% → 79.8% (4.3) | §7: no published method found | unsourced |
# | perplexity by dimension band (4.3) | §3 measures the opposite band | unsourced, contradicted |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# `exercises/ch05_length_extrapolation.py`: PI frequencies, the NTK base change, YaRN's ramp and
# frequencies (with its temperature), and one dynamic-NTK step. Check your work with
#
# ```
# python3 course.py grade ch05
# ```
