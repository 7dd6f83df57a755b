"""Modules: parameter discovery and names, train/eval, state_dict round trips, layer formulas."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn import functional as F
from tinyattn import nn


class Block(nn.Module):
    def __init__(self, rng):
        self.norm = nn.LayerNorm(4)
        self.layers = nn.ModuleList([nn.Linear(4, 4, rng=rng), nn.Linear(4, 4, bias=False, rng=rng)])
        self.drop = nn.Dropout(0.5, rng=rng)
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))

    def forward(self, x):
        h = self.norm(x)
        for layer in self.layers:
            h = layer(h)
        return self.drop(h) * self.scale


class Net(nn.Module):
    def __init__(self, rng):
        self.emb = nn.Embedding(10, 4, rng=rng)
        self.blocks = nn.ModuleList([Block(rng), Block(rng)])
        self.head = nn.Linear(4, 10, rng=rng)
        self.tied = self.emb.weight          # shared parameter is listed once

    def forward(self, tokens):
        h = self.emb(tokens)
        for b in self.blocks:
            h = b(h)
        return self.head(h)


def test_named_parameters_order_names_and_sharing():
    net = Net(np.random.default_rng(0))
    names = [n for n, _ in net.named_parameters()]
    assert names[:6] == ["emb.weight", "blocks.0.norm.weight", "blocks.0.norm.bias",
                         "blocks.0.layers.0.weight", "blocks.0.layers.0.bias",
                         "blocks.0.layers.1.weight"]
    assert names[-2:] == ["head.weight", "head.bias"] and "tied" not in names
    assert len(names) == len(set(names)) == len(net.parameters())
    assert net.num_parameters() == 10 * 4 + 2 * (4 + 4 + 20 + 16 + 1) + 4 * 10 + 10


def test_train_eval_switches_dropout_recursively():
    net = Net(np.random.default_rng(0))
    tokens = np.array([[1, 2, 3]])
    net.eval()
    assert all(not m.training for m in net.modules())
    np.testing.assert_array_equal(net(tokens).data, net(tokens).data)    # deterministic in eval
    net.train()
    assert net.blocks[1].drop.training
    assert not np.array_equal(net(tokens).data, net(tokens).data)        # dropout active


def test_state_dict_save_load_round_trip_exact(tmp_path):
    a, b = Net(np.random.default_rng(1)), Net(np.random.default_rng(2))
    path = tmp_path / "net.npz"
    a.save(str(path))
    b.load(str(path))
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and pa.dtype == pb.dtype
        np.testing.assert_array_equal(pa.data, pb.data)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(np.array([[4, 5]])).data, b(np.array([[4, 5]])).data)
    sd = a.state_dict()
    sd["head.weight"][...] = 0                      # a copy: the model is untouched
    assert np.abs(a.head.weight.data).sum() > 0


def test_load_state_dict_rejects_missing_and_misshaped():
    net = Net(np.random.default_rng(0))
    sd = net.state_dict()
    del sd["head.bias"]
    with pytest.raises(KeyError, match="head.bias"):
        net.load_state_dict(sd)
    sd = net.state_dict()
    sd["head.bias"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"head.bias.*\(3,\).*\(10,\)"):
        net.load_state_dict(sd)


def test_layer_formulas_against_numpy():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 6)).astype(np.float32)
    lin = nn.Linear(6, 3, rng=rng)
    np.testing.assert_allclose(lin(x).data, x @ lin.weight.data + lin.bias.data, rtol=1e-5)
    bound = 1 / np.sqrt(6)
    assert np.abs(lin.weight.data).max() <= bound and lin.weight.dtype == np.float32
    ln, rms = nn.LayerNorm(6), nn.RMSNorm(6)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln(x).data, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rms(x).data, x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6),
                               rtol=1e-5)
    emb = nn.Embedding(7, 3, rng=rng)
    np.testing.assert_array_equal(emb(np.array([[6, 0]])).data, emb.weight.data[[[6, 0]]])
    seq = nn.Sequential(lin, F.gelu, nn.Linear(3, 2, rng=rng))
    assert seq(x).shape == (2, 5, 2) and len(seq.parameters()) == 4


def test_module_gradients_reach_every_parameter():
    net = Net(np.random.default_rng(4)).eval()
    loss = F.cross_entropy(net(np.array([[1, 2, 3, 4]])), np.array([[2, 3, 4, 5]]))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.isfinite(p.grad).all()
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_linear_module_gradcheck_float64():
    lin = nn.Linear(3, 2, rng=np.random.default_rng(0), dtype=np.float64)
    x = ta.Tensor(np.random.default_rng(1).standard_normal((4, 3)), requires_grad=True)
    assert ta.gradcheck(lambda x, w, b: F.linear(x, w, b), x, lin.weight, lin.bias)
