# GENERATED from solutions/ch05_length_extrapolation.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
"""Chapter 05 exercises: stretching RoPE past its training length, in plain NumPy.

Exercise 05.1  pi_inv_freq            position interpolation (PI): every frequency divided by s
Exercise 05.2  ntk_inv_freq           NTK-aware scaling: a larger base instead of smaller positions
Exercise 05.3  yarn_ramp              YaRN's ramp over the ratio r_i = L_train / wavelength_i
Exercise 05.4  yarn_inv_freq          YaRN's frequencies and its attention factor
Exercise 05.5  dynamic_ntk_inv_freq   one step of dynamic NTK: frequencies for the current length

Notation: head_dim d (even), pairs i = 0..d/2-1, theta_i = base^(-2i/d) (pair 0 is the fastest),
wavelength lambda_i = 2 pi / theta_i, scale factor s = L_new / L_train >= 1.
Use NumPy only (no tinyattn): the graded tests compare your functions with the library.
"""
from __future__ import annotations

import math

import numpy as np


def pi_inv_freq(head_dim: int, factor: float, base: float = 10000.0) -> np.ndarray:
    """Position interpolation (Chen et al. 2023): return (head_dim // 2,) float64 frequencies such
    that the angle of position m is the plain-RoPE angle of position m / s (s = factor).
    """
    # HINT: squeezing positions by s is the same as slowing every pair by s
    raise NotImplementedError("Exercise 05.1: pi_inv_freq")


def ntk_inv_freq(head_dim: int, factor: float, base: float = 10000.0) -> np.ndarray:
    """NTK-aware scaling: return (head_dim // 2,) float64 frequencies theta_i' = base'^(-2i/d) for
    the one new base base' chosen so that the slowest pair (i = d/2 - 1) is slowed by exactly s
    while the fastest pair (i = 0) keeps theta_0 = 1.
    """
    # HINT: solve base'^(-(d-2)/d) = base^(-(d-2)/d) / s for base'
    raise NotImplementedError("Exercise 05.2: ntk_inv_freq")


def yarn_ramp(head_dim: int, original_max_position: int, base: float = 10000.0,
              alpha: float = 1.0, beta: float = 32.0) -> np.ndarray:
    """YaRN's ramp (Peng et al. 2023, paper form): return gamma, (head_dim // 2,) float64 in [0, 1].

    r_i = L_train / lambda_i counts the full turns pair i makes within the training length.
    gamma_i = 0 where r_i < alpha, 1 where r_i > beta, linear in r_i in between.
    (gamma = 1 will mean "keep this pair", gamma = 0 "interpolate it".)
    """
    # HINT: lambda_i = 2 pi / theta_i
    raise NotImplementedError("Exercise 05.3: yarn_ramp")


def yarn_inv_freq(head_dim: int, factor: float, original_max_position: int,
                  base: float = 10000.0, alpha: float = 1.0,
                  beta: float = 32.0) -> tuple[np.ndarray, float]:
    """YaRN: return (inv_freq (head_dim // 2,) float64, attention_factor float).

    Pairs that turn many times within L_train (gamma = 1, use yarn_ramp) keep theta_i; pairs that
    never complete a turn (gamma = 0) are interpolated like PI; in between, blend linearly with
    weight gamma. attention_factor is YaRN's sqrt(1/t) = 0.1 ln(s) + 1 (it multiplies cos and sin).
    """
    # HINT: theta_i' = (1 - gamma_i) * (interpolated theta_i) + gamma_i * theta_i
    raise NotImplementedError("Exercise 05.4: yarn_inv_freq")


def dynamic_ntk_inv_freq(head_dim: int, factor: float, original_max_position: int, seq_len: int,
                         base: float = 10000.0) -> np.ndarray:
    """Dynamic NTK (Hugging Face "dynamic"): the frequencies used for a sequence of seq_len tokens.

    Up to the training length the model runs plain RoPE. Beyond it the base grows as
        base' = base * ((s * L / L_train) - (s - 1)) ^ (d / (d - 2)),   L = the current length,
    and theta_i' = base'^(-2i/d). Returns (head_dim // 2,) float64.
    """
    # HINT: clamp the current length so that short sequences keep the original base
    raise NotImplementedError("Exercise 05.5: dynamic_ntk_inv_freq")
