# %% [markdown] slideshow={"slide_type": "slide"}
# # 01 · Attention: a soft lookup, the √d scale, and masks
#
# This chapter builds **scaled dot-product attention** (SDPA, 缩放点积注意力) from one idea, a
# *soft* dictionary lookup, then asks three questions the source text raises in its sections 1.2
# and 3.1:
#
# 1. What does a query actually retrieve? (the library analogy, 图书馆检索)
# 2. Why divide the scores by √d? (variance of a dot product, softmax saturation, entropy)
# 3. How do we forbid some query-key pairs? (causal and padding masks)
#
# Everything is computed with `tinyattn.functional.scaled_dot_product_attention`, the library
# function the rest of the course uses, and checked against a few lines of plain NumPy.

# %% slideshow={"slide_type": "skip"}
%config InlineBackend.figure_formats = ['png']
import numpy as np
import matplotlib.pyplot as plt
import tinyattn as ta
from tinyattn.viz import setup_notebook
setup_notebook()            # small PNG figures, fixed style
rng = np.random.default_rng(0)

from tinyattn import functional as F
from tinyattn.functional.attention import attention_weights, causal_mask
from tinyattn.viz.attention import plot_attention, plot_heads


def below(err, tol=1e-12):
    """Checked cells print whether an error is under a tolerance, not its last digits
    (those depend on the BLAS build)."""
    return f"< {tol:.0e}" if err < tol else f"= {err:.1e}, ABOVE {tol:.0e}"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Attention as a soft lookup (图书馆检索, "the library")
#
# A Python `dict` is a *hard* lookup: the query must equal a key exactly, and you get exactly
# one value back. Attention relaxes both rules. Every key gets a **similarity score** with the
# query, the scores become **weights** that sum to one (softmax), and the answer is the
# **weighted sum of all values**:
#
# $$\text{Attention}(q, \{(k_i, v_i)\}) = \sum_i \frac{\exp(q^\top k_i/\sqrt d)}{\sum_j \exp(q^\top k_j/\sqrt d)}\, v_i .$$
#
# The source text's picture: you walk into a library with a research question (the **query**,
# 查询), every book has a title (its **key**, 索引) and a body (its **value**, 内容). We make
# this concrete with hand-made 3-dimensional embeddings whose axes mean
# *machine learning*, *attention/Transformers*, *cooking*.

# %% slideshow={"slide_type": "fragment"} tags=["ledger-01-s1"]
# NBVAL_CHECK_OUTPUT
features = ["machine learning", "attention", "cooking"]
titles = ["Deep learning basics (深度学习基础)", "Transformers explained (Transformer详解)",
          "The art of cooking (烹饪艺术)"]
keys = np.array([[1.0, 0.3, 0.0],      # book 1: mostly ML, a little attention
                 [1.0, 1.0, 0.0],      # book 2: ML and attention
                 [0.0, 0.0, 1.0]])     # book 3: cooking
query = np.array([1.0, 1.0, 0.0])      # "attention mechanisms in machine learning"
# values: what each book *contains*, on 4 topics
topics = ["backprop", "self-attention", "multi-head", "recipes"]
values = np.array([[1.0, 0.0, 0.0, 0.0],
                   [0.2, 1.0, 1.0, 0.0],
                   [0.0, 0.0, 0.0, 1.0]])

scores = keys @ query                                  # q·k_i for each book
weights = np.exp(scores / np.sqrt(3)) / np.exp(scores / np.sqrt(3)).sum()
for t, s, w in zip(titles, scores, weights):
    print(f"{t:42s} score {s:.2f}  weight {w:.3f}")
print("retrieved content:", ", ".join(f"{t} {c:.3f}" for t, c in zip(topics, weights @ values)))

# %% [markdown] slideshow={"slide_type": "subslide"}
# The same numbers come out of the library function. Its inputs carry a head axis
# `(..., H, L, d)`, so one query and three books are `q (1, 1, 3)`, `k (1, 3, 3)`, `v (1, 3, 4)`:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
out = F.scaled_dot_product_attention(query[None, None], keys[None], values[None])
print(type(out).__name__, out.shape, np.round(out.data[0, 0], 3))
print("max |library - by hand|", below(np.abs(out.data[0, 0] - weights @ values).max()))

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
plot_attention(weights[None], ax=axes[0], title="weights over the books", annotate=True,
               xlabels=[t.split(" (")[0] for t in titles], ylabels=["query"], colorbar=False)
