"""RoPE scaling for length extrapolation (chapter 05): s = factor = L_new / L_train.

``scaled_rope(head_dim, method, factor, original_max_position, base, seq_len, **kw)`` returns
``(inv_freq, attention_factor)`` to pass to ``apply_rope``:

- "linear"  position interpolation (Chen et al. 2023): ``theta_i' = theta_i / s``.
- "ntk"     NTK-aware base change: ``base' = base * s^(d/(d-2))``; the slowest pair is divided by
            exactly s, the fastest (theta_0 = 1) is unchanged.
- "dynamic" dynamic NTK (Hugging Face): ``base' = base * ((s * L / L_train) - (s - 1))^(d/(d-2))``
            with the current length ``L = max(seq_len, L_train)`` (no change up to L_train).
- "yarn"    YaRN (Peng et al. 2023): ``theta_i' = (1 - gamma_i) theta_i / s + gamma_i theta_i`` with a
            ramp gamma = 1 for fast pairs (kept: many turns within L_train) and 0 for slow pairs
            (interpolated). Ramp ends as in Hugging Face: ``i(n) = d ln(L_train / (2 pi n)) / (2 ln base)``
            for n = beta_fast (32) and beta_slow (1) full turns, floored/ceiled; linear in i between.
            ``ramp="ratio"`` uses the paper's form instead: gamma linear in r = L_train / lambda_i
            between alpha = beta_slow and beta = beta_fast. Temperature: ``attention_factor =
            0.1 ln(s) + 1`` (= sqrt(1/t)), applied to cos and sin, so the logits grow by its square.
- "llama3"  Llama 3.1: wavelengths < L_train / high_freq_factor kept, > L_train / low_freq_factor
            divided by s, smooth blend in between (defaults 1 and 4).
The source text's section 4.2 states YaRN backwards (multiplying high frequencies by s) and invents a
per-dimension temperature; see REFERENCE section 3.
"""
from __future__ import annotations

import math

import numpy as np

from .rope import rope_inv_freq

__all__ = ["scaled_rope", "METHODS", "yarn_ramp_range"]

METHODS = ("linear", "ntk", "dynamic", "yarn", "llama3")


def _ntk_base(base: float, s: float, d: int) -> float:
    return base * s ** (d / (d - 2))                                   # base' = base s^(d/(d-2))


def yarn_ramp_range(head_dim: int, original_max_position: int, base: float = 10000.0,
                    beta_fast: float = 32.0, beta_slow: float = 1.0,
                    truncate: bool = True) -> tuple[float, float]:
    """Pair indices (low, high) where YaRN's ramp runs (Hugging Face convention).

    ``i(n) = d ln(L_train / (2 pi n)) / (2 ln base)`` is the pair that turns n times within L_train;
    low = floor(i(beta_fast)), high = ceil(i(beta_slow)), clipped to [0, d - 1].
    """
    def pair_index(n_turns: float) -> float:
        return head_dim * math.log(original_max_position / (n_turns * 2 * math.pi)) / (2 * math.log(base))

    low, high = pair_index(beta_fast), pair_index(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, head_dim - 1)


def _yarn(head_dim: int, s: float, L_train: int, base: float, beta_fast: float = 32.0,
          beta_slow: float = 1.0, truncate: bool = True, ramp: str = "index",
          attention_factor: float | None = None) -> tuple[np.ndarray, float]:
    theta = rope_inv_freq(head_dim, base)
    if ramp == "index":
        low, high = yarn_ramp_range(head_dim, L_train, base, beta_fast, beta_slow, truncate)
        if high == low:
            high += 0.001                                     # avoid a zero-width ramp
        # 0 for i <= low (fast pairs), 1 for i >= high (slow pairs): the interpolation weight
        interp = np.clip((np.arange(theta.size) - low) / (high - low), 0.0, 1.0)
        gamma = 1.0 - interp
    elif ramp == "ratio":
        r = L_train * theta / (2 * math.pi)                   # r_i = L_train / lambda_i
        gamma = np.clip((r - beta_slow) / (beta_fast - beta_slow), 0.0, 1.0)
    else:
        raise ValueError(f"ramp must be 'index' or 'ratio', got {ramp!r}")
    inv = (1.0 - gamma) * theta / s + gamma * theta          # theta' = (1-g) theta/s + g theta
    if attention_factor is None:
        attention_factor = 0.1 * math.log(s) + 1.0 if s > 1 else 1.0   # sqrt(1/t) = 0.1 ln s + 1
    return inv, float(attention_factor)


def _llama3(head_dim: int, s: float, L_train: int, base: float, low_freq_factor: float = 1.0,
            high_freq_factor: float = 4.0) -> tuple[np.ndarray, float]:
    if not high_freq_factor > low_freq_factor > 0:
        raise ValueError(f"need high_freq_factor > low_freq_factor > 0, got {high_freq_factor}, "
                         f"{low_freq_factor}")
    theta = rope_inv_freq(head_dim, base)
    wavelen = 2 * math.pi / theta
    low_wavelen, high_wavelen = L_train / low_freq_factor, L_train / high_freq_factor
    # blend weight: 1 at wavelen = high_wavelen (keep), 0 at wavelen = low_wavelen (divide by s)
    w = (L_train / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1.0 - w) * theta / s + w * theta
    inv = np.where(wavelen < high_wavelen, theta,
                   np.where(wavelen > low_wavelen, theta / s, blended))
    return inv, 1.0


def scaled_rope(head_dim: int, method: str, factor: float, original_max_position: int,
                base: float = 10000.0, seq_len: int | None = None, **kw) -> tuple[np.ndarray, float]:
    """Frequencies for a RoPE model trained on ``original_max_position`` tokens, run ``factor`` x longer.

    Returns ``(inv_freq: (head_dim // 2,) float64, attention_factor: float)``. ``seq_len`` is used by
    "dynamic" only. Extra keywords: yarn -> beta_fast, beta_slow, truncate, ramp, attention_factor;
    llama3 -> low_freq_factor, high_freq_factor.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not factor >= 1.0:
        raise ValueError(f"factor must be >= 1 (L_new / L_train), got {factor}")
    if isinstance(original_max_position, bool) or not isinstance(original_max_position, (int, np.integer)) \
            or original_max_position < 1:
        raise ValueError(f"original_max_position must be an int >= 1, got {original_max_position!r}")
    allowed = {"yarn": {"beta_fast", "beta_slow", "truncate", "ramp", "attention_factor"},
               "llama3": {"low_freq_factor", "high_freq_factor"}}.get(method, set())
    unknown = set(kw) - allowed
    if unknown:
        raise TypeError(f"scaled_rope(method={method!r}) got unexpected keywords {sorted(unknown)}")
    s, L_train, d = float(factor), int(original_max_position), head_dim
    if method == "linear":
        return rope_inv_freq(d, base) / s, 1.0                        # theta_i / s
    if method == "ntk":
        return rope_inv_freq(d, _ntk_base(base, s, d)), 1.0
    if method == "dynamic":
        L = L_train if seq_len is None else max(int(seq_len), L_train)
        dyn_base = base * ((s * L / L_train) - (s - 1)) ** (d / (d - 2))
        return rope_inv_freq(d, dyn_base), 1.0
    if method == "yarn":
        return _yarn(d, s, L_train, base, **kw)
    return _llama3(d, s, L_train, base, **kw)
