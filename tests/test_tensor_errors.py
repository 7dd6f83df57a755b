"""Bad input raises a clear ValueError/TypeError naming the shapes or dtypes involved."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn import functional as F
from tinyattn.tensor import concatenate, split, stack, where


def T(*shape, dtype=np.float64, grad=True):
    return ta.Tensor(np.ones(shape, dtype=dtype), requires_grad=grad)


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\).*3.*4"):
        T(2, 3) @ T(4, 5)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\) and \(5, 4, 2\)"):
        T(2, 3, 4) @ T(5, 4, 2)          # batch dims 2 vs 5 do not broadcast
    with pytest.raises(ValueError, match="at least 1 dimension"):
        T() @ T(3)


@pytest.mark.parametrize("index", [np.array([0.0, 1.0]), [0.5, 1.0], 1.0,
                                   (slice(None), np.array([1.5]))])
def test_float_indices_raise_type_error(index):
    with pytest.raises(TypeError, match="shape \\(3, 4\\)"):
        T(3, 4)[index]


def test_out_of_range_index_names_shape():
    with pytest.raises(IndexError, match=r"\(3, 4\)"):
        T(3, 4)[np.array([5])]


def test_non_scalar_backward_without_grad_names_shape():
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        (T(2, 3) * 2).backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\), expected \(2, 3\)"):
        (T(2, 3) * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        T(2, grad=False).sum().backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="int64"):
        ta.Tensor(np.arange(3), requires_grad=True)


def test_shape_op_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        T(2, 3).reshape(4)
    with pytest.raises(ValueError, match="permutation"):
        T(2, 3).transpose(0, 0)
    with pytest.raises(ValueError, match=r"axis 2 is out of range"):
        T(2, 3).sum(axis=2)
    with pytest.raises(ValueError, match=r"\[\(2, 3\), \(2, 4\)\]"):
        stack([T(2, 3), T(2, 4)])
    with pytest.raises(ValueError, match=r"\[\(2, 3\), \(3, 4\)\]"):
        concatenate([T(2, 3), T(3, 4)], axis=1)
    with pytest.raises(ValueError, match=r"size 3.*2 equal"):
        split(T(3, 4), 2, axis=0)
    with pytest.raises(TypeError, match="bool"):
        where(np.ones(3), T(3), T(3))


def test_functional_input_errors():
    logits = T(4, 5)
    with pytest.raises(TypeError, match="integers.*float64"):
        F.cross_entropy(logits, np.zeros(4))
    with pytest.raises(ValueError, match=r"\(3,\).*\(4, 5\)"):
        F.cross_entropy(logits, np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"target 7 is outside \[0, 5\)"):
        F.cross_entropy(logits, np.array([0, 1, 7, 2]))
    with pytest.raises(ValueError, match=r"\(5,\).*\(4,\)"):
        F.layer_norm(logits, weight=np.ones(4))
    with pytest.raises(TypeError, match="bool"):
        F.masked_fill(logits, np.zeros((4, 5)), 0.0)
    with pytest.raises(ValueError, match=r"\(3, 5\).*\(4, 5\)"):
        F.masked_fill(logits, np.zeros((3, 5), dtype=bool), 0.0)
    with pytest.raises(ValueError, match="rng"):
        F.dropout(logits, 0.5, rng=None, training=True)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        F.dropout(logits, 1.5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(4, 3\)"):
        F.linear(logits, np.ones((4, 3)))
    with pytest.raises(TypeError, match="integers"):
        F.embedding(T(4, 5), np.array([0.0, 1.0]))


def test_scalar_conversions_and_formatting():
    t = ta.Tensor(np.array(1.23456, dtype=np.float32))
    assert f"{t:.3f}" == "1.235" and float(t) == pytest.approx(1.23456) and int(t) == 1
    with pytest.raises(ValueError):
        bool(ta.Tensor(np.ones(3)))                    # ambiguous, as for ndarrays
