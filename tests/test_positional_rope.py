"""RoPE against the complex-number rotation z * exp(1j * m * theta), both layouts, partial rotary."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyattn as ta
from tinyattn import positional as P


def complex_rope_interleaved(x, pos, theta):
    """Reference: pairs (2i, 2i+1) as complex numbers, multiplied by exp(1j m theta_i)."""
    r = 2 * len(theta)
    z = x[..., 0:r:2] + 1j * x[..., 1:r:2]
    z = z * np.exp(1j * np.asarray(pos, float)[:, None] * theta[None, :])
    out = np.array(x, dtype=np.float64)
    out[..., 0:r:2], out[..., 1:r:2] = z.real, z.imag
    return out


def complex_rope_half(x, pos, theta):
    """Reference: pairs (i, i + P) as complex numbers (GPT-NeoX / Llama layout)."""
    Pn = len(theta)
    z = x[..., :Pn] + 1j * x[..., Pn:2 * Pn]
    z = z * np.exp(1j * np.asarray(pos, float)[:, None] * theta[None, :])
    out = np.array(x, dtype=np.float64)
    out[..., :Pn], out[..., Pn:2 * Pn] = z.real, z.imag
    return out


def test_inv_freq_closed_form():
    th = P.rope_inv_freq(8)
    np.testing.assert_allclose(th, [1.0, 10000 ** -0.25, 10000 ** -0.5, 10000 ** -0.75], rtol=1e-14)
    assert P.rope_inv_freq(7).shape == (3,)                     # odd: (d - 1) / 2 pairs
    np.testing.assert_allclose(P.rope_inv_freq(7), 10000.0 ** (-np.array([0, 2, 4]) / 7))
    np.testing.assert_allclose(P.rope_inv_freq(4, base=500.0), [1.0, 500 ** -0.5])


@pytest.mark.parametrize("layout,ref", [("interleaved", complex_rope_interleaved),
                                        ("half", complex_rope_half)])
def test_matches_complex_reference(layout, ref):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 11, 16))
    pos = rng.integers(0, 5000, size=11)
    th = P.rope_inv_freq(16)
    np.testing.assert_allclose(P.apply_rope(x, pos, th, layout=layout), ref(x, pos, th),
                               atol=1e-12)


def test_layouts_related_by_permutation():
    rng = np.random.default_rng(1)
    d = 12
    x = rng.standard_normal((4, 9, d))
    pos, th = np.arange(3, 12), P.rope_inv_freq(d)
    perm = P.half_permutation(d)
    np.testing.assert_array_equal(perm, [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11])
    inter = P.apply_rope(x, pos, th, layout="interleaved")
    half = P.apply_rope(x[..., perm], pos, th, layout="half")
    np.testing.assert_allclose(inter[..., perm], half, atol=1e-12)


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_scores_depend_only_on_offset(layout):
    rng = np.random.default_rng(2)
    d = 32
    q, k = rng.standard_normal((2, d))
    th = P.rope_inv_freq(d)
    zq = q[0::2] + 1j * q[1::2] if layout == "interleaved" else q[:16] + 1j * q[16:]
    zk = k[0::2] + 1j * k[1::2] if layout == "interleaved" else k[:16] + 1j * k[16:]
    for m, n in [(0, 0), (5, 2), (2, 5), (1000, 997), (40, 90)]:
        rq = P.apply_rope(q[None], [m], th, layout=layout)[0]
        rk = P.apply_rope(k[None], [n], th, layout=layout)[0]
        closed = np.real(np.sum(zq * np.conj(zk) * np.exp(1j * (m - n) * th)))
        assert rq @ rk == pytest.approx(closed, abs=1e-10)


@settings(deadline=None, max_examples=40)
@given(m=st.integers(0, 10**5), n=st.integers(0, 10**5), t=st.integers(-10**4, 10**4))
def test_shift_invariance_property(m, n, t):
    if m + t < 0 or n + t < 0:
        return
    rng = np.random.default_rng(m ^ n)
    q, k = rng.standard_normal((2, 1, 10))
    th = P.rope_inv_freq(10)
    s1 = P.apply_rope(q, [m], th)[0] @ P.apply_rope(k, [n], th)[0]
    s2 = P.apply_rope(q, [m + t], th)[0] @ P.apply_rope(k, [n + t], th)[0]
    assert s1 == pytest.approx(s2, abs=1e-8)


def test_rotation_preserves_norm_and_matrix_form():
    th = P.rope_inv_freq(6)
    for layout in P.LAYOUTS:
        R3, R7 = P.rope_matrix(3, th, 6, layout), P.rope_matrix(7, th, 6, layout)
        np.testing.assert_allclose(R3.T @ R3, np.eye(6), atol=1e-12)
        np.testing.assert_allclose(R3.T @ R7, P.rope_matrix(4, th, 6, layout), atol=1e-12)
        x = np.random.default_rng(3).standard_normal((1, 6))
        np.testing.assert_allclose(P.apply_rope(x, [3], th, layout)[0], R3 @ x[0], atol=1e-12)
    # interleaved block 0 at m = 3: [[cos 3, -sin 3], [sin 3, cos 3]] (theta_0 = 1)
    R = P.rope_matrix(3, th, 6, "interleaved")
    np.testing.assert_allclose(R[:2, :2], [[np.cos(3), -np.sin(3)], [np.sin(3), np.cos(3)]],
                               atol=1e-15)


@pytest.mark.parametrize("layout,ref", [("interleaved", complex_rope_interleaved),
                                        ("half", complex_rope_half)])
def test_partial_rotary_and_odd_dims(layout, ref):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 7))                             # odd head dim
    th = P.rope_inv_freq(7)                                     # 3 pairs: dims 0..5 rotate
    out = P.apply_rope(x, np.arange(5), th, layout=layout)
    np.testing.assert_allclose(out, ref(x, np.arange(5), th), atol=1e-12)
    np.testing.assert_array_equal(out[:, 6], x[:, 6])
    x = rng.standard_normal((5, 16))                            # rotary_pct = 0.5
    th = P.rope_inv_freq(8)
    out = P.apply_rope(x, np.arange(5), th, layout=layout)
    np.testing.assert_allclose(out, ref(x, np.arange(5), th), atol=1e-12)
    np.testing.assert_array_equal(out[:, 8:], x[:, 8:])


def test_attention_factor_scales_rotated_part_and_dtype_kept():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 8)).astype(np.float32)
    th = P.rope_inv_freq(8)
    a, b = P.apply_rope(x, np.arange(3), th), P.apply_rope(x, np.arange(3), th, attention_factor=1.5)
    assert a.dtype == np.float32
    np.testing.assert_allclose(b, 1.5 * a, rtol=1e-6)
    h = P.apply_rope(x.astype(np.float16), np.arange(3) * 1000, th)
    assert h.dtype == np.float16                                 # computed in float32, cast back
    x16 = x.astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(h, complex_rope_half(x16, np.arange(3) * 1000, th), atol=4e-3)


def test_float_positions_and_batched_positions():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4, 6))
    th = P.rope_inv_freq(6)
    pos = np.array([[0.5, 1.5, 2.5, 3.5], [10, 11, 12, 13]])    # (B, L): per-sequence offsets
    out = P.apply_rope(x, pos, th, layout="interleaved")
    for b in range(2):
        np.testing.assert_allclose(out[b], complex_rope_interleaved(x[b], pos[b], th), atol=1e-12)


def test_errors_name_the_argument():
    x = np.zeros((4, 8))
    th = P.rope_inv_freq(8)
    with pytest.raises(ValueError, match="layout"):
        P.apply_rope(x, np.arange(4), th, layout="rotate_half")
    with pytest.raises(ValueError, match="positions"):
        P.apply_rope(x, np.arange(5), th)
    with pytest.raises(ValueError, match="inv_freq"):
        P.apply_rope(x, np.arange(4), P.rope_inv_freq(10))
    with pytest.raises(TypeError, match="floating"):
        P.apply_rope(np.zeros((4, 8), int), np.arange(4), th)
    with pytest.raises(ValueError, match="head_dim"):
        P.rope_inv_freq(1)


@pytest.mark.parametrize("layout", ["half", "interleaved"])
@pytest.mark.parametrize("d,n_pairs", [(8, 4), (7, 3), (10, 2)])
def test_tensor_path_gradcheck_and_single_node(layout, d, n_pairs):
    rng = np.random.default_rng(7)
    x = ta.Tensor(rng.standard_normal((2, 5, d)), requires_grad=True)
    th = P.rope_inv_freq(2 * n_pairs) if d % 2 == 0 else P.rope_inv_freq(d)
    pos = np.array([0, 3, 4, 9, 100])
    out = P.apply_rope(x, pos, th, layout=layout, attention_factor=1.2)
    assert isinstance(out, ta.Tensor) and out.shape == x.shape
    np.testing.assert_allclose(out.data, P.apply_rope(x.data, pos, th, layout, 1.2), atol=1e-14)
    assert len(out._parents) == 1 and out._parents[0] is x        # one node, straight onto x
    ta.gradcheck(lambda t: P.apply_rope(t, pos, th, layout=layout, attention_factor=1.2), x)


def test_tensor_path_no_grad_mode():
    x = ta.Tensor(np.ones((3, 4)), requires_grad=True)
    with ta.no_grad():
        out = P.apply_rope(x, np.arange(3), P.rope_inv_freq(4))
    assert not out.requires_grad


def test_decay_bound_against_double_loop():
    d = 16
    th = [10000.0 ** (-2 * i / d) for i in range(d // 2)]
    for D in [0, 1, 7, 50, 333]:
        total = 0.0
        for j in range(1, d // 2 + 1):
            total += abs(sum(np.exp(1j * D * th[k]) for k in range(j)))
        assert P.rope_decay_bound([D], d)[0] == pytest.approx(total / (d // 2), rel=1e-12)
    assert P.rope_decay_bound([0], 128)[0] == pytest.approx((64 + 1) / 2)   # mean of 1..64
    curve = P.rope_decay_bound(np.arange(0, 2000), 128)
    # decays on average (with ripples): far distances well below near ones
    assert curve[500:].mean() < 0.2 * curve[0] and curve[200:400].mean() < 0.5 * curve[1:50].mean()