plot_attention(out.data[0], ax=axes[1], title="retrieved content = weights @ values", vmax=None,
               xlabels=topics, ylabels=["query"], annotate=True, colorbar=False)
axes[0].set_xlabel("key (book)")
axes[1].set_xlabel("value feature (topic)")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# The source text says the weights come out as **70% / 25% / 5%** for books 2, 1, 3. It gives no
# vectors, so the numbers are *illustrative*: softmax only sees score **differences**, and any
# scores with $s_2 - s_1 = \ln(0.70/0.25)$ and $s_2 - s_3 = \ln(0.70/0.05)$ produce exactly them.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
target = np.array([0.25, 0.70, 0.05])
s_target = np.log(target)                              # any constant shift works too
print("score gaps s2-s1, s2-s3:", np.round(s_target[1] - s_target[0], 3), np.round(s_target[1] - s_target[2], 3))
print("softmax of those scores:", np.round(np.exp(s_target + 5) / np.exp(s_target + 5).sum(), 3))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Soft versus hard.** Multiplying all scores by a factor (an inverse *temperature*) sharpens the
# weights. As the factor grows the soft lookup turns into `argmax` — the hard, dictionary-like
# lookup; as it shrinks to 0 every book counts equally. Keep this picture: the √d scale of
# section 3 is exactly a choice of this factor.

# %% slideshow={"slide_type": "-"}
factors = np.geomspace(0.05, 30, 60)
w_of_factor = np.array([np.exp(f * scores) / np.exp(f * scores).sum() for f in factors])
fig, ax = plt.subplots()
for i, t in enumerate(titles):
    ax.semilogx(factors, w_of_factor[:, i], label=t.split(" (")[0])   # English title only
ax.axvline(1 / np.sqrt(3), color="gray", ls="--", lw=1, label="1/√d used above")
ax.set_xlabel("factor multiplying the scores (1 / temperature)")
ax.set_ylabel("attention weight")
ax.set_title("soft lookup → hard lookup as the scores grow")
ax.legend(fontsize=7)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Scaled dot-product attention on whole matrices
#
# Stack the queries into $Q \in \mathbb{R}^{L_q\times d}$, keys into $K \in \mathbb{R}^{L_k\times d}$,
# values into $V \in \mathbb{R}^{L_k\times d_v}$:
#
# $$\text{Attention}(Q,K,V) = \text{softmax}\!\left(\frac{QK^\top}{\sqrt{d}}\right)V,
# \qquad \underbrace{QK^\top}_{(L_q, L_k)},\ \underbrace{\text{softmax}(\cdot)V}_{(L_q, d_v)} .$$
#
# Softmax runs along each **row** (one query, all keys). The library function accepts any leading
# batch axes `(..., H, L, d)`; below we check it against the formula written in NumPy, on a batch
# of 2 sequences with 3 heads.

# %% slideshow={"slide_type": "fragment"}
# NBVAL_CHECK_OUTPUT
B, H, Lq, Lk, d, dv = 2, 3, 5, 7, 16, 8
q = rng.standard_normal((B, H, Lq, d))
k = rng.standard_normal((B, H, Lk, d))
v = rng.standard_normal((B, H, Lk, dv))

def softmax_rows(s):
    """Numerically stable softmax along the last axis: exp(s - max) / sum."""
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

by_formula = softmax_rows(q @ k.swapaxes(-1, -2) / np.sqrt(d)) @ v
lib = F.scaled_dot_product_attention(q, k, v)
print("output shape", lib.shape, "| max |library - formula|", below(np.abs(lib.data - by_formula).max()))

