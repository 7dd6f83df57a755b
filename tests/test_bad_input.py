"""Bad input on the public API of tinyattn.functional, optim, train and gpu (issue 9 items 14-15):
each case either computes the right answer (checked against an independent float64 formula or
finite differences) or raises a clear error naming the argument."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import functional as F
from tinyattn.functional import attention as A


def _softmax64(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _no_warnings():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error")
    return ctx


# ------------------------------------------------------------------ integer / bool inputs
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_softmax_family_on_int_and_bool_logits_is_computed_in_float32(dtype):
    x = np.array([[1, 2, 3], [0, 1, 0]]).astype(dtype)
    ref = _softmax64(x.astype(np.float64))
    p = F.softmax(x).data
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, ref, rtol=1e-6)
    np.testing.assert_allclose(F.log_softmax(ta.Tensor(x)).data, np.log(ref), rtol=1e-6)
    t = np.array([2, 0])
    ce = np.mean([-np.log(ref[0, 2]), -np.log(ref[1, 0])])
    assert float(F.cross_entropy(x, t).data) == pytest.approx(ce, rel=1e-6)


def test_other_activations_and_norms_accept_int_input():
    x = np.array([[-2, 0, 1, 3]])
    xf = x.astype(np.float64)
    c = np.sqrt(2 / np.pi)
    np.testing.assert_allclose(F.gelu(x).data, 0.5 * xf * (1 + np.tanh(c * (xf + 0.044715 * xf**3))), rtol=1e-6)
    np.testing.assert_allclose(F.silu(x).data, xf / (1 + np.exp(-xf)), rtol=1e-6)
    ln = (xf - xf.mean()) / np.sqrt(xf.var() + 1e-5)
    np.testing.assert_allclose(F.layer_norm(x).data, ln, rtol=1e-5)
    np.testing.assert_allclose(F.rms_norm(x).data, xf / np.sqrt((xf**2).mean() + 1e-6), rtol=1e-5)


def test_complex_or_object_input_raises_type_error():
    with pytest.raises(TypeError, match="softmax: x must be a real floating"):
        F.softmax(np.array([1 + 2j, 3j]))
    with pytest.raises(TypeError, match="cross_entropy: logits"):
        F.cross_entropy(np.array([["a", "b"]]), np.array([0]))


def test_dropout_of_int_input_scales_survivors_by_a_non_integer():
    x = np.ones(2000, dtype=np.int64)
    out = F.dropout(x, 0.3, rng=np.random.default_rng(0)).data
    assert out.dtype == np.float32
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 1 / 0.7, rtol=1e-6)              # was truncated to 1
    assert 0.25 < 1 - kept.size / x.size < 0.35


def test_masked_fill_rejects_a_value_the_dtype_cannot_hold():
    x = np.arange(4)
    m = np.array([True, False, True, False])
    with pytest.raises(TypeError, match="cannot be stored exactly"):
        F.masked_fill(x, m, -np.inf)                                  # int(-inf): OverflowError before
    with pytest.raises(TypeError, match="cannot be stored exactly"):
        F.masked_fill(x, m, 0.5)                                      # int(0.5) = 0 silently before
    with pytest.raises(TypeError, match="real number"):
        F.masked_fill(x.astype(float), m, "x")
    np.testing.assert_array_equal(F.masked_fill(x, m, -7).data, [-7, 1, -7, 3])
    np.testing.assert_array_equal(F.masked_fill(x.astype(np.float32), m, -np.inf).data, [-np.inf, 1, -np.inf, 3])


# ------------------------------------------------------------------ float16
def _ln64(x, eps=1e-5):
    x = x.astype(np.float64)
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)


def _rms64(x, eps=1e-6):
    x = x.astype(np.float64)
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)


def _fd_grad(f, x, g, h=1e-4):
    """Central finite differences of sum(f(x) * g) in float64."""
    x = x.astype(np.float64)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h * max(1.0, abs(x[i]))
        xm[i] -= h * max(1.0, abs(x[i]))
        out[i] = ((f(xp) * g).sum() - (f(xm) * g).sum()) / (xp[i] - xm[i])
    return out


@pytest.mark.parametrize("norm,ref", [(F.layer_norm, _ln64), (F.rms_norm, _rms64)])
def test_fp16_norms_with_large_values_match_float64(norm, ref):
    rng = np.random.default_rng(0)
    x16 = (rng.standard_normal((3, 8)) * np.array([[300.0], [3000.0], [30000.0]])).astype(np.float16)
    x = ta.Tensor(x16, requires_grad=True)
    y = norm(x)
    assert y.dtype == np.float16
    want = ref(x16)
    np.testing.assert_allclose(y.data.astype(np.float64), want, atol=4e-3, rtol=4e-3)   # was all 0
    g = rng.standard_normal((3, 8))
    y.backward(g.astype(np.float16))
    assert x.grad.dtype == np.float16 and np.isfinite(x.grad).all()
    fd = _fd_grad(ref, x16, g)
    scale = np.abs(fd).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(x.grad.astype(np.float64) / scale, fd / scale, atol=1e-2)


def test_fp16_norms_keep_a_weight_and_bias():
    x16 = np.array([[-400.0, 100.0, 300.0, 500.0]], dtype=np.float16)
    w, b = np.array([1.0, 2.0, 0.5, -1.0], np.float16), np.array([0.0, 1.0, -1.0, 2.0], np.float16)
    np.testing.assert_allclose(F.layer_norm(x16, w, b).data.astype(np.float64), _ln64(x16) * w + b, atol=1e-2)
    np.testing.assert_allclose(F.rms_norm(x16, w).data.astype(np.float64), _rms64(x16) * w, atol=1e-2)


def test_fp16_gelu_gradient_is_finite_for_large_inputs():
    x = ta.Tensor(np.array([-300.0, -5.0, 0.5, 300.0], np.float16), requires_grad=True)
    y = F.gelu(x)
    y.sum().backward()
    c, xf = np.sqrt(2 / np.pi), x.data.astype(np.float64)
    t = np.tanh(c * (xf + 0.044715 * xf**3))
    dref = 0.5 * (1 + t) + 0.5 * xf * (1 - t**2) * c * (1 + 3 * 0.044715 * xf**2)
    np.testing.assert_allclose(x.grad.astype(np.float64), dref, atol=2e-3)     # was NaN at +-300
    np.testing.assert_allclose(y.data.astype(np.float64), 0.5 * xf * (1 + t), rtol=2e-3, atol=1e-3)


# ------------------------------------------------------------------ size 0
def test_softmax_and_log_softmax_over_an_empty_axis_give_empty_results():
    for shape, axis in (((2, 0), -1), ((0, 3), -1), ((3, 0, 2), 1)):
        x = ta.Tensor(np.zeros(shape, np.float32), requires_grad=True)
        for fn in (F.softmax, F.log_softmax):
            y = fn(x, axis=axis)
            assert y.shape == shape and y.dtype == np.float32
            y.sum().backward()
            assert x.grad.shape == shape
            x.grad = None


def test_cross_entropy_with_zero_classes_or_zero_rows():
    with pytest.raises(ValueError, match="C = 0 classes"):
        F.cross_entropy(np.zeros((2, 0)), np.array([0, 1]))
    assert float(F.cross_entropy(np.zeros((2, 0)), np.array([-100, -100])).data) == 0.0
    z = ta.Tensor(np.zeros((0, 5), np.float32), requires_grad=True)
    loss = F.cross_entropy(z, np.zeros(0, np.int64))
    assert float(loss.data) == 0.0
    loss.backward()
    assert z.grad.shape == (0, 5)


@pytest.mark.parametrize("norm", [F.layer_norm, F.rms_norm])
def test_norms_over_zero_features_are_empty_and_silent(norm):
    x = ta.Tensor(np.zeros((3, 0)), requires_grad=True)
    ctx = _no_warnings()
    try:
        y = norm(x)
        y.sum().backward()
    finally:
        ctx.__exit__(None, None, None)
    assert y.shape == (3, 0) and x.grad.shape == (3, 0)


def test_sdpa_size_zero_cases():
    rng = np.random.default_rng(1)
    q, k, v = np.zeros((1, 2, 3, 0)), np.zeros((1, 2, 4, 0)), rng.standard_normal((1, 2, 4, 5))
    with pytest.raises(ValueError, match="d = 0"):
        F.scaled_dot_product_attention(q, k, v)                        # was ZeroDivisionError
    out = F.scaled_dot_product_attention(q, k, v, scale=1.0).data    # all scores 0: uniform weights
    np.testing.assert_allclose(out, np.broadcast_to(v.mean(axis=-2, keepdims=True), out.shape))
    with pytest.raises(ValueError, match="Hkv >= 1"):
        F.scaled_dot_product_attention(np.zeros((1, 0, 3, 4)), np.zeros((1, 0, 3, 4)), np.zeros((1, 0, 3, 4)))
    empty_q = F.scaled_dot_product_attention(np.zeros((1, 2, 0, 4)), np.ones((1, 2, 3, 4)), np.ones((1, 2, 3, 4)))
    assert empty_q.shape == (1, 2, 0, 4)
    no_keys = F.scaled_dot_product_attention(np.ones((1, 2, 3, 4)), np.zeros((1, 2, 0, 4)), np.zeros((1, 2, 0, 4)))
    np.testing.assert_array_equal(no_keys.data, np.zeros((1, 2, 3, 4)))


# ------------------------------------------------------------------ non-finite values
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_posinf_logits_raise_and_nan_stays_in_its_row(fn):
    with pytest.raises(ValueError, match=r"\+inf"):
        fn(np.array([[np.inf, 1.0], [0.0, 1.0]]))                       # was [nan, 0]
    x = np.array([[np.nan, 1.0], [0.0, 1.0]])
    y = fn(x).data
    assert np.isnan(y[0]).all()
    want = _softmax64(x[1:])
    np.testing.assert_allclose(y[1:], want if fn is F.softmax else np.log(want), rtol=1e-12)


def test_cross_entropy_non_finite_rows():
    with pytest.raises(ValueError, match=r"\+inf"):
        F.cross_entropy(np.array([[np.inf, 0.0]]), np.array([1]))
    with pytest.raises(ValueError, match="every logit = -inf"):
        F.cross_entropy(np.array([[0.0, 1.0], [-np.inf, -np.inf]]), np.array([0, 1]))
    # an ignored row may be fully masked (-inf) or even +inf/NaN: loss and gradient ignore it
    z = np.array([[0.5, 1.5, -1.0], [-np.inf, -np.inf, -np.inf], [np.inf, np.nan, 0.0]])
    zt = ta.Tensor(z, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        loss = F.cross_entropy(zt, np.array([1, -100, -100]))
        loss.backward()
    p = _softmax64(z[:1])
    assert float(loss.data) == pytest.approx(-np.log(p[0, 1]), rel=1e-12)
    want = np.zeros_like(z)
    want[0] = p[0] - np.eye(3)[1]
    np.testing.assert_allclose(zt.grad, want, atol=1e-12)


@pytest.mark.parametrize("norm", [F.layer_norm, F.rms_norm])
@pytest.mark.parametrize("eps", [0.0, -1e-5, float("nan"), float("inf")])
def test_norm_eps_must_be_positive(norm, eps):
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        norm(np.ones((2, 3)), eps=eps)                                 # eps = 0: NaN on constant rows


# ------------------------------------------------------------------ dense SDPA memory
def test_dense_sdpa_refuses_more_than_ram_up_front_and_suggests_flash():
    ram = A._physical_memory()
    n = 1 << 20                                                        # P: 2^40 float32 = 4 TiB
    if ram is None or ram >= n * n * 4:
        pytest.skip("needs a machine with less than 4 TiB of RAM")
    q = np.zeros((1, 1, n, 1), np.float32)                             # 4 MiB; P is never allocated
    with pytest.raises(MemoryError, match=r"backend='flash'.*GiB of RAM") as info:
        F.scaled_dot_product_attention(q, q, q)
    assert f"(1, 1, {n}, {n})" in str(info.value) and "4.1e+03 GiB" in str(info.value)


def test_dense_sdpa_memory_error_during_compute_gets_the_hint(monkeypatch):
    def fail(*a, **k):
        raise MemoryError("Unable to allocate")
    monkeypatch.setattr(A, "_probs", fail)
    q = np.zeros((2, 3, 5, 4), np.float32)
    with pytest.raises(MemoryError, match=r"shape \(2, 3, 5, 5\).*backend='flash'"):
        F.scaled_dot_product_attention(q, q, q)


# ------------------------------------------------------------------ GPU install hints
def test_missing_cupy_names_the_pip_extra():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    q = np.zeros((1, 4, 64), np.float16)
    for fn in (ta.gpu.cupy_flash_attention, ta.gpu.naive_attention_gpu):
        with pytest.raises(ImportError, match=r"\.\[gpu\]'.*\.\[gpu-cuda13\]'") as info:
            fn(q, q, q)
        assert "NUMBA_ENABLE_CUDASIM=1" in str(info.value)


def test_numba_without_gpu_or_simulator_says_how_to_enable_the_simulator():
    code = ("import numpy as np, tinyattn as ta\n"
            "from numba import cuda\n"
            "if cuda.is_available(): print('HAS_GPU'); raise SystemExit\n"
            "q = np.zeros((1, 4, 32), np.float32)\n"
            "try:\n    ta.gpu.numba_flash_attention(q, q, q)\n"
            "except RuntimeError as e:\n    print('MSG', e)\n")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if "HAS_GPU" in res.stdout:
        pytest.skip("a CUDA GPU is available")
    assert "MSG" in res.stdout and "NUMBA_ENABLE_CUDASIM=1" in res.stdout, res.stdout + res.stderr


def test_simulator_flag_set_after_numba_import_is_reported(monkeypatch):
    from numba import config
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    monkeypatch.setattr(config, "ENABLE_CUDASIM", 0)
    with pytest.raises(RuntimeError, match="set after numba was imported"):
        ta.gpu.numba_flash_attention(np.zeros((1, 4, 32), np.float32), np.zeros((1, 4, 32), np.float32),
                                     np.zeros((1, 4, 32), np.float32))


def test_embedding_rejects_negative_indices():
    W = np.arange(12.0).reshape(4, 3)
    with pytest.raises(ValueError, match=r"\[0, 4\).*got range \[-1, 2\]"):
        F.embedding(W, np.array([2, -1]))                             # picked row 3 silently before
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        F.embedding(W, np.array([4]))
    np.testing.assert_array_equal(F.embedding(W, np.array([[3, 0]])).data, W[[[3, 0]]])


def test_module_load_of_garbage_is_a_clear_error(tmp_path):
    import tinyattn.nn as nn
    lin = nn.Linear(3, 2, rng=np.random.default_rng(0))
    for name, data in (("random.npz", bytes(range(256)) * 4), ("empty.npz", b"")):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ValueError, match="not a saved tinyattn module") as e:
            lin.load(str(p))
        assert "allow_pickle" not in str(e.value)
    good = tmp_path / "good.npz"
    lin.save(str(good))
    raw = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        lin.load(str(tmp_path / "cut.npz"))
    lin2 = nn.Linear(3, 2, rng=np.random.default_rng(1)).load(str(good))
    np.testing.assert_array_equal(lin2.weight.data, lin.weight.data)
