# %% [markdown] slideshow={"slide_type": "slide"}
# # 11 · Linear attention (线性注意力): the kernel view, Performer, Linformer, and what it cannot do
#
# Chapter 10 made attention cheaper by *dropping* scores. This chapter makes it cheaper by
# *approximating the softmax kernel* so the $N\times N$ matrix never exists: the source text's
# 优化3 "Performer / Linformer" (用低秩近似代替稀疏) in section 4.5. We
#
# 1. write attention as a kernel smoother and reassociate the product (the kernel view);
# 2. run causal linear attention as an RNN with a constant-size state, and check it against the
#    parallel form;
# 3. build Performer's FAVOR+ positive random features exactly, measure that they are unbiased and
#    that their variance falls as $1/m$ (orthogonal vs i.i.d. features), and show that the source
#    text's feature map is **biased** and stays wrong with infinitely many features;
# 4. measure approximation error and wall time against $N$, with the crossover against exact
#    attention;
# 5. Linformer's sequence projections, and the delta rule (DeltaNet) as the bridge to today's
#    linear-attention models;
# 6. train two tiny models on associative recall: softmax attention solves it, linear attention does not.
#
# Library: `tinyattn.linear`.

# %% slideshow={"slide_type": "skip"}
%config InlineBackend.figure_formats = ['png']
import numpy as np
import matplotlib.pyplot as plt
import tinyattn as ta
from tinyattn.viz import setup_notebook
setup_notebook()            # small PNG figures, fixed style
rng = np.random.default_rng(0)

import math, time
from tinyattn import linear as LA