# %% [markdown] slideshow={"slide_type": "subslide"}
# The library computes this as **one autograd node** with a hand-derived backward. With
# $S = QK^\top/\sqrt d$, $P = \text{softmax}(S)$, $O = PV$ and an upstream gradient $dO$:
#
# $$dV = P^\top dO,\quad dP = dO\,V^\top,\quad dS_{ij} = P_{ij}\Big(dP_{ij} - \sum_l dP_{il}P_{il}\Big),
# \quad dQ = dS\,K/\sqrt d,\quad dK = dS^\top Q/\sqrt d .$$
#
# Each line is one step of chapter 00's engine run by hand: $O = PV$ and $S = QK^\top/\sqrt d$ are
# matmuls (their VJPs give $dV$, $dP$, $dQ$, $dK$), and the $dS$ line is the softmax Jacobian
# $\partial p_i/\partial s_j = p_i(\delta_{ij}-p_j)$ applied to a vector, one row at a time.
#
# **The bridge to chapter 06.** The row sum $D_i = \sum_l dP_{il}P_{il}$ seems to need the whole
# row of $P$ and of $dP$. It does not: $\sum_l P_{il}\,(dO_i\cdot v_l) = dO_i\cdot\big(\sum_l P_{il} v_l\big)
# = dO_i\cdot O_i$, one dot product of two vectors the backward has anyway. With $D$ in hand, every
# entry $dS_{ij} = P_{ij}(dP_{ij} - D_i)$ depends only on query $i$ and key $j$, so the backward
# can run over **tiles** of the $(L_q, L_k)$ matrix, recomputing $P$ in each tile instead of
# storing it. That is exactly FlashAttention's backward (chapter 06). A numerical check of the
# identity, on the batch above with a random upstream gradient:

# %% slideshow={"slide_type": "fragment"}
# NBVAL_CHECK_OUTPUT
P = softmax_rows(q @ k.swapaxes(-1, -2) / np.sqrt(d))          # (B, H, Lq, Lk)
dO = np.random.default_rng(7).standard_normal(by_formula.shape)   # (B, H, Lq, dv)
dP = dO @ v.swapaxes(-1, -2)                                   # (B, H, Lq, Lk)
D_full = (dP * P).sum(-1)                                      # needs the (Lq, Lk) rows
D_cheap = (dO * by_formula).sum(-1)                            # needs only O and dO
print("D shape", D_full.shape, "| max |sum_l dP P - dO . O|", below(np.abs(D_full - D_cheap).max()))

# %% [markdown] slideshow={"slide_type": "fragment"}
# Exercise 01.4 asks you to write this backward yourself (with masks and any $L_q \ne L_k$); the
# grader compares it with the library's gradient. The library's own backward is checked here by
# `ta.gradcheck`, which compares it with central finite differences in float64:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
tq, tk, tv = (ta.Tensor(a[:1, :2, :3, :4], requires_grad=True) for a in (q, k, v))
print("gradcheck passed:", ta.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), tq, tk, tv))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Why divide by √d? (为什么需要缩放因子)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 3.1 The variance of a dot product
# The source text's derivation (section 1.2, 公理2) is correct: if the entries of $q$ and $k$
# are independent with mean 0 and variance 1, then
# $\text{Var}(q\cdot k) = \sum_{i=1}^{d}\mathbb{E}[q_i^2]\,\mathbb{E}[k_i^2] = d$, and
# $\text{Var}(q\cdot k/\sqrt d) = 1$. We measure it over 20,000 random pairs per dimension.

# %% slideshow={"slide_type": "-"} tags=["ledger-01-s3"]
# NBVAL_CHECK_OUTPUT
dims = [16, 64, 128, 256, 512, 1024]
n_pairs = 20_000
var_raw, var_scaled = [], []
for dd in dims:
    a = rng.standard_normal((n_pairs, dd))
    b = rng.standard_normal((n_pairs, dd))
    dots = np.einsum("nd,nd->n", a, b)
    var_raw.append(dots.var())
    var_scaled.append((dots / np.sqrt(dd)).var())
