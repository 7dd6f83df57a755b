# %% [markdown] slideshow={"slide_type": "slide"}
# # Chapter 03: Position encodings (位置编码)
#
# [Chapter 02](02_multi_head.ipynb) proved that self-attention without positions is **permutation-equivariant**: shuffle
# the tokens and the outputs are shuffled the same way. "dog bites man" and "man bites dog" look
# identical. This chapter derives, implements and checks every way modern Transformers put order
# back in (source text sections 2.1, 2.2, 3.3, 3.7, 4.1-4.3):
#
# | family | where position enters | here |
# |---|---|---|
# | sinusoidal (正弦位置编码), learned, CAPE | added to the token embeddings | `ta.positional.sinusoidal`, `LearnedPositionalEmbedding`, `cape_positions` |
# | RoPE (旋转位置编码) | rotates q and k | `rope_inv_freq`, `apply_rope` |
# | ALiBi, T5 bias | a bias added to the attention scores | `alibi_bias`, `T5RelativeBias` |
# | NoPE | nowhere: only the causal mask | `NOPE` |
#
# Every formula is checked numerically against an independent computation. Every number the
# source text states is either reproduced here, corrected, or labelled unsourced in the
# **claims ledger** at the end. Length extrapolation (training at L, testing at 2L...8L) and the RoPE
# scaling methods (PI, NTK, YaRN) are [chapter 05](05_length_extrapolation.ipynb).

# %% slideshow={"slide_type": "skip"}
%config InlineBackend.figure_formats = ['png']
import math

import numpy as np
import matplotlib.pyplot as plt
import tinyattn as ta
from tinyattn import functional as F
from tinyattn import positional as P
from tinyattn.viz import positional as vp
from tinyattn.viz import setup_notebook
setup_notebook()            # small PNG figures, fixed style
rng = np.random.default_rng(0)

# %% slideshow={"slide_type": "skip"}
def small(err, tol=1e-9):
    """Checked cells print agreement as 'below tol' (exact float noise differs across machines)."""
    return f"below {tol:.0e}" if err < tol else f"{err:.3g} (ABOVE {tol:.0e})"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Sinusoidal encoding (source 2.1)
#
# Vaswani et al. (2017) add a fixed vector to each token embedding. Pair i of the d dimensions is a
# point on the unit circle turning at angular frequency $\omega_i = 10000^{-2i/d}$:
#
# $$\mathrm{PE}(p, 2i) = \sin(p\,\omega_i), \qquad \mathrm{PE}(p, 2i+1) = \cos(p\,\omega_i).$$
#
# Think of d/2 clock hands (the source's "clock gears", 时钟齿轮, section 3.3), all starting at
# the same angle and turning at different speeds. We check the library table against the formula
# written out with `math.sin` / `math.cos`, element by element.