def softmax_attention(q, k, v, causal=False):
    """Exact float64 reference: softmax(q k^T / sqrt d) v, materialising the N x N matrix."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True) @ v


def best_time(fn, reps=5):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
    return min(out)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The kernel view (核方法视角)
#
# Softmax attention is a weighted average with a similarity kernel $\kappa$:
# $$\text{out}_i = \frac{\sum_j \kappa(q_i, k_j)\, v_j}{\sum_j \kappa(q_i, k_j)}, \qquad
#   \kappa(q, k) = \exp(q^\top k/\sqrt d).$$
# If the kernel factorises, $\kappa(q,k) = \phi(q)^\top\phi(k)$ with features $\phi(x)\in\mathbb R^r$,
# the sums can be **reassociated**:
# $$\text{out}_i = \frac{\phi(q_i)^\top \big(\sum_j \phi(k_j) v_j^\top\big)}{\phi(q_i)^\top \sum_j \phi(k_j)}
#   = \big[D^{-1}\,\phi(Q)\,(\phi(K)^\top V)\big]_i .$$
# $\phi(K)^\top V$ is $r\times d_v$ and is computed once: cost $O(N r d_v)$ instead of $O(N^2 d)$.
# Katharopoulos et al. (2020) use the deterministic $\phi(x) = \text{elu}(x)+1$ (positive, so the
# denominator never vanishes). That kernel is *not* $\exp(q^\top k/\sqrt d)$: elu+1 linear attention
# is a different model, not an approximation of softmax attention. Performer (section 3) approximates
# the softmax kernel itself.
#
# First check: `ta.linear.linear_attention` (reassociated) equals the kernel smoother computed the
# slow way, with the $N\times N$ matrix of $\phi(q_i)^\top\phi(k_j)$.

# %% slideshow={"slide_type": "fragment"} tags=["ledger-11-s1"]
# NBVAL_CHECK_OUTPUT
q, k, v = (rng.standard_normal((2, 64, 16)) for _ in range(3))
fq, fk = LA.elu1(q), LA.elu1(k)
A = fq @ np.swapaxes(fk, -1, -2)                            # kappa(q_i, k_j) = phi(q_i)^T phi(k_j)
slow = A @ v / A.sum(-1, keepdims=True)
fast = LA.linear_attention(q, k, v)
print(f"reassociated == kernel smoother, max |diff| < 1e-12: {np.abs(fast - slow).max() < 1e-12}")
print(f"elu+1 linear attention vs softmax attention: max |diff| = {np.abs(fast - softmax_attention(q, k, v)).max():.2f}  (a different model)")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Causal linear attention is an RNN (循环视角)
#
# With a causal mask the sums run over $j\le i$, so they become running sums:
# $$S_i = S_{i-1} + \phi(k_i) v_i^\top,\quad z_i = z_{i-1} + \phi(k_i),\quad
#   \text{out}_i = \frac{S_i^\top \phi(q_i)}{z_i^\top \phi(q_i)}.$$
# The state $(S, z)$ has size $r\times d_v + r$ whatever the position: generation needs $O(1)$ memory
# per step, where softmax attention's KV cache ([chapter 08](08_kv_cache.ipynb)) grows with $N$. Three implementations must
# agree: the literal RNN (`linear_attention_recurrent`), the chunked parallel form (`linear_attention(...,
# causal=True)`: a masked product inside each chunk, the carried state across chunks) and the masked
# $N\times N$ form.

# %% slideshow={"slide_type": "fragment"}
# NBVAL_CHECK_OUTPUT
A_causal = np.tril(A)
masked = A_causal @ v / A_causal.sum(-1, keepdims=True)
rnn, (S_state, z_state) = LA.linear_attention_recurrent(q, k, v)
for chunk in (1, 16, 64):
    ch = LA.linear_attention(q, k, v, causal=True, chunk=chunk)
    print(f"chunk {chunk:2d}: chunked == masked quadratic: {np.abs(ch - masked).max() < 1e-12};  "
          f"chunked == RNN: {np.abs(ch - rnn).max() < 1e-12}")
print(f"RNN state per (batch, head): S {S_state.shape[1:]}, z {z_state.shape[1:]}, independent of N = {q.shape[1]}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Performer's FAVOR+: positive random features for the softmax kernel
#
# Performer (Choromanski et al., ICLR 2021) writes the softmax kernel as an expectation. With
# $\bar x = x/d^{1/4}$ (so $\bar q^\top\bar k = q^\top k/\sqrt d$) and $w\sim\mathcal N(0, I_d)$,
# $\mathbb E[e^{w^\top u}] = e^{|u|^2/2}$, hence
# $$\exp(\bar q^\top \bar k) = \mathbb E_w\!\left[e^{w^\top\bar q - |\bar q|^2/2}\; e^{w^\top \bar k - |\bar k|^2/2}\right],
# \qquad \phi(x) = \tfrac{1}{\sqrt m}\exp\!\big(W\bar x - |\bar x|^2/2\big),\ W\in\mathbb R^{m\times d}.$$
# Every feature is positive (no cancelling signs, so the denominator $D$ stays positive: the "+" in
# FAVOR+), and $\phi(q)^\top\phi(k)$ is an **unbiased** estimate of $\exp(q^\top k/\sqrt d)$ with
# variance $\propto 1/m$. Drawing the rows of $W$ in orthogonal blocks (each row still
# $\mathcal N(0,I)$ in distribution) lowers the variance further.
#
# The source text writes $\phi(x) = \frac{1}{\sqrt m}[\exp(w_1^\top x), \dots, \exp(w_m^\top x)]$: no
# $\exp(-|x|^2/2)$ factor. Then $\mathbb E[\phi(q)^\top\phi(k)] = \exp(\bar q^\top\bar k)\, e^{|\bar q|^2/2}
# e^{|\bar k|^2/2}$: the query factor cancels in $D^{-1}$, but the key factor $e^{|\bar k|^2/2}$ does
# not, so attention is tilted towards long keys **however many features are drawn**.
#
# Unbiasedness, measured: 4000 independent draws of $W$ for one $(q, k)$ pair, $d=16$, entries of
# $q, k$ drawn with standard deviation 0.4 (larger $|q|, |k|$ make the estimator heavy-tailed: its
# variance grows like $e^{2|\bar q+\bar k|^2}$).

# %% slideshow={"slide_type": "subslide"} tags=["ledger-11-s3"]
# NBVAL_CHECK_OUTPUT
d = 16
rng3 = np.random.default_rng(3)
qv, kv_ = 0.4 * rng3.standard_normal(d), 0.4 * rng3.standard_normal(d)
exact_kernel = math.exp(qv @ kv_ / math.sqrt(d))
draws = {}
for m in (4, 16, 64, 256):
    for orth in (False, True):
        draws[m, orth] = np.array([LA.favor_kernel_estimate(qv[None], kv_[None],
                                   LA.gaussian_features_matrix(m, d, rng3, orthogonal=orth))[0, 0]
                                   for _ in range(4000)])
print(f"exact kernel exp(q.k/sqrt d) = {exact_kernel:.4f}")
for (m, orth), e in draws.items():
    se = e.std(ddof=1) / math.sqrt(e.size)
    print(f"m={m:3d} {'orthogonal' if orth else 'iid       '}: mean {e.mean():.4f}, |mean - exact| < 4 s.e.: "
          f"{abs(e.mean() - exact_kernel) < 4 * se}, variance {e.var(ddof=1):.4f}")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
ms = np.array([4, 16, 64, 256])
var_iid = np.array([draws[m, False].var(ddof=1) for m in ms])
var_orth = np.array([draws[m, True].var(ddof=1) for m in ms])
slope = np.polyfit(np.log(ms), np.log(var_iid), 1)[0]
print(f"log-log slope of the i.i.d. variance against m: {slope:.2f} (1/m gives -1)")
print(f"orthogonal / i.i.d. variance at m = 16, 64, 256: {', '.join(f'{r:.2f}' for r in var_orth[1:] / var_iid[1:])}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Now the source text's map. Its infinite-feature limit is known in closed form,
# $\exp(\bar q^\top\bar k + |\bar q|^2/2 + |\bar k|^2/2)$, so we can compare *attention weights* (one
# query, 32 keys, entries with standard deviation 0.5) from both maps as $m$ grows with the exact
# softmax weights.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
rng4 = np.random.default_rng(4)
qw, keys = 0.5 * rng4.standard_normal(d), 0.5 * rng4.standard_normal((32, d))
qb, kb = qw / d ** 0.25, keys / d ** 0.25
p_exact = np.exp(kb @ qb); p_exact /= p_exact.sum()
p_limit = np.exp(kb @ qb + 0.5 * (kb ** 2).sum(1)); p_limit /= p_limit.sum()   # source map, m -> infinity
m_grid = [16, 64, 256, 1024, 4096, 16384]
err_favor, err_source = [], []
for m in m_grid:
    W = LA.gaussian_features_matrix(m, d, np.random.default_rng(m))
    for feat, errs in ((LA.favor_features, err_favor), (LA.source_text_features, err_source)):
        w_est = (feat(qw[None], W) @ feat(keys, W).T)[0]
        errs.append(np.abs(w_est / w_est.sum() - p_exact).sum())             # total-variation-style L1 error
lim = np.abs(p_limit - p_exact).sum()
for m, a, b in zip(m_grid, err_favor, err_source):
    print(f"m={m:5d}: L1 error of attention weights  FAVOR+ {a:.3f}   source-text map {b:.3f}")
print(f"source-text map with infinitely many features: {lim:.3f}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
axes[0].loglog(ms, var_iid, "o-", label="i.i.d. rows")
axes[0].loglog(ms, var_orth, "s-", label="orthogonal rows")
axes[0].loglog(ms, var_iid[0] * ms[0] / ms, "k--", label="∝ 1/m")
axes[0].set_xlabel("features m"); axes[0].set_ylabel("variance of φ(q)ᵀφ(k)")
axes[0].set_title(f"FAVOR+ estimate of exp(qᵀk/√d), d={d}"); axes[0].legend(fontsize=8)
axes[1].loglog(m_grid, err_favor, "o-", label="FAVOR+ (unbiased)")
axes[1].loglog(m_grid, err_source, "s-", label="source text's φ (biased)")
axes[1].axhline(lim, color="r", ls=":", label="source φ, m → ∞")
axes[1].set_xlabel("features m"); axes[1].set_ylabel("L1 error of attention weights")
axes[1].set_title("one query, 32 keys"); axes[1].legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# The variance of FAVOR+ falls as $1/m$ (printed slope, left panel) and orthogonal rows have the
# lower variance at every printed $m$. In the right panel FAVOR+'s error of the attention weights
# falls towards 0 as $m$ grows (printed: from 0.458 at $m=16$ to 0.022 at $m=16384$), while the source
# text's map levels off at its closed-form limit (the dotted line, 0.129): more features cannot fix
# a biased estimator.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Error and time against $N$; the crossover
#
# Approximation quality of full attention outputs, $d=32$, non-causal, against exact softmax
# attention ($q, k$ entries with standard deviation 0.4): FAVOR+ with $m = 64, 256, 1024$ orthogonal
# features, and elu+1 linear attention for comparison (a different kernel, so its "error" measures
# how different the model is, not noise).

# %% slideshow={"slide_type": "-"} tags=["ledger-11-s4"]
# NBVAL_CHECK_OUTPUT
d = 32
Ns = [64, 256, 1024, 2048]
rng5 = np.random.default_rng(5)
err = {"FAVOR+ m=64": [], "FAVOR+ m=256": [], "FAVOR+ m=1024": [], "elu+1 linear": []}
for n in Ns:
    qn, kn, vn = 0.4 * rng5.standard_normal((n, d)), 0.4 * rng5.standard_normal((n, d)), rng5.standard_normal((n, d))
    ex_out = softmax_attention(qn, kn, vn)
    rel = lambda o: np.linalg.norm(o - ex_out) / np.linalg.norm(ex_out)
    for m in (64, 256, 1024):
        err[f"FAVOR+ m={m}"].append(rel(LA.performer_attention(qn, kn, vn, m, np.random.default_rng(n))))
    err["elu+1 linear"].append(rel(LA.linear_attention(qn, kn, vn)))
for name, e in err.items():
    print(f"{name:15s} relative error at N = {Ns}: {', '.join(f'{x:.3f}' for x in e)}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# At fixed $m$ the relative error does not fall with $N$ (the estimator's noise does not average
# out over keys), and four times more features cut it by roughly half (variance $\propto 1/m$, error
# $\propto 1/\sqrt m$; compare the printed rows). How large $m$ must be therefore depends on $d$, on
# the scale of $q^\top k$ (section 3: the variance grows like $e^{2|\bar q+\bar k|^2}$) and on the
# accuracy wanted: the source text's "$m\approx256$" is not a universal constant.
#
# Time: exact NumPy attention (materialises $N\times N$) against elu+1 linear attention ($r=d$) and
# FAVOR+ with $m=256$, $d=64$, float32, one thread. Wall-clock, so this cell is not checked.

# %% slideshow={"slide_type": "subslide"}
d = 64
W256 = LA.gaussian_features_matrix(256, d, np.random.default_rng(1))
Nt = [128, 256, 512, 1024, 2048, 4096]
times = {"exact softmax": [], "elu+1 linear": [], "FAVOR+ m=256": []}
for n in Nt:
    qn, kn, vn = (rng.standard_normal((n, d)).astype(np.float32) for _ in range(3))
    def exact_fp32():
        s = qn @ kn.T / np.float32(8.0)
        p = np.exp(s - s.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True) @ vn
    times["exact softmax"].append(best_time(exact_fp32))
    times["elu+1 linear"].append(best_time(lambda: LA.linear_attention(qn, kn, vn)))
    times["FAVOR+ m=256"].append(best_time(lambda: LA.performer_attention(qn, kn, vn, 256, None, W=W256)))
t_ex = np.array(times["exact softmax"])
for name in ("elu+1 linear", "FAVOR+ m=256"):
    faster = np.array(times[name]) < t_ex
    cross = next((n for n, f in zip(Nt, faster) if f and faster[Nt.index(n):].all()), None)
    print(f"{name}: faster than exact from N = {cross} on (ratios exact/{name}: "
          f"{', '.join(f'{r:.1f}' for r in t_ex / np.array(times[name]))})")
for name, t in times.items():
    print(f"{name:14s} slope of log time vs log N over the last 3 sizes: {np.polyfit(np.log(Nt[-3:]), np.log(t[-3:]), 1)[0]:.2f}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for name, e in err.items():
    axes[0].semilogx(Ns, e, "o-", label=name)
axes[0].set_xlabel("N"); axes[0].set_ylabel("relative error vs softmax"); axes[0].legend(fontsize=8)
axes[0].set_title("approximation error, d=32")
for name, t in times.items():
    axes[1].loglog(Nt, 1e3 * np.array(t), "o-", label=name)
axes[1].set_xlabel("N"); axes[1].set_ylabel("ms"); axes[1].legend(fontsize=8)
axes[1].set_title("wall time, d=64, float32, 1 thread")
plt.tight_layout(); plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The same comparison up to $N = 8192$, run by `benchmarks/sparse_linear.py` (median of interleaved
# repeats, one BLAS thread) and committed as `benchmarks/results/sparse_linear.json` (machine, load
# and date inside the file); this cell only reads it, so its output is fixed:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
import json
from pathlib import Path
bench_path = Path(ta.__file__).resolve().parent.parent / "benchmarks" / "results" / "sparse_linear.json"
bench = json.loads(bench_path.read_text())
rows = bench["linear_vs_exact"]
print(f"benchmark of {bench['date'][:10]}, {bench['machine']['threads']} thread, "
      f"load before {bench['machine']['loadavg_1_5_15_before'][0]}")
for r in rows:
    print(f"N={r['N']:5d}: exact {r['exact_ms']:8.2f} ms   elu+1 {r['elu1_linear_ms']:7.2f} ms   "
          f"FAVOR+ m=256 {r['favor_m256_ms']:7.2f} ms")
for key, name in (("elu1_linear_ms", "elu+1 linear"), ("favor_m256_ms", "FAVOR+ m=256")):
    faster = [r[key] < r["exact_ms"] for r in rows]
    first = next(r["N"] for i, r in enumerate(rows) if all(faster[i:]))
    print(f"{name}: faster than exact for every N >= {first}; at N = {rows[-1]['N']}: "
          f"{rows[-1]['exact_ms'] / rows[-1][key]:.1f}x faster")

# %% [markdown] slideshow={"slide_type": "notes"}
# Both the live cell (noisy: the stored outputs came from a shared, loaded 2-core machine) and the
# committed benchmark show the same picture: elu+1 linear attention ($r = d$) overtakes exact
# attention at a few hundred tokens (from $N = 512$ on in the benchmark); FAVOR+ with $m = 256$ costs
# a constant factor more per token (the $N\times m$ feature matrices and their exponentials) and
# overtakes later (from $N = 1024$ on in the benchmark). From $N = 4096$ to $8192$ exact attention's
# time grows by about 4.9× (quadratic work, and the $N\times N$ matrix no longer fits in cache),
# FAVOR+'s by about 2.5×: "linear complexity $O(N)$" is reproduced in trend, and the constant decides
# where it pays.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Linformer and the delta rule
#
# **Linformer** (Wang et al., 2020) projects keys and values along the *sequence*: $K' = EK$,
# $V' = FV$ with $E, F\in\mathbb R^{k\times n}$, then ordinary softmax attention against $k$ rows:
# $O(nkd)$. Because $E$ mixes positions, a query would see future tokens: Linformer is non-causal,
# and $E, F$ fix the sequence length $n$. Its justification is that attention matrices are close to
# low rank, and its $E, F$ are **learned**. Two untrained choices show what that buys: random
# Gaussian projections (entries $\mathcal N(0, 1/k)$, the paper's Johnson–Lindenstrauss argument) and
# mean pooling over $n/k$ consecutive positions, on random keys and on keys that are constant over
# runs of 64 positions (low rank *along the sequence*). First a sanity check: $E = F = I$ is exact.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
rng6 = np.random.default_rng(6)
n, d = 512, 32
qn, vn = rng6.standard_normal((n, d)), rng6.standard_normal((n, d))
k_rand = rng6.standard_normal((n, d))
k_runs = np.repeat(rng6.standard_normal((8, d)), n // 8, axis=0) + 0.05 * rng6.standard_normal((n, d))
I = np.eye(n)
print(f"E = F = I equals exact attention: {np.abs(LA.linformer_attention(qn, k_rand, vn, I, I) - softmax_attention(qn, k_rand, vn)).max() < 1e-10}")

def mean_pool(n, kp):
    """(kp, n): row i averages positions [i n/kp, (i+1) n/kp)."""
    return np.kron(np.eye(kp), np.full((1, n // kp), kp / n))

for name, kn in (("random keys", k_rand), ("keys constant over runs", k_runs)):
    ex_out = softmax_attention(qn, kn, vn)
    rel = lambda o: np.linalg.norm(o - ex_out) / np.linalg.norm(ex_out)
    for kp in (8, 32, 128):
        E, Fp = LA.linformer_projections(n, kp, np.random.default_rng(kp))
        P = mean_pool(n, kp)
        print(f"{name:24s} k={kp:3d}: relative error, random E,F {rel(LA.linformer_attention(qn, kn, vn, E, Fp)):7.2f}"
              f"   mean pooling {rel(LA.linformer_attention(qn, kn, vn, P, P)):.3f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Random projections of this size are far off (errors well above 1: they mix the values of
# unrelated positions and inflate the projected keys); mean pooling is close to exact when the keys
# really are low rank along the sequence and poor when they are not. Low rank is a property of the
# data, and Linformer relies on training $E$ and $F$ to find it.
#
# **The delta rule** (DeltaNet: Schlag et al. 2021; parallelised by Yang et al. 2024; gated form
# in Gated DeltaNet) is the bridge to today's linear-attention layers. Plain linear attention only
# *adds* $v k^\top$ to its memory, so writing a second value under the same key returns the sum of
# both, and the memory fills with interference. The delta rule first reads what the memory says for
# $k_t$ and writes only the correction:
# $$S_t = S_{t-1} + \beta_t\,(v_t - S_{t-1}k_t)\,k_t^\top,\qquad \text{gated: } S_t = \alpha_t S_{t-1}(I-\beta_t k_tk_t^\top) + \beta_t v_t k_t^\top .$$
# Demo: write 12 (key, value) pairs with random unit keys in $d=16$, then overwrite the first 6 keys
# with new values, and read all 12 keys back (the target is each key's latest value).

# %% slideshow={"slide_type": "fragment"}
# NBVAL_CHECK_OUTPUT
dk = 16
rng7 = np.random.default_rng(7)
keys_ = rng7.standard_normal((12, dk)); keys_ /= np.linalg.norm(keys_, axis=1, keepdims=True)
vals = rng7.standard_normal((12, dk)); new_vals = rng7.standard_normal((6, dk))
seq_k = np.concatenate([keys_, keys_[:6]]); seq_v = np.concatenate([vals, new_vals])
want = np.concatenate([new_vals, vals[6:]])                          # the latest value per key
S_sum = seq_v.T @ seq_k                                              # linear attention's memory: sum v k^T
_, S_delta = LA.delta_rule_attention(seq_k, seq_k, seq_v, beta=1.0)
for name, Smat in (("additive (linear attention)", S_sum), ("delta rule, beta = 1", S_delta)):
    read = keys_ @ Smat.T
    print(f"{name:28s} relative read-back error: {np.linalg.norm(read - want) / np.linalg.norm(want):.3f}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# The delta rule's read-back is not exact either (12 random keys in 16 dimensions are not
# orthogonal, so later writes disturb earlier ones), but its error is clearly below the additive
# memory's (printed), which returns old and new values summed.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. What linear attention cannot do: associative recall
#
# A fixed-size state must hold everything the model will later need. Softmax attention keeps every
# key and can pick one out *sharply*. The **associative recall** task of chapter 04
# (`k₁ v₁ … k₆ v₆ SEP k_q → v_q`) tests exactly that. Two identical 2-layer, 2-head, $d=32$ models
# (RoPE, 700 AdamW steps, same seed and data), one with softmax attention, one with elu+1 linear
# attention (`backend="linear"`, trained through its parallel form), evaluated on 500 fresh prompts.

# %% slideshow={"slide_type": "-"} tags=["ledger-11-s6"]
from tinyattn.models import TransformerLM
from tinyattn.train import train
from tinyattn.data import task_batch_fn, associative_recall, sequence_accuracy

N_PAIRS, V_REC, STEPS = 6, 25, 700
x_rec, y_rec = associative_recall(500, N_PAIRS, V_REC, np.random.default_rng(1))
recall = {}
for backend in ("dense", "linear"):
    model = TransformerLM(V_REC, 32, 2, 2, 2 * N_PAIRS + 2, positional="rope", backend=backend,
                          rng=np.random.default_rng(0))
    opt = ta.optim.AdamW(model.parameters(), lr=3e-3)
    hist = train(model, opt, task_batch_fn("recall", 32, N_PAIRS, V_REC), STEPS, seed=0, progress=False,
                 lr_schedule=lambda s: ta.optim.warmup_cosine(s, 20, STEPS, 3e-3, 3e-4))
    with ta.no_grad():
        pred = model.eval()(x_rec).data.argmax(-1)
    recall[backend] = (sequence_accuracy(pred, y_rec)[0], hist["loss"])

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
chance = 1 / (V_REC - 1 - (V_REC - 1) // 2)
print(f"chance level (uniform over {V_REC - 1 - (V_REC - 1) // 2} values): {chance:.3f}")
print(f"softmax attention: recall accuracy >= 0.95: {recall['dense'][0] >= 0.95}")
print(f"elu+1 linear attention: recall accuracy <= 0.6: {recall['linear'][0] <= 0.6}")

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(5, 3.5))
for backend, (acc, loss) in recall.items():
    ax.plot(np.convolve(loss, np.ones(20) / 20, mode="valid"),
            label=f"{'softmax' if backend == 'dense' else 'elu+1 linear'} (accuracy {acc:.2f})")
ax.set_xlabel("step"); ax.set_ylabel("training loss (20-step mean)"); ax.legend(fontsize=8)
ax.set_title(f"associative recall, {N_PAIRS} pairs")
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# Softmax attention learns the lookup; linear attention, with the same parameters, data and
# steps, stays far below it (the accuracies are in the legend; the checked cell above states the
# thresholds). This is one small run, not a proof, but it matches the literature (e.g. Arora et al.
# 2023, "Zoology"): recall is where linear attention's fixed-size state costs quality, and why
# modern linear models add gating, the delta rule, or a few softmax layers. The source text's
# "performance drop 2–5%" (and "~5% gap" in section 5.2) names no task or model: **unsourced**, and
# as this run shows, the gap depends on the task.

# %% [markdown] slideshow={"slide_type": "slide"} tags=["ledger-11"]
# ## Claims ledger (section 4.5 优化3; 1.1 and 5.2 for dates and gaps)
#
# | source-text claim (section) | what we measured (cell) | verdict |
# |---|---|---|
# | Attention ≈ $\phi(Q)(\phi(K)^\top V)$ (4.5 优化3) | §1: reassociation equals the kernel smoother to < 1e-12; §2: causal chunked = RNN = masked form | reproduced |
# | $\phi(x) = \frac1{\sqrt m}[\exp(w_1^\top x),\dots,\exp(w_m^\top x)]$ (4.5 优化3) | §3: without $e^{-\lvert x\rvert^2/2}$ the estimate is biased; its attention-weight error levels off at the closed-form limit printed in §3, FAVOR+'s falls with $m$ | **corrected** (FAVOR+: $\frac1{\sqrt m}\exp(W\bar x - \lvert\bar x\rvert^2/2)$) |
# | linear complexity $O(N)$ (4.5 优化3) | §4 benchmark JSON: 4096 → 8192 multiplies exact time by 4.9, FAVOR+'s by 2.5; faster than exact from N = 512 (elu+1) and N = 1024 (FAVOR+ m=256) | reproduced |
# | no hand-designed sparse pattern needed (4.5 优化3) | true by construction; but §6: linear attention fails associative recall where softmax succeeds | reproduced, with a limit shown |
# | approximation error: "performance drops 2–5%" (4.5 优化3); "~5% gap" (5.2) | no task or model given; §6 shows a task where the gap is far larger | **unsourced** |
# | feature dimension $m\approx256$ needed for accuracy (4.5 优化3) | §3–4: variance ∝ 1/m (slope printed), error grows with N at fixed m; the m needed depends on d, N, scale | **corrected** (no universal m) |
# | Reformer, Linformer in 2019 with $O(N\log N)$ / $O(N)$ (1.1) | Reformer: ICLR 2020; Linformer: arXiv June 2020 | **corrected**: 2020 |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
# `exercises/ch11_linear.py`: causal linear attention as prefix sums (the RNN view), and FAVOR+
# positive random features. Grade with `python3 course.py grade ch11`.