for dd, vr, vs in zip(dims, var_raw, var_scaled):
    print(f"d={dd:5d}  Var(q.k)={vr:8.1f}  Var(q.k/sqrt d)={vs:.3f}")

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots()
ax.loglog(dims, var_raw, "o-", label="Var(q·k), measured")
ax.loglog(dims, dims, "k--", lw=1, label="d (theory)")
ax.loglog(dims, var_scaled, "s-", label="Var(q·k / √d), measured")
ax.set_xlabel("head dimension d")
ax.set_ylabel("variance")
ax.set_title("dot-product variance grows like d; the √d scale removes it")
ax.legend()
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# With $d = 512$ the unscaled scores have standard deviation $\sqrt{512}\approx 22.6$ (the
# source text's "Var = 512" is the row above). Scores that far apart make softmax almost one-hot.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 3.2 Saturation: entropy and the softmax Jacobian
# Why is one-hot bad? The softmax Jacobian is $J = \text{diag}(p) - pp^\top$
# ($\partial p_i/\partial s_j = p_i(\delta_{ij} - p_j)$). When $p$ is one-hot, $J = 0$: no gradient
# flows into the scores, so $W^Q$ and $W^K$ stop learning. We measure two things for a query
# attending to $N$ random keys, with and without the scale:
#
# * the **entropy** $H(p) = -\sum_i p_i \ln p_i$ (0 = one-hot, $\ln N$ = uniform);
# * the **Frobenius norm** $\lVert J\rVert_F$ (how much gradient the softmax lets through).
#
# First a check that the Jacobian formula is right, against finite differences:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
s0 = rng.standard_normal(6)
p0 = softmax_rows(s0)
J_formula = np.diag(p0) - np.outer(p0, p0)             # p_i (δ_ij − p_j)
eps = 1e-6
J_numeric = np.stack([(softmax_rows(s0 + eps * e) - softmax_rows(s0 - eps * e)) / (2 * eps)
                      for e in np.eye(6)], axis=1)
print("max |J_formula - J_numeric|", below(np.abs(J_formula - J_numeric).max(), 1e-8))

# %% slideshow={"slide_type": "-"}
def entropy_and_jacobian(n_keys, dd, scaled, n_queries=1000, rng=rng):
    """Mean entropy H(p) and mean ||diag(p) - p p^T||_F for random q (dd,), K (n_keys, dd)."""
    qs = rng.standard_normal((n_queries, dd))
    ks = rng.standard_normal((n_queries, n_keys, dd))
    s = np.einsum("nd,nkd->nk", qs, ks) / (np.sqrt(dd) if scaled else 1.0)
    p = softmax_rows(s)
    ent = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)
    # ||J||_F^2 = sum_i p_i^2 (1 - 2 p_i) + (sum_i p_i^2)^2, from J = diag(p) - p p^T
    sq = (p ** 2).sum(-1)
    jac = np.sqrt(((p ** 2) * (1 - 2 * p)).sum(-1) + sq ** 2)
    return ent.mean(), jac.mean()

# check the closed-form Frobenius norm on p0 against the matrix itself
sq0 = (p0 ** 2).sum()
assert np.isclose(np.sqrt(((p0 ** 2) * (1 - 2 * p0)).sum() + sq0 ** 2), np.linalg.norm(J_formula))

sat_dims = [64, 128, 256, 512]
key_counts = [16, 32, 64]
table = {(n, dd, sc): entropy_and_jacobian(n, dd, sc)
         for n in key_counts for dd in sat_dims for sc in (False, True)}

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
print("source text's table:  d   unscaled H   scaled H   'performance difference'")
source_table = {64: (1.2, 2.8, "-3.1%"), 128: (0.8, 2.7, "-5.8%"),
                256: (0.4, 2.6, "-12.3%"), 512: (0.2, 2.5, "-18.7%")}
for dd, (hu, hs, perf) in source_table.items():
    print(f"{'':21s}{dd:4d}   {hu:10.1f}   {hs:8.1f}   {perf}")
