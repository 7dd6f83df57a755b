"""Chapter 03 plotting helpers: they draw what they are given and reject wrong shapes."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tinyattn import positional as P  # noqa: E402
from tinyattn.viz import positional as vp  # noqa: E402


def test_plot_heads_draws_each_head_with_its_data():
    bias = P.alibi_bias(3, 5, 5)
    for shared in (True, False):
        fig = vp.plot_heads(bias, shared_scale=shared)
        images = [ax.images[0] for ax in fig.axes if ax.images]
        assert len(images) == 3
        for h, im in enumerate(images):
            np.testing.assert_array_equal(im.get_array(), bias[h])
        plt.close(fig)
    with pytest.raises(ValueError, match=r"\(H, Lq, Lk\)"):
        vp.plot_heads(bias[0])


def test_plot_encoding_and_curves():
    pe = P.sinusoidal(10, 8)
    ax = vp.plot_encoding(pe)
    np.testing.assert_array_equal(ax.images[0].get_array(), pe)
    ax = vp.plot_curves(np.arange(4), {"a": [1, 2, 3, 4]})
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1, 2, 3, 4])
    ax = vp.plot_wavelengths(P.wavelengths(8), train_length=100)
    assert len(ax.lines) == 2
    with pytest.raises(ValueError, match="pe must be"):
        vp.plot_encoding(np.zeros(3))
    with pytest.raises(ValueError, match="2-D"):
        vp.plot_matrix(np.zeros((2, 2, 2)))
    plt.close("all")