# %% slideshow={"slide_type": "fragment"} tags=["ledger-03-s1"]
# NBVAL_CHECK_OUTPUT
n, d = 64, 32
pe = P.sinusoidal(n, d)
closed = np.array([[math.sin(p / 10000 ** (2 * (j // 2) / d)) if j % 2 == 0
                    else math.cos(p / 10000 ** (2 * (j // 2) / d)) for j in range(d)]
                   for p in range(n)])
print("table shape", pe.shape, pe.dtype)
print(f"max |library - closed form| = {small(np.abs(pe - closed).max(), 1e-6)} (float32 table)")

# %% slideshow={"slide_type": "-"}
vp.plot_encoding(P.sinusoidal(128, 64), title="PE[p, :], d = 64: fast pairs on the left")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Many libraries store the same numbers as two blocks, $[\sin \mid \cos]$, instead of interleaving
# them. Same information, different column order: the permutation $[0, 2, 4, \ldots, 1, 3, 5, \ldots]$ maps
# one to the other (we meet the same permutation again with RoPE's two layouts).

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
ang = np.arange(64)[:, None] * 10000.0 ** (-np.arange(0, 32, 2) / 32)   # (64, 16) angles p * w_i
concat = np.concatenate([np.sin(ang), np.cos(ang)], axis=1)              # [sin | cos] layout
perm = np.concatenate([np.arange(0, 32, 2), np.arange(1, 32, 2)])
print("interleaved[:, perm] == [sin | cos]:", np.allclose(P.sinusoidal(64, 32, dtype=np.float64)[:, perm], concat))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Which pair is fast? (a correction)
#
# The wavelength of pair i is $\lambda_i = 2\pi/\omega_i = 2\pi\cdot 10000^{2i/d}$. So **pair 0 is
# the fastest** (wavelength $2\pi \approx 6.28$ positions) and the last pair, i = d/2 - 1, is the
# slowest, with wavelength $2\pi\cdot 10000^{(d-2)/d}$, a little *less* than $2\pi\cdot 10000$.
# The source text labels i = 0 the lowest frequency with $\lambda_0 \approx 62832$; that swaps the two
# ends. (The source's formula for $\lambda_i$ itself is right.)

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
for d_ in (64, 128, 512):
    lam = P.wavelengths(d_)
    print(f"d = {d_:3d}: lambda_0 = {lam[0]:.4f}, lambda_(d/2-1) = {lam[-1]:,.1f}, "
          f"2*pi*10000 = {2 * math.pi * 1e4:,.1f}")

# %% slideshow={"slide_type": "-"}
vp.plot_wavelengths(P.wavelengths(64), train_length=512,
                    title="d = 64: wavelength grows geometrically with the pair index")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### A shift is a rotation: $\mathrm{PE}(p+k) = T_k\,\mathrm{PE}(p)$
#
# With $a = \omega_i p$ and $b = \omega_i k$, the angle-sum identities give
# $\sin(a+b) = \cos b\,\sin a + \sin b\,\cos a$ and $\cos(a+b) = -\sin b\,\sin a + \cos b\,\cos a$. So
# each pair (sin, cos) is multiplied by
# $\begin{pmatrix}\cos b & \sin b\\ -\sin b & \cos b\end{pmatrix}$, which depends on the offset k and
# **not** on p. Stacking the blocks gives one block-diagonal matrix $T_k$ (`P.shift_matrix`). The source
# text's derivation is correct; here it is checked for 1000 random positions, plus the properties that
# make $T_k$ a rotation: orthogonal, determinant 1, and $T_a T_b = T_{a+b}$.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
d, k = 32, 7
T = P.shift_matrix(k, d)
p = rng.uniform(0, 5000, size=1000)
err = np.abs(P.sinusoidal_at(p, d, dtype=np.float64) @ T.T
             - P.sinusoidal_at(p + k, d, dtype=np.float64)).max()
print(f"max |T_k PE(p) - PE(p + k)| over 1000 positions: {small(err)}")
print(f"|T_k^T T_k - I| = {small(np.abs(T.T @ T - np.eye(d)).max())}, det T_k = {np.linalg.det(T):.6f}")
print(f"|T_3 T_4 - T_7| = {small(np.abs(P.shift_matrix(3, d) @ P.shift_matrix(4, d) - T).max())}")
print("block of pair 0:\n", np.round(T[:2, :2], 4))

# %% [markdown] slideshow={"slide_type": "subslide"}
# A consequence worth seeing: the dot product of two encodings,
# $\mathrm{PE}(p)\cdot\mathrm{PE}(q) = \sum_i \cos(\omega_i (p - q))$, depends on $p - q$ only and is
# largest at offset 0. (Once the encodings are *added* to token embeddings and projected by
# $W_Q, W_K$, the attention score also contains content-position cross terms, which is why the
# sinusoidal encoding is called absolute.)

# %% slideshow={"slide_type": "-"}
offsets = np.arange(0, 300)
pe = P.sinusoidal_at(offsets, 64, dtype=np.float64)
vp.plot_curves(offsets, {"PE(0) . PE(k)": pe @ pe[0]}, xlabel="offset k", ylabel="dot product",
               title="similarity of two sinusoidal encodings vs their distance")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Uniqueness (a correction)
#
# The source claims codes are unique "as long as $|pos_1 - pos_2| < \lambda_{max}/2 \approx 31416$,
# because the high-frequency components can tell them apart". The argument is muddled: the
# fastest pair alone already never repeats at integer positions, because $(\sin p, \cos p)$ returns to
# a previous value only if $2\pi$ is rational. And because $T_k$ is a rotation,
# $\lVert\mathrm{PE}(p+k) - \mathrm{PE}(p)\rVert = \lVert T_k\mathrm{PE}(p) - \mathrm{PE}(p)\rVert$ is the same for
# every p, so it suffices to compare every code with $\mathrm{PE}(0)$. We do that for offsets up to
# 200,000 (d = 64), far past 31416.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
N = 200_000
pe = P.sinusoidal(N, 64, dtype=np.float64)
dist = np.linalg.norm(pe[1:] - pe[0], axis=1)            # |PE(k) - PE(0)|, k = 1..N-1
k_min = int(np.argmin(dist)) + 1
print(f"closest code to PE(0) among offsets 1..{N - 1}: offset {k_min}, distance {dist.min():.4f}")
p0 = rng.integers(0, N - 100, size=20)                   # same offset, other starting points
spread = np.ptp(np.linalg.norm(pe[p0 + 37] - pe[p0], axis=1))
print(f"|PE(p + 37) - PE(p)| over 20 random p: spread {small(spread)} (independent of p)")
del pe, dist

# %% [markdown] slideshow={"slide_type": "fragment"}
# The source's other explanation of poor extrapolation, "fp16 precision at large pos", has a true
# core that is easy to pin down: **float16 cannot even store every integer position**. Above 2048 its
# spacing is 2, above 4096 it is 4, so an fp16 position counter merges neighbours. The library forms
# the angles $p\,\omega_i$ in float64 and only casts the final table.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
pos = np.arange(8192)
print("distinct fp16 positions among 0..8191:", np.unique(pos.astype(np.float16)).size)
print("distinct fp32 positions among 0..8191:", np.unique(pos.astype(np.float32)).size)
pe16 = P.sinusoidal_at(pos.astype(np.float16).astype(np.float64), 64)
print("distinct encodings if positions pass through fp16:", np.unique(pe16, axis=0).shape[0])

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Learned absolute embeddings (可学习位置编码)
#
# BERT and GPT-2 learn one vector per position: a table $E \in \mathbb{R}^{L_{max}\times d}$. It is as
# flexible as possible inside $L_{max}$, and has **no row at all** beyond it: asking for position
# $L_{max}$ is an error, not a degraded guess.

# %% slideshow={"slide_type": "-"}
emb = P.LearnedPositionalEmbedding(max_len=16, d_model=8, rng=np.random.default_rng(0))
print("positions 0..3 ->", emb(np.arange(4)).shape)
try:
    emb(np.arange(20))
except ValueError as exc:
    print("ValueError:", exc)

# %% [markdown] slideshow={"slide_type": "fragment"}
# The source lists "O(Ld) parameters" as a weakness. For scale: GPT-2 small has
# `n_positions = 1024`, `n_embd = 768` (its published config) and about 124 M parameters (Radford et
# al. 2019), so the table is:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
table = 1024 * 768
print(f"{table:,} parameters = {table / 124e6:.2%} of ~124 M")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. RoPE (旋转位置编码, source 2.2)
#
# RoPE (Su et al. 2021) puts position into the **score** instead of the embedding. Read each pair of
# coordinates of q as a complex number $\tilde q_i = q_{2i} + \mathbf{i}\,q_{2i+1}$ and rotate it by
# the position: $\tilde q_i \mapsto \tilde q_i e^{\mathbf{i} m\theta_i}$ with
# $\theta_i = 10000^{-2i/d}$ (the sinusoidal frequencies). Then
#
# $$\langle R_m q, R_n k\rangle = \mathrm{Re}\sum_i \tilde q_i\,\overline{\tilde k_i}\,e^{\mathbf{i}(m-n)\theta_i},$$
#
# a function of $m - n$ only. First, the library rotation against the complex multiplication
# written with `np.exp(1j * m * theta)`:

# %% slideshow={"slide_type": "fragment"} tags=["ledger-03-s3"]
# NBVAL_CHECK_OUTPUT
d, L = 16, 10
theta = P.rope_inv_freq(d)
x = rng.standard_normal((L, d))
m = np.arange(L) * 37
z = (x[:, 0::2] + 1j * x[:, 1::2]) * np.exp(1j * m[:, None] * theta)
ref = np.empty_like(x)
ref[:, 0::2], ref[:, 1::2] = z.real, z.imag
out = P.apply_rope(x, m, theta, layout="interleaved")
print(f"max |apply_rope - complex rotation| = {small(np.abs(out - ref).max())}")
print(f"norms preserved: max | |R x| - |x| | = "
      f"{small(np.abs(np.linalg.norm(out, axis=1) - np.linalg.norm(x, axis=1)).max())}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# The same rotation as a real matrix $R_m$ is block-diagonal with one 2x2 rotation per pair
# (source step 3). It is mostly zeros, so nobody multiplies by it: `apply_rope` costs O(d) per vector.
# Here is $R_m$ for d = 4, m = 2:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print(np.round(P.rope_matrix(2, P.rope_inv_freq(4), 4, layout="interleaved"), 4))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The $q^\perp$ term (a sign convention)
#
# The source writes the 2-D score as $\langle q,k\rangle\cos\Delta\theta - \langle q^\perp,k\rangle\sin\Delta\theta$
# with $\Delta = m - n$, without saying what $q^\perp$ is. Expanding
# $\mathrm{Re}(\tilde q\,\overline{\tilde k}\,e^{\mathbf{i}\Delta\theta})$ gives
# $\langle q,k\rangle\cos\Delta\theta + \langle \mathbf{i}q, k\rangle\sin\Delta\theta$ where
# $\mathbf{i}q = (-q_1, q_0)$ is q turned by +90°. So the source's minus sign holds if $q^\perp$ means q
# turned by **-90°**. Checked:

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
q2, k2 = rng.standard_normal(2), rng.standard_normal(2)
th, mm, nn = 0.3, 11, 4
rot = lambda v, a: np.array([v[0] * np.cos(a) - v[1] * np.sin(a), v[1] * np.cos(a) + v[0] * np.sin(a)])
score = rot(q2, mm * th) @ rot(k2, nn * th)
iq = np.array([-q2[1], q2[0]])                       # q turned by +90 degrees
D = (mm - nn) * th
print(f"score {score:.6f} | <q,k>cos + <iq,k>sin = {q2 @ k2 * np.cos(D) + iq @ k2 * np.sin(D):.6f}"
      f" | <q,k>cos - <-iq,k>sin = {q2 @ k2 * np.cos(D) - (-iq) @ k2 * np.sin(D):.6f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Relative-only scores, checked
#
# Fix one q and one k, place them at every pair of positions (m, n) and collect the scores
# $S_{mn} = \langle R_m q, R_n k\rangle$. If the score depends only on $m - n$, S is constant along
# every diagonal (a Toeplitz matrix).

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
d, L = 64, 96
theta = P.rope_inv_freq(d)
q, k = rng.standard_normal((2, d))
pos = np.arange(L)
Rq = P.apply_rope(np.tile(q, (L, 1)), pos, theta)   # row m = R_m q
Rk = P.apply_rope(np.tile(k, (L, 1)), pos, theta)   # row n = R_n k
S = Rq @ Rk.T
print(f"max |S[m, n] - S[m+1, n+1]| = {small(np.abs(S[1:, 1:] - S[:-1, :-1]).max())}")
zq, zk = q[:32] + 1j * q[32:], k[:32] + 1j * k[32:]      # "half" layout pairs (i, i + d/2)
closed = np.real((zq * np.conj(zk) * np.exp(1j * (pos[:, None, None] - pos[None, :, None]) * theta)).sum(-1))
print(f"max |S - Re sum q conj(k) e^(i(m-n)theta)| = {small(np.abs(S - closed).max())}")

# %% slideshow={"slide_type": "-"}
vp.plot_matrix(S, title="RoPE scores <R_m q, R_n k>: constant on diagonals", symmetric=True,
               cmap="RdBu")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### "Exactly relative" vs "approximately linear" (the source's wording, 2.2)
#
# The source lists as RoPE's first advantage that its relative position is "completely exact, vs the
# sinusoidal encoding's approximately linear" one (相对位置表达完全准确 vs Sinusoidal的近似线性). The
# **wording** is wrong: the sinusoidal shift $\mathrm{PE}(p+k) = T_k\,\mathrm{PE}(p)$ is exactly linear (§1,
# error below 1e-9). The **substance** is right, once it is said about the attention **score**. With
# sinusoidal encodings the model adds $\mathrm{PE}$ to the token vector and then projects, so the score
# between positions m and n is
#
# $$(x_m + \mathrm{PE}_m)\,W_Q W_K^\top (x_n + \mathrm{PE}_n)^\top
#   = x_m M x_n^\top + x_m M\,\mathrm{PE}_n^\top + \mathrm{PE}_m M x_n^\top + \mathrm{PE}_m M\,\mathrm{PE}_n^\top,
#   \qquad M = W_Q W_K^\top .$$
#
# The two cross terms depend on n alone and on m alone, and even the position-position term
# $\mathrm{PE}_0\, T_m^\top M\, T_n\, \mathrm{PE}_0^\top$ is a function of $m - n$ only when $M$ commutes
# with the rotations (as $M = I$ does), not for a learned $M$. RoPE rotates **after** the projection,
# $\langle R_m q, R_n k\rangle = q^\top R_{n-m} k$, so the score is a function of $m - n$ for every
# $W_Q, W_K$. Measured with one token vector x at every position, the same random $W_Q, W_K$ for
# both encodings, and the Toeplitz test above (relative to the largest score):

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
d, L = 64, 96
rng_w = np.random.default_rng(3)                       # own generator: later cells keep their draws
x = rng_w.standard_normal(d)
Wq, Wk = rng_w.standard_normal((2, d, d)) / np.sqrt(d)
pe = P.sinusoidal(L, d, dtype=np.float64)              # (L, d), row p = PE(p)
pos = np.arange(L)

def off_toeplitz(S):
    """max |S[m, n] - S[m+1, n+1]| / max |S|: 0 iff S depends on m - n only."""
    return np.abs(S[1:, 1:] - S[:-1, :-1]).max() / np.abs(S).max()

S_pe_dot = pe @ pe.T                                   # PE_m . PE_n (M = I)
S_sin = ((x + pe) @ Wq) @ ((x + pe) @ Wk).T            # sinusoidal added, then projected
S_sin_pos = (pe @ Wq) @ (pe @ Wk).T                    # its position-position term alone
S_rope = P.apply_rope(np.tile(x @ Wq, (L, 1)), pos, P.rope_inv_freq(d)) @ \
    P.apply_rope(np.tile(x @ Wk, (L, 1)), pos, P.rope_inv_freq(d)).T
for name, S_ in [("sinusoidal, PE_m . PE_n (no projection)", S_pe_dot),
                 ("sinusoidal added, then W_Q, W_K", S_sin),
                 ("  its term PE_m W_Q W_K^T PE_n alone", S_sin_pos),
                 ("RoPE after W_Q, W_K", S_rope)]:
    dev = off_toeplitz(S_)
    print(f"{name:40s}: relative deviation from a function of m - n = "
          f"{small(dev) if dev < 1e-9 else f'{dev:.2f}'}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# Along a diagonal ($m+1, n+1$ against $m, n$) the score of the sinusoidal model moves by about a
# quarter of its largest value (0.27), and its position-position term alone by 0.43; RoPE's does not
# move beyond rounding. That is the correct sense of "exactly relative": RoPE is the only one of the
# two whose **score** depends on $m - n$ alone, whatever the projections learn.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Two memory layouts, one rotation
#
# Which coordinates form a pair is a convention:
# - **interleaved** (RoFormer, GPT-J, the source's code): pairs $(2i, 2i+1)$;
# - **half** (GPT-NeoX, Llama, Hugging Face `rotate_half`): pairs $(i, i + d/2)$, computed as
#   $x\cos + \mathrm{rotate\_half}(x)\sin$ with $\mathrm{rotate\_half}(x) = [-x_2, x_1]$.
#
# They are the same rotation in different coordinates: with $\text{perm} = [0, 2, 4, \ldots, 1, 3, 5, \ldots]$,
# `interleaved(x)[perm] == half(x[perm])`. This matters when loading weights: a checkpoint trained
# with one layout needs its $W_Q, W_K$ columns permuted to run with the other.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
d = 8
perm = P.half_permutation(d)
x = rng.standard_normal((5, d))
theta, pos = P.rope_inv_freq(d), np.arange(5) * 13
inter = P.apply_rope(x, pos, theta, layout="interleaved")
half = P.apply_rope(x[:, perm], pos, theta, layout="half")
print("perm =", perm.tolist())
print(f"max |interleaved(x)[perm] - half(x[perm])| = {small(np.abs(inter[:, perm] - half).max())}")
print(f"but interleaved(x) vs half(x) without the permutation differ by "
      f"{np.abs(inter - P.apply_rope(x, pos, theta, layout='half')).max():.3f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The source's code has a broadcasting bug
#
# The source's `apply_rotary_pos_emb` takes `q` of shape `[batch, seq_len, num_heads, d_head]` and
# builds `cos` of shape `[seq_len, d/2]`. NumPy/PyTorch broadcasting aligns **trailing** axes, so
# `q_even * cos` lines `seq_len` up against `num_heads`. It crashes when they differ and is
# *silently wrong* when they are equal. Reproduced in NumPy (same broadcasting rules):

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
def source_rope_even_part(q, pos):                    # the source's lines, NumPy spelling
    d = q.shape[-1]
    freqs = 1.0 / (10000 ** (np.arange(0, d, 2) / d))
    angles = pos[:, None] * freqs[None, :]              # [seq_len, d/2]
    cos, sin = np.cos(angles), np.sin(angles)
    q_even, q_odd = q[..., 0::2], q[..., 1::2]
    return q_even * cos - q_odd * sin                   # cos should be cos[:, None, :]

B, S_, H, dh = 2, 6, 4, 8
try:
    source_rope_even_part(rng.standard_normal((B, S_, H, dh)), np.arange(S_))
except ValueError as exc:
    print("seq_len 6, heads 4 -> ValueError:", exc)
q = rng.standard_normal((B, 4, 4, dh))                 # seq_len == num_heads == 4: no error...
wrong = source_rope_even_part(q, np.arange(4))
right = P.apply_rope(q.transpose(0, 2, 1, 3), np.arange(4), P.rope_inv_freq(dh),
                     layout="interleaved").transpose(0, 2, 1, 3)[..., 0::2]
print(f"seq_len == heads -> runs, but max error vs correct rotation = {np.abs(wrong - right).max():.3f}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# The fix is a head axis on the table, `cos[:, None, :]`, or (as here) putting heads before the
# sequence axis, `x: (B, H, L, d)`, so that `(L, d/2)` broadcasts correctly.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Clock gears (source 3.3), with the numbers fixed
#
# The analogy is good: pair i is a gear turning $\theta_i$ **radians** per position. The hand speeds it
# quotes are right (a second hand turns 360°/60 s = 6°/s; a minute hand 0.1°/s; an hour hand
# 30°/3600 s ≈ 0.0083°/s). Two details are wrong: "position 1: all gears turn 1°" (each gear turns its
# own $\theta_i$) and "positions 50 and 53: gear difference = 3° for all gears" (the difference is
# $3\theta_i$, different per gear; only the *offset* 3 is shared). Its $\theta_{32} = 0.01$ for d = 64 is
# right if "dimension 32" means coordinate 32, that is pair i = 16.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
theta = P.rope_inv_freq(64)
for i in (0, 8, 16, 31):
    print(f"pair {i:2d}: theta = {theta[i]:.6f} rad/position; position 1 -> {np.degrees(theta[i]):8.4f} deg; "
          f"53 vs 50 -> {np.degrees(3 * theta[i]):8.4f} deg")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Long-range decay is a feature (correcting 4.1 / 4.3)
#
# The source lists "amplitude decays with distance" as RoPE's first defect. The RoFormer paper
# derives it as a *desired* property: by Abel summation the score is bounded by
# $\max_i|h_{i+1}-h_i|\sum_j |S_j|$ with $S_j = \sum_{k<j} e^{\mathbf{i}\Delta\theta_k}$, and the relative
# bound $\frac{2}{d}\sum_j|S_j|$ shrinks as the distance $\Delta$ grows: far tokens get smaller scores
# unless q and k are strongly aligned, which is the locality prior we want. Strong alignment can
# still produce a large far-away score: nothing forbids long-range attention.
#
# The source's formula for the score, $\sum_i \|q_i\|\|k_i\|\cos(\Delta\theta_i)$, is only true if every
# pair of q is aligned with the matching pair of k; in general each term is
# $\|q_i\|\|k_i\|\cos(\Delta\theta_i + \varphi_i)$. Its table of "mean attention weight vs distance" has
# no source.

# %% slideshow={"slide_type": "-"}
dist = np.arange(0, 1001)
curves = {f"d = {d_}": P.rope_decay_bound(dist, d_) / P.rope_decay_bound([0], d_)[0] for d_ in (32, 128)}
vp.plot_curves(dist, curves, xlabel="relative distance m - n", ylabel="relative bound (1 at 0)",
               title="RoPE long-range decay (RoFormer's bound), base 10000")
plt.show()

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
b = P.rope_decay_bound(dist, 128)
print(f"d = 128: bound at 0 = {b[0]:.2f}, mean over 1..10 = {b[1:11].mean():.2f}, "
      f"over 100..200 = {b[100:201].mean():.2f}, over 500..1000 = {b[500:].mean():.2f}")
q = rng.standard_normal(128)
theta = P.rope_inv_freq(128)
Rq0 = P.apply_rope(q[None], [0], theta)[0]
aligned = [Rq0 @ P.apply_rope(q[None], [t], theta)[0] / (q @ q) for t in (0, 10, 100, 1000)]
print("same vector at distance 0/10/100/1000, score / |q|^2:", [f"{a:.3f}" for a in aligned])

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The "audio spectrum" view (频谱分析, source 3.7), and which pairs go out of distribution
#
# Two numbers in 3.7 are off. The slowest frequency is $\theta_{d/2-1} = 10000^{-(d-2)/d}$, not
# $10000^{-1}$; and its period is therefore shorter than 62832. More importantly, the source says that
# at longer lengths **the high-frequency pairs leave the training range**. It is the other way
# round. A pair whose wavelength is shorter than the training length has turned through every angle
# many times during training; nothing is new at position 4L. A pair whose wavelength exceeds
# $L_{train}$ has only ever seen an arc of its circle; longer inputs show it angles it never saw. Those
# slow pairs are what PI, NTK and YaRN rescale ([chapter 05 §3](05_length_extrapolation.ipynb#which-pairs) checks it on a trained model: interpolating only the slow pairs recovers its loss at 4L, the fast ones do not).

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
for d_ in (64, 128):
    th = P.rope_inv_freq(d_)
    print(f"d = {d_}: slowest theta = {th[-1]:.3e} (source: 1.000e-04), period = {2 * np.pi / th[-1]:,.0f}")
L_train, d = 512, 128
th = P.rope_inv_freq(d)
seen = np.minimum(1.0, L_train * th / (2 * np.pi))      # fraction of the circle visited in training
print(f"d = {d}, L_train = {L_train}: {np.sum(seen >= 1)} of {d // 2} pairs completed a full turn; "
      f"{np.sum(seen < 1)} slow pairs saw only part of their circle (min {seen.min():.4f})")

# %% slideshow={"slide_type": "-"}
fig, ax = plt.subplots(figsize=(6, 3))
for L_ in (512, 2048):
    ax.plot(np.minimum(1.0, L_ * th / (2 * np.pi)), ".-", label=f"positions 0..{L_}")
ax.set(xlabel="pair index i (fast -> slow)", ylabel="fraction of circle visited",
       title="training at 512: only the slow pairs meet new angles at 2048")
ax.legend(fontsize=8)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. ALiBi (source 4.1)
#
# ALiBi (Press et al. 2022) adds no vectors at all. Head h adds $-m_h\,(i - j)$ to the scaled score of
# query i for key $j \le i$: a penalty growing linearly with distance, steeper for heads with a larger
# slope. The slopes are a fixed geometric sequence, $m_h = 2^{-8h/n}$ for n heads (a power of two).
# For other head counts the paper takes the slopes of the closest smaller power of two c, then every
# other slope of the 2c-head sequence. The source calls the slopes "head-count sensitive, m must be
# tuned": they are not tuned in the paper, they are fixed by this rule.

# %% slideshow={"slide_type": "-"} tags=["ledger-03-s4"]
# NBVAL_CHECK_OUTPUT
print("n = 8 :", " ".join(f"2^{np.log2(s):.1f}" for s in P.alibi_slopes(8)))
print("n = 12:", " ".join(f"2^{np.log2(s):.1f}" for s in P.alibi_slopes(12)))
print("n = 12 closed form (REFERENCE): 2^-1..2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5")

# %% slideshow={"slide_type": "-"}
fig, ax = plt.subplots(figsize=(6, 3))
for n_ in (4, 8, 12, 16, 24, 32):
    ax.semilogy(np.arange(1, n_ + 1), P.alibi_slopes(n_), "o-", ms=3, label=f"{n_} heads")
ax.set(xlabel="head h", ylabel="slope m_h", title="ALiBi slopes (fixed, not learned)")
ax.legend(fontsize=7, ncol=2)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The bias for 8 heads on 32 positions, all heads on **one** colour scale, so that the slope visibly
# sets how far each head can look. One way to put a number on a head's reach: the distance $1/m_h$ at
# which its penalty reaches $-1$, i.e. a key's weight has dropped by a factor $e$ against an equally
# scored key on the diagonal. Entries above the diagonal are 0 in `alibi_bias`: those future keys are
# removed by the causal mask, so the bias never touches them. With a KV cache ($L_q < L_k$) the
# queries are the *last* $L_q$ positions (bottom-right alignment, like the mask).

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
slopes8 = P.alibi_slopes(8)
print("reach 1/m_h (positions) for heads 1..8:", " ".join(f"{1 / s:.0f}" for s in slopes8))
b32 = P.alibi_bias(8, 32, 32)
far = b32[:, -1, 0]                                    # query 31, key 0: distance 31
print("bias at distance 31 per head           :", " ".join(f"{v:.2f}" for v in far))
print("weight factor e^bias at distance 31    :", " ".join(f"{v:.1e}" for v in np.exp(far)))

# %% slideshow={"slide_type": "subslide"}
vp.plot_heads(b32, titles=[f"m = 2^{np.log2(s):.0f}" for s in slopes8],
              suptitle="ALiBi bias -m_h (i - j), 8 heads on one shared colour scale")
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# On the shared scale the heads form a ladder from local to almost global. The steepest head
# ($m = 1/2$, reach 2) reaches $-15.5$ at distance 31, a factor $e^{-15.5} \approx 1.9\times10^{-7}$:
# content would need a score margin of 15.5 to make it look that far back. The gentlest ($m = 1/256$,
# reach 256) is only at $-0.12$ there (a factor 0.89), so over 32 tokens it hardly prefers near keys
# at all. Giving each head its own colour scale would draw all eight as the same triangle and hide
# exactly this.
#
# Two checks. (1) Hugging Face's BLOOM adds the row-constant form $m_h\,j$ instead of
# $-m_h(i - j)$; the two differ by $m_h i$, a constant per row, which softmax ignores, so under a
# causal mask the attention weights are identical. (2) Decoding one query against 12 cached keys gives
# the last row of the full bias.

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
H, L = 8, 12
q, k = rng.standard_normal((2, H, L, 16))
eye = np.broadcast_to(np.eye(L), (H, L, L))            # v = I: the output IS the weight matrix
weights = lambda bias: F.scaled_dot_product_attention(q, k, eye, bias=bias, is_causal=True).data
w_ours = weights(P.alibi_bias(H, L, L))
bloom = P.alibi_slopes(H)[:, None, None] * np.arange(L)[None, None, :]   # m_h * j
w_bloom = weights(np.broadcast_to(bloom, (H, L, L)))
print(f"max |ALiBi weights - BLOOM-form weights| = {small(np.abs(w_ours - w_bloom).max())}")
print("decode row == last row of full bias:",
      np.array_equal(P.alibi_bias(H, 1, L)[:, 0], P.alibi_bias(H, L, L)[:, -1]))

# %% [markdown] slideshow={"slide_type": "fragment"}
# The source's "extrapolates 10x+" is unsourced. The ALiBi paper's headline is that a model trained
# on 1024 tokens and evaluated on 2048 matches the perplexity of a sinusoidal model trained on 2048.
# [Chapter 05 §2](05_length_extrapolation.ipynb#encodings) measures extrapolation on our own tiny models.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. T5 relative bias (source 4.2, "hybrid absolute + relative")
#
# T5 (Raffel et al. 2020) learns one scalar per (distance bucket, head). The relative position
# `rel = key - query` goes into one of 32 buckets: half the buckets are exact (one per distance 0..15
# in the causal case), the rest cover distances up to `max_distance = 128` logarithmically, and
# everything farther shares the last bucket. Bidirectional attention (the encoder) splits the
# buckets into left and right halves. Our `t5_relative_bucket` is checked in the tests against a
# plain-Python transcription of the published rule.

# %% slideshow={"slide_type": "-"}
rel = np.arange(-300, 301)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(rel, P.t5_relative_bucket(rel, bidirectional=True), label="bidirectional (encoder)")
ax.plot(rel, P.t5_relative_bucket(rel, bidirectional=False), label="causal (decoder)")
for x_ in (-128, 128):
    ax.axvline(x_, color="gray", ls=":", lw=1)
ax.set(xlabel="relative position key - query", ylabel="bucket", title="T5 buckets: exact near, log far")
ax.legend(fontsize=8)
plt.show()

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
for r in (0, -1, -15, -16, -32, -64, -127, -128, -1000, 1, 15, 16, 1000):
    print(f"rel {r:6d}: bidirectional {int(P.t5_relative_bucket(np.array(r))):2d}, "
          f"causal {int(P.t5_relative_bucket(np.array(r), bidirectional=False)):2d}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Where the bias goes (a correction).** The source writes
# $\mathrm{softmax}\big((QK^\top + B)/\sqrt d\big)$. T5 has no $1/\sqrt d$ at all (it folds the scale
# into its weight initialisation) and adds the bias to the **unscaled** logits: $\mathrm{softmax}(QK^\top + B)$.
# In our SDPA that is `scale=1.0, bias=B`. One `T5RelativeBias` module is created per model and shared
# by every layer; it is differentiable with respect to its `(num_buckets, n_heads)` table.

# %% slideshow={"slide_type": "-"}
t5 = P.T5RelativeBias(n_heads=4, rng=np.random.default_rng(0))
print("table shape", t5.table.shape, "->", sum(p.data.size for p in t5.parameters()), "parameters for all layers")
Bias = t5(24, 24)                                            # (H, Lq, Lk) Tensor
q, k, v = (ta.Tensor(rng.standard_normal((4, 24, 16))) for _ in range(3))
out = F.scaled_dot_product_attention(q, k, v, bias=Bias, is_causal=True, scale=1.0)
out.sum().backward()
print("gradient reached the bias table:", t5.table.grad.shape, f"|grad| = {np.abs(t5.table.grad).sum():.3f}")
vp.plot_heads(t5(24, 24), suptitle="T5 bias at initialisation (causal, random table)")
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# The source's "T5: BLEU 27.2 → 28.4 with relative bias" has no source we could find; it is labelled
# unsourced in the ledger.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. NoPE: no position encoding at all
#
# Without positions and without a mask, self-attention is permutation-equivariant: permuting the
# input rows permutes the output rows and nothing else. So an encoder (bidirectional) with NoPE
# cannot tell word order at all.

# %% slideshow={"slide_type": "-"} tags=["ledger-03-s6"]
# NBVAL_CHECK_OUTPUT
L, d = 10, 16
x = rng.standard_normal((L, d))
Wq, Wk, Wv = (rng.standard_normal((d, d)) / np.sqrt(d) for _ in range(3))
attn = lambda x, causal: F.scaled_dot_product_attention(  # one head: (H=1, L, d)
    (x @ Wq)[None], (x @ Wk)[None], (x @ Wv)[None], is_causal=causal).data[0]
perm = rng.permutation(L)
print(f"no mask:     max |attn(x[perm]) - attn(x)[perm]| = {small(np.abs(attn(x[perm], False) - attn(x, False)[perm]).max())}")
print(f"causal mask: max |attn(x[perm]) - attn(x)[perm]| = {np.abs(attn(x[perm], True) - attn(x, True)[perm]).max():.3f}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# A causal mask breaks the symmetry: query i sees exactly i + 1 keys. That alone lets a model recover
# position. A concrete circuit: a query that scores all keys equally (q = 0) averages the values it
# can see; if the value of the first token (a BOS marker) is 1 and all others 0, the output at
# position i is exactly $1/(i+1)$, a position signal computed from nothing but the mask.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
L = 12
qz, kz = np.zeros((L, 4)), rng.standard_normal((L, 4))
v = np.zeros((L, 1)); v[0] = 1.0                      # only BOS carries a 1
readout = F.scaled_dot_product_attention(qz[None], kz[None], v[None], is_causal=True).data[0, :, 0]
print("causal readout :", np.round(readout[:6], 4).tolist())
print("1 / (i + 1)    :", np.round(1 / np.arange(1, 7), 4).tolist())
print("no mask readout:", np.round(F.scaled_dot_product_attention(qz[None], kz[None], v[None]).data[0, :6, 0], 4).tolist())

# %% [markdown] slideshow={"slide_type": "fragment"}
# The source's table credits NoPE with "unlimited extrapolation": no source. NoPE has no position
# table to run out of, but the counting signal above gets finer as i grows ($1/i - 1/(i+1) \approx 1/i^2$), so
# nothing guarantees it generalises to unseen lengths. [Chapter 05 §2](05_length_extrapolation.ipynb#encodings) measures it.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. CAPE: continuous augmented positions (correcting 4.2)
#
# The source describes CAPE as a content-conditioned MLP, $\mathrm{PE}(pos, x) = \mathrm{MLP}([\sin; \cos; x])$.
# That is not what CAPE is. CAPE (Likhomanenko et al. 2021, "Continuous Augmented Positional
# Embeddings") keeps the sinusoidal encoding and, **during training only**, feeds it randomly
# transformed positions: a global shift $\Delta$ per sequence, a small local jitter $\epsilon_i$ per token,
# and a global scale $\lambda$: $x' = \lambda(x + \Delta + \epsilon)$. The model cannot memorise absolute
# positions and has to use relative ones. At evaluation the positions are plain $0..L-1$. It adds no
# parameters.

# %% slideshow={"slide_type": "-"} tags=["ledger-03-s7"]
fig, ax = plt.subplots(figsize=(6, 3))
crng = np.random.default_rng(1)
for s in range(4):
    ax.plot(P.cape_positions(24, crng, max_global_shift=5, max_local_shift=1, max_global_scaling=1.1),
            ".-", ms=3, lw=0.8, label=f"training sample {s}")
ax.plot(P.cape_positions(24, None, training=False), "k--", lw=1.5, label="evaluation (0..L-1)")
ax.set(xlabel="token index", ylabel="position fed to sin/cos", title="CAPE positions")
ax.legend(fontsize=7)
plt.show()

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
crng = np.random.default_rng(2)
pos = np.stack([P.cape_positions(64, crng) for _ in range(200)])
print(f"order kept in all 200 samples: {bool(np.all(np.diff(pos, axis=1) > 0))}; "
      f"first-token position ranges over [{pos[:, 0].min():.2f}, {pos[:, 0].max():.2f}]")
print("encoding shape:", P.cape_encoding(64, 32, rng=crng).shape)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. The comparison table (source 4.1), corrected
#
# | method | formula | strengths | weaknesses (source, corrected) |
# |---|---|---|---|
# | Sinusoidal | $\sin(p\,\omega_i)$, $\cos(p\,\omega_i)$ interleaved | no parameters; shift = rotation $T_k$ (checked above) | extrapolates poorly in practice (measured in [chapter 05](05_length_extrapolation.ipynb#encodings)); "additive encoding disturbs gradients": **unsourced** |
# | Learned | $E \in \mathbb{R}^{L_{max}\times d}$ | fully data-driven | no rows past $L_{max}$ (raises); $O(L_{max} d)$ parameters, e.g. 0.63% of GPT-2 small; "best in-distribution": **unsourced** |
# | RoPE | rotate q, k by $m\theta_i$ | scores depend on $m - n$ only (checked); no parameters | long-range decay is **intended**, not a defect; under extrapolation the **slow (low-frequency)** pairs go out of distribution, not the fast ones; "+25% time" **unsourced** (cos/sin tables are precomputed) |
# | ALiBi | $-m_h (i - j)$, $j \le i$, after $1/\sqrt d$ | no parameters; cheap | slopes are **fixed** by a rule for any head count (not tuned); "10x+ extrapolation" **unsourced** (paper: train 1024, test 2048) |
# | T5 bias | learned scalar per (bucket, head), unscaled logits | relative; tiny table shared by layers | the source's $/\sqrt d$ placement is **wrong**; BLEU gain **unsourced** |
# | NoPE | nothing | no parameters | needs a **causal mask** (without one, order is invisible: checked); "unlimited extrapolation" **unsourced** |
# | CAPE | sinusoidal at augmented positions (training only) | no parameters; pushes toward relative use | **not** a content MLP |

# %% [markdown] slideshow={"slide_type": "slide"} tags=["ledger-03"]
# ## Claims ledger
#
# | source claim (section) | what we measured (cell) | verdict |
# |---|---|---|
# | $\mathrm{PE}(pos+k) = T_k\,\mathrm{PE}(pos)$, $T_k$ independent of pos (2.1) | §1 shift: error below 1e-9 over 1000 positions; orthogonal, det 1 | reproduced |
# | i = 0 is the lowest frequency, $\lambda_0 \approx 62832$ (2.1) | §1 wavelengths: $\lambda_0 = 2\pi$, slowest just under $2\pi\cdot 10^4$ | corrected |
# | codes unique if $\lvert\Delta pos\rvert < 31416$ "because high frequencies differ" (2.1) | §1 uniqueness: every offset up to 200,000 stays >= 1.47 away from PE(0) (the fast pair alone never repeats) | corrected |
# | fp16 precision hurts at large pos (2.1, 4.2) | §1: fp16 stores only 4097 of the positions 0..8191 | reproduced (made precise) |
# | extrapolation PPL tables for sinusoidal, RoPE vs sinusoidal on LLaMA (2.1, 2.2, 4.2) | no source; tiny models trained per encoding in [chapter 05 §2](05_length_extrapolation.ipynb#encodings) degrade past L, unscaled RoPE faster than sinusoidal | unsourced |
# | RoPE score depends only on m - n (2.2) | §3: Toeplitz check and complex closed form, error below 1e-9 | reproduced |
# | $\ldots - \langle q^\perp, k\rangle\sin$ (2.2) | §3: holds with $q^\perp$ = q turned by -90° | corrected (convention stated) |
# | the source's `apply_rotary_pos_emb` (2.2) | §3: crashes for seq_len ≠ heads, silently wrong when equal | corrected |
# | "multiplicative RoPE keeps gradients stable; additive encodings disturb them" (2.2, 4.1, 4.2) | no source, no measurement offered | unsourced |
# | "relative position exact for RoPE vs approximately linear for sinusoidal" (2.2) | §1: the sinusoidal shift is exactly linear ($T_k$, error below 1e-9); §3 "exactly relative": after $W_Q, W_K$ only RoPE's score is a function of m - n alone (deviation below 1e-9), sinusoidal's is not (relative deviation printed) | wording wrong, substance right |
# | clock gears: all gears turn 1° per position; 53 vs 50 differ by 3° (3.3) | §3 gears: gear i turns $\theta_i$ rad; differences $3\theta_i$ | corrected |
# | slowest frequency $10000^{-1}$, period 62832 (3.7) | §3 spectrum: $10000^{-(d-2)/d}$ | corrected |
# | high-frequency dims go out of distribution when extrapolating (3.7, 4.3) | §3 spectrum: at d = 128, L = 512 the 31 fast pairs completed full turns; only the 33 slow pairs meet new angles (on a trained model: [chapter 05 §3](05_length_extrapolation.ipynb#which-pairs)) | corrected |
# | RoPE long-range decay is a defect (4.1, 4.3) | §3 decay: RoFormer's bound decays by design | corrected |
# | score $= \sum\lVert q_i\rVert\lVert k_i\rVert\cos(\Delta\theta_i)$ (4.3) | needs a phase $\varphi_i$ per pair unless aligned | corrected |
# | attention-weight-vs-distance table, RoPE timing table, "5-8% dims hijacked", base sweep (4.2, 4.3) | no source | unsourced |
# | ALiBi slopes need tuning / head-count sensitive (4.1) | §4: fixed rule, any n (tests: n = 1..32) | corrected |
# | ALiBi extrapolates 10x+ (4.1) | paper: train 1024, test 2048; our tiny models: [chapter 05 §2](05_length_extrapolation.ipynb#encodings) | unsourced |
# | relative bias added before dividing by $\sqrt d$ (4.2) | T5 adds to unscaled logits | corrected |
# | T5 BLEU 27.2 → 28.4 (4.2) | no source | unsourced |
# | CAPE is a content MLP (4.2) | §7: CAPE = augmented positions for sinusoidal | corrected |
# | NoPE: unlimited extrapolation (4.1) | §6: order only through the causal mask; no guarantee; our tiny models: [chapter 05 §2](05_length_extrapolation.ipynb#encodings) | unsourced |
# | YaRN / NTK / grouped RoPE details (4.2, 4.3) | [chapter 05 §4–5](05_length_extrapolation.ipynb#methods): YaRN keeps the fast pairs and interpolates the slow ones (the source has it backwards); its temperature is one global factor, not per dimension; no published "grouped RoPE" was found | **corrected** (YaRN, temperature); grouped RoPE **unsourced** |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Exercises
#
# `exercises/ch03_positional.py` asks you to build this chapter's encodings yourself: the interleaved
# sinusoidal table (03.1), RoPE in both layouts, `rope_interleaved` and `rope_half` (03.2, 03.3),
# and ALiBi's slopes for any number of heads (03.4). Edit the file, then grade it:
#
# ```bash
# python3 course.py grade ch03
# ```
#
# The table shows the points per exercise; `python3 course.py grade --impl solutions ch03` grades the
# reference solutions (full marks) for comparison.