print()
print("measured (mean over 1000 queries)         unscaled          scaled")
print("  N     d    ln N                       H      ||J||      H      ||J||")
for n in key_counts:
    for dd in sat_dims:
        hu, ju = table[(n, dd, False)]
        hs, js = table[(n, dd, True)]
        print(f"{n:3d}  {dd:4d}  {np.log(n):5.2f}                  {hu:6.2f}   {ju:6.3f}   {hs:6.2f}   {js:6.3f}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for n, marker in zip(key_counts, "os^"):
    for sc, ls in ((False, "--"), (True, "-")):
        lab = f"N={n}, {'scaled' if sc else 'unscaled'}"
        axes[0].plot(sat_dims, [table[(n, dd, sc)][0] for dd in sat_dims], ls, marker=marker, label=lab)
        axes[1].plot(sat_dims, [table[(n, dd, sc)][1] for dd in sat_dims], ls, marker=marker, label=lab)
axes[0].plot(list(source_table), [v[0] for v in source_table.values()], "k:x", label="source, unscaled")
axes[0].plot(list(source_table), [v[1] for v in source_table.values()], "k-.x", label="source, scaled")
axes[0].set_ylabel("entropy H(p) [nats]")
axes[1].set_ylabel("||softmax Jacobian||_F")
for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("head dimension d")
axes[0].legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(0.0, 0.42))
axes[0].set_title("attention entropy vs d")
axes[1].set_title("gradient through softmax vs d")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# What the measurement says about the source text's table (it cites no experiment, so we treat
# it as **unsourced**):
#
# * **Unscaled** entropy does fall as $d$ grows, and the Jacobian norm falls with it: the
#   saturation story is right. The numbers depend on the number of keys $N$, which the table
#   does not state; for none of the $N$ we tried do they match 1.2 / 0.8 / 0.4 / 0.2.
# * **Scaled** entropy does **not** drift from 2.8 down to 2.5: after dividing by √d the score
#   distribution no longer depends on $d$, so the entropy is flat in $d$ and is set by $N$.
#   For logits with variance $\sigma^2$ and many keys, $H \approx \ln N - \sigma^2/2$
#   (from $p_i \approx e^{z_i}/(N e^{\sigma^2/2})$); with $\sigma^2 = 1$ that is $\ln N - 0.5$,
#   close to the measured rows above.
# * "Entropy 2.5–2.8 is information-theoretically optimal" has no basis: the entropy of a
#   well-scaled random head is just $\approx \ln N - 0.5$, whatever $N$ is, and trained heads
#   are *meant* to move away from it (a head that copies the previous token has entropy ≈ 0).
#   Low entropy means *concentrated*, not *overfitted*.
# * The "performance difference" column names no model, task or metric; we cannot reproduce it.
#
# Could some number of keys $N$ explain the table? Its scaled column at $d = 64$ (2.8) pins $N$
# down, and its unscaled column at the same $d$ (1.2) must then hold for that same $N$. A sweep
# over $N$:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
sweep_N = [8, 16, 24, 32, 48, 64, 128, 256]
sweep = [(n, *entropy_and_jacobian(n, 64, True)[:1], *entropy_and_jacobian(n, 64, False)[:1]) for n in sweep_N]
print("  N   scaled H (d=64)   unscaled H (d=64)      source: 2.8 and 1.2")
for n, hs, hu in sweep:
    print(f"{n:4d}   {hs:13.2f}   {hu:17.2f}")
n_fit = min(sweep, key=lambda r: abs(r[1] - 2.8))
print(f"N matching the scaled 2.8 best: {n_fit[0]} -> unscaled entropy there {n_fit[2]:.2f}, not 1.2")

# %% [markdown] slideshow={"slide_type": "subslide"}
# No single $N$ fits both columns of the table, which supports treating it as unsourced.
#
# The gradient argument is the one that matters. Suppose training wants to give more weight to
# the key that currently scores lowest (say it holds the right answer). How much can *any* change
# of the scores raise its weight $p_t$? That is the row $t$ of the Jacobian, with
# $\lVert \partial p_t/\partial s\rVert_1 = 2p_t(1-p_t)$:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
def grad_to_scores(dd, scaled, n_keys=16, n_queries=1000):
    """Mean ||dp_t/ds||_1 for t = the lowest-scoring key: how strongly any score change can
    raise that key's weight. From J = diag(p) - p p^T, ||J[t]||_1 = 2 p_t (1 - p_t)."""
    qs = rng.standard_normal((n_queries, dd))
    ks = rng.standard_normal((n_queries, n_keys, dd))
    s = np.einsum("nd,nkd->nk", qs, ks) / (np.sqrt(dd) if scaled else 1.0)
    p_t = softmax_rows(s).min(axis=-1)                   # weight of the lowest-scoring key
    return (2 * p_t * (1 - p_t)).mean()

