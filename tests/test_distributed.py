"""Chapter 12: ring attention and Ulysses (simulated and on MPI) against dense float64 attention."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reference import dense_attention
from tinyattn import distributed as D

ROOT = Path(__file__).resolve().parents[1]


def _qkv(rng, b, hq, hkv, n, d, dv):
    return (rng.standard_normal((b, hq, n, d)), rng.standard_normal((b, hkv, n, d)),
            rng.standard_normal((b, hkv, n, dv)))


def _ref(q, k, v, causal):
    g = q.shape[-3] // k.shape[-3]
    return dense_attention(q, np.repeat(k, g, -3), np.repeat(v, g, -3), is_causal=causal)[0]


@settings(max_examples=40, deadline=None)
@given(p=st.integers(1, 8), chunks=st.integers(1, 3), causal=st.booleans(),
       layout=st.sampled_from(D.LAYOUTS), g=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_ring_equals_dense(p, chunks, causal, layout, g, seed):
    rng = np.random.default_rng(seed)
    n = 2 * p * chunks                       # a multiple of 2P so every layout applies
    q, k, v = _qkv(rng, 2, 2 * g, 2, n, 4, 3)
    out = D.ring_attention(q, k, v, p, causal, layout=layout)
    np.testing.assert_allclose(out, _ref(q, k, v, causal), atol=1e-12, rtol=0)


@settings(max_examples=30, deadline=None)
@given(p=st.sampled_from([1, 2, 4, 8]), chunks=st.integers(1, 3), causal=st.booleans(),
       seed=st.integers(0, 2**16))
def test_ulysses_equals_dense(p, chunks, causal, seed):
    rng = np.random.default_rng(seed)
    q, k, v = _qkv(rng, 1, 2 * p, p, p * chunks, 4, 5)
    out = D.ulysses_attention(q, k, v, p, causal)
    np.testing.assert_allclose(out, _ref(q, k, v, causal), atol=1e-12, rtol=0)


def test_ring_extreme_logits_and_float32():
    rng = np.random.default_rng(3)
    q, k, v = _qkv(rng, 1, 2, 2, 16, 4, 4)
    q = q * 1e4                               # scores around ±1e4: the lse merge must not overflow
    out = D.ring_attention(q, k, v, 4, True, layout="zigzag")
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, _ref(q, k, v, True), atol=1e-9)
    out32 = D.ring_attention(*(x.astype(np.float32) for x in _qkv(rng, 1, 2, 2, 16, 4, 4)), 2)
    assert out32.dtype == np.float32


def test_merge_lse_of_empty_rows_is_not_nan():
    o = np.zeros((3, 2)); lse = np.full(3, -np.inf)
    o2 = np.ones((3, 2)); lse2 = np.array([-np.inf, 0.0, 5.0])
    m, l = D.merge_lse(o, lse, o2, lse2)
    assert not np.isnan(m).any() and np.isneginf(l[0]) and (m[0] == 0).all()
    np.testing.assert_allclose(l[1:], lse2[1:])


def test_ring_bytes_and_peak_memory_match_the_formulas():
    b, hq, hkv, n, d, dv, p = 2, 4, 2, 48, 8, 6, 4
    q, k, v = _qkv(np.random.default_rng(0), b, hq, hkv, n, d, dv)
    _, stats = D.ring_attention(q, k, v, p, return_stats=True)
    c, it = n // p, 8
    assert stats.sent_bytes == [(p - 1) * b * hkv * c * (d + dv) * it] * p
    # q shard + current and arriving K/V blocks + output and lse accumulators + one score tile
    peak = it * (b * hq * c * d + 2 * b * hkv * c * (d + dv) + b * hq * c * dv + b * hq * c + b * hq * c * c)
    assert stats.peak_bytes == [peak] * p


def test_ulysses_bytes_match_the_formula():
    b, h, n, d, p = 1, 8, 32, 4, 4
    q, k, v = _qkv(np.random.default_rng(1), b, h, h, n, d, d)
    _, stats = D.ulysses_attention(q, k, v, p, return_stats=True)
    local = b * h * (n // p) * d * 8          # one of q, k, v or out on one device, before the exchange
    assert stats.sent_bytes == [4 * local * (p - 1) // p] * p


def test_sharding_partitions_the_sequence():
    for layout in D.LAYOUTS:
        shards = D.shard_indices(48, 4, layout)
        assert sorted(np.concatenate(shards).tolist()) == list(range(48))
        assert {len(s) for s in shards} == {12}


def test_contiguous_causal_imbalance_closed_form_and_zigzag_balance():
    n, p = 64, 4
    c = n // p
    w = D.causal_work(D.shard_indices(n, p, "contiguous"))
    assert w.sum() == n * (n + 1) // 2
    ring_time = c * (c + 1) // 2 + (p - 1) * c * c            # step 0: own triangle; then full blocks
    assert D.imbalance(w) == pytest.approx(ring_time / (n * (n + 1) / 2 / p))
    wz = D.causal_work(D.shard_indices(n, p, "zigzag"))
    assert wz.sum() == w.sum() and D.imbalance(wz) == pytest.approx(1.0)
    assert (wz.sum(axis=0) == wz.sum() // p).all()          # every device does the same total work


@pytest.mark.parametrize("bad, match", [
    (dict(n_devices=0), "n_devices"),
    (dict(n_devices=5), "multiple of 5"),
    (dict(n_devices=2, layout="spiral"), "layout"),
])
def test_ring_bad_input(bad, match):
    q, k, v = _qkv(np.random.default_rng(0), 1, 2, 2, 8, 4, 4)
    kw = dict(bad)
    with pytest.raises(ValueError, match=match):
        D.ring_attention(q, k, v, kw.pop("n_devices"), **kw)


def test_bad_shapes_and_dtypes():
    q, k, v = _qkv(np.random.default_rng(0), 1, 3, 2, 8, 4, 4)
    with pytest.raises(ValueError, match="multiple of the K/V heads"):
        D.ring_attention(q, k, v, 2)
    with pytest.raises(TypeError, match="floating"):
        D.ring_attention(np.ones((1, 2, 8, 4), int), k, v, 2)
    with pytest.raises(ValueError, match="Ulysses"):
        D.ulysses_attention(*_qkv(np.random.default_rng(0), 1, 2, 2, 8, 4, 4), 4)


def _mpiexec() -> str | None:
    cand = Path(sys.executable).parent / "mpiexec"
    return str(cand) if cand.exists() else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(_mpiexec() is None, reason="no mpiexec (pip install mpich mpi4py)")


@needs_mpi
@pytest.mark.parametrize("ranks, args", [
    (2, ["--causal", "--layout", "zigzag"]),
    (4, ["--causal", "--layout", "striped", "--kv-heads", "2"]),
    (4, ["--blocking", "--dtype", "float32"]),
    (2, ["--algo", "ulysses", "--causal"]),
    (4, ["--algo", "ulysses", "--heads", "8", "--kv-heads", "4"]),
])
def test_mpi_runs_match_dense(ranks, args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, "-m", "tinyattn.distributed.ring", "--n", "128",
           "--json", str(tmp_path / "r.json"), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "-> OK" in res.stdout
    import json
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["ranks"] == ranks and rec["ok"] and len(rec["per_rank"]) == ranks


@needs_mpi
def test_mpi_bad_arguments_exit_nonzero(tmp_path):
    cmd = [_mpiexec(), "-n", "3", sys.executable, "-m", "tinyattn.distributed.ring", "--n", "100"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert res.returncode != 0 and "multiple of 3" in res.stderr