for dd in sat_dims:
    print(f"d={dd:4d}  ||dp_t/ds||_1 unscaled {grad_to_scores(dd, False):.2e}   scaled {grad_to_scores(dd, True):.2e}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# Without the scale, the probability of an unlikely key can barely be moved by changing the
# scores (its gradient is many orders of magnitude smaller at d = 512); with the scale it stays
# at the same level for every $d$. That is the real reason for $1/\sqrt{d}$.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Numerical stability: huge logits and float16
#
# $e^{x}$ overflows float64 at $x \approx 709$ and float16 at $x \approx 11$. The standard fix
# subtracts each row's maximum first: $\text{softmax}(s) = \text{softmax}(s - \max s)$, so the
# largest exponent is $e^0 = 1$. A naive softmax of logits around $10^4$ returns NaN; SDPA does not.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
big = np.array([[1e4, 1e4 - 1.0, -1e4]])
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(big) / np.exp(big).sum(-1, keepdims=True)
print("naive softmax  :", naive)
print("stable softmax :", np.round(softmax_rows(big), 4))
out_big = F.scaled_dot_product_attention(np.ones((1, 1, 1)), np.ones((1, 3, 1)), np.eye(3)[None],
                                         bias=big[None], scale=1.0)
print("SDPA with bias :", np.round(out_big.data[0, 0], 4))

# %% [markdown] slideshow={"slide_type": "fragment"}
# float16 tops out at 65,504. A dot product of two length-4 vectors with entries around 200 already
# exceeds that, so SDPA **computes in float32** for float16 inputs and only returns float16:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
q16 = np.full((1, 1, 4), 200.0, dtype=np.float16)
k16 = np.array([[[200.0, 200.0, 200.0, 200.0], [200.0, 200.0, 200.0, 200.5]]], dtype=np.float16)
v16 = np.array([[[1.0, 0.0], [0.0, 1.0]]], dtype=np.float16)
with np.errstate(over="ignore"):
    print("q.k in float16 arithmetic:", (q16[0] @ k16[0].T)[0])
print("q.k in float64           :", (q16[0].astype(np.float64) @ k16[0].T.astype(np.float64))[0])
o16 = F.scaled_dot_product_attention(q16, k16, v16, scale=0.01)   # logits 1600 and 1601
print("SDPA output:", o16.dtype, o16.data[0, 0])

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Masks: who may look at whom
#
# A boolean mask says which query-key pairs may interact (**True = may attend**); the forbidden
# logits become $-\infty$ before softmax, so their weights are exactly 0.
#
# * **Causal** (因果) mask: in a language model token $i$ must not see the future, so query $i$
#   attends keys $j \le i$ — the lower triangle.
# * **Padding** mask: sequences of different lengths are padded to one length; padded keys must
#   get weight 0. The mask has shape `(B, 1, 1, L)` and broadcasts over heads and queries.

# %% slideshow={"slide_type": "-"}
L = 6
tokens = ["The", "cat", "sat", "on", "the", "mat"]
x = rng.standard_normal((1, L, 8))
w_full = attention_weights(x, x)                       # no mask
w_causal = attention_weights(x, x, is_causal=True)
lengths = np.array([6, 4])
pad = np.arange(L)[None, :] < lengths[:, None]         # (B, L): True for real tokens
x2 = rng.standard_normal((2, L, 8))
w_pad = attention_weights(x2[:, None], x2[:, None], mask=pad[:, None, None, :])   # (B, 1, L, L)
w_both = attention_weights(x2[:, None], x2[:, None], mask=pad[:, None, None, :], is_causal=True)

fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
plot_attention(w_full[0], ax=axes[0], title="no mask", xlabels=tokens, ylabels=tokens, colorbar=False)
plot_attention(w_causal[0], ax=axes[1], title="causal", xlabels=tokens, ylabels=tokens, colorbar=False)
plot_attention(w_pad[1, 0], ax=axes[2], title="padding (length 4)", colorbar=False)
plot_attention(w_both[1, 0], ax=axes[3], title="causal + padding", colorbar=True)
fig.tight_layout()
plt.show()

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
print("causal: weight above the diagonal =", w_causal[0][~causal_mask(L, L)].sum())
print("padding: weight on padded keys    =", w_pad[1, 0][:, 4:].sum())
print("every row sums to 1:", np.allclose(w_both.sum(-1), 1.0))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Causal with $L_q \ne L_k$: bottom-right alignment
# When a model decodes with a KV cache ([chapter 08](08_kv_cache.ipynb)), the $L_q$ new queries are the **last** $L_q$
# positions of a sequence of length $L_k$. Query $i$ therefore sits at absolute position
# $i + L_k - L_q$ and may see keys $j \le i + L_k - L_q$: the triangle is aligned to the
# **bottom-right** corner. (PyTorch's `is_causal` aligns top-left instead; the two agree only when
# $L_q = L_k$.) If $L_q > L_k$, the first $L_q - L_k$ queries see **no** key at all; SDPA returns
# 0 for such rows instead of NaN.

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(1, 3, figsize=(10, 3))
for ax, (lq, lk) in zip(axes, [(6, 6), (2, 6), (6, 4)]):
    plot_attention(causal_mask(lq, lk).astype(float), ax=ax, title=f"Lq={lq}, Lk={lk}", colorbar=False)
fig.suptitle("bottom-right aligned causal masks (yellow = may attend)")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Why does a fully masked row need care? Three ways to write "forbidden": with $-\infty$ a row
# that forbids everything computes $e^{-\infty}/\sum e^{-\infty} = 0/0 = $ NaN; with a large
# finite number like $-10^9$ the row silently becomes a **uniform** average over keys it was not
# allowed to see. SDPA detects rows with no allowed key and returns 0 (as current PyTorch SDPA
# and FlashAttention do), with zero gradient.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
s_row = np.array([[0.3, -1.2, 2.0]])
v3 = np.array([[1.0], [2.0], [3.0]])
nothing = np.zeros_like(s_row, dtype=bool)
with np.errstate(invalid="ignore"):
    inf_filled = np.where(nothing, s_row, -np.inf)
    print("-inf fill + naive softmax :", (np.exp(inf_filled) / np.exp(inf_filled).sum()) @ v3)
big_neg = np.where(nothing, s_row, -1e9)
print("-1e9 fill                 :", softmax_rows(big_neg) @ v3, "(a uniform average of forbidden values)")
o_empty = F.scaled_dot_product_attention(np.ones((1, 1, 1)), np.ones((1, 3, 1)), v3[None],
                                         mask=nothing)
print("SDPA                      :", o_empty.data[0])

# %% [markdown] slideshow={"slide_type": "slide"} tags=["ledger-01"]
# ## Claims ledger (sections 1.2 and 3.1)
#
# | source-text claim (section) | what we measured (cell) | verdict |
# |---|---|---|
# | $\text{Var}(q\cdot k) = d$ for iid unit-variance entries (1.2, 公理2 step 1) | §3.1: measured Var(q·k) within 2.5% of d for d = 16…1024 | reproduced |
# | $d = 512 \Rightarrow \text{Var}[s] = 512$ (1.2) | §3.1, the d = 512 row | reproduced |
# | after dividing by $\sqrt{d_k}$ the variance is 1 (1.2, step 3) | §3.1: Var(q·k/√d) ≈ 1 | reproduced |
# | $\partial p_i/\partial s_j = p_i(\delta_{ij}-p_j)$, vanishing as softmax saturates (1.2, step 2) | §3.2: formula vs finite differences; Jacobian norm and gradient to unlikely keys fall with d unscaled | reproduced |
# | entropy table: unscaled 1.2 / 0.8 / 0.4 / 0.2, scaled 2.8 / 2.7 / 2.6 / 2.5 for d = 64…512 (1.2) | §3.2 table and figure: unscaled falls with d but to other values (depend on N, not stated); scaled is flat in d, ≈ ln N − 0.5; the N sweep: no N fits both columns | **unsourced**; trend of the unscaled column reproduced, scaled column's drift not reproduced |
# | "performance difference" −3.1% … −18.7% (1.2) | no model, task or metric given | **unsourced**, not reproducible |
# | scaled entropy 2.5–2.8 is "information-theoretically optimal"; lower entropy = overfitting (1.2) | §3.2: scaled entropy is set by N (≈ ln N − 0.5), and useful heads can have entropy ≈ 0 | **corrected** (no such optimum) |
# | library example weights 70% / 25% / 5% (3.1) | §1: scores with gaps ln(0.70/0.25), ln(0.70/0.05) give exactly these; no vectors are given in the source | illustrative (reproduced by construction) |
# | attention is a soft lookup; all relevant values contribute by weight (3.1) | §1: toy library, output = weighted mix; hard lookup as the limit of large scores | reproduced |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Your turn: the exercises
#
# Open `exercises/ch01_attention.py` and replace each `raise NotImplementedError(...)`:
#
# | exercise | function | section |
# |---|---|---|
# | 01.1 | `softmax`, stable for logits of ±1e4 | §4 |
# | 01.2 | `causal_mask`, bottom-right aligned for $L_q \ne L_k$ | §5 |
# | 01.3 | `attention` with a boolean mask; fully masked rows give 0 | §2, §5 |
# | 01.4 | `attention_backward`: $dQ$, $dK$, $dV$, using the row-sum identity above | §2 |
#
# Then grade them:
#
# ```
# python3 course.py grade ch01
# ```
