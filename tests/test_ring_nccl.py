"""Issue 17: the GPU ring's loop, schedule and launcher, tested without a GPU.

The loop (tinyattn.distributed.ring_loop) is the one the NCCL ranks run; here it runs on threaded
ranks with NumPy blocks standing in for the kernel and is compared with dense float64 attention.
"""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from reference import dense_attention
from tinyattn.distributed import ring_loop as R
from tinyattn.distributed import ring_nccl as RN
from tinyattn.distributed.sharding import shard_indices

ROOT = Path(__file__).resolve().parents[1]


def _qkv(seed, bh, n, d, scale=1.0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((bh, n, d)) * (scale if i == 0 else 1) for i in range(3)]


@pytest.mark.parametrize("p", [1, 2, 3, 4])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("layout", ["zigzag", "contiguous"])
@pytest.mark.parametrize("extra", [0, 3])                # 3: ragged chunks (N not a multiple of 2P)
def test_ring_loop_equals_dense_float64(p, causal, layout, extra):
    seed = 1700 + 10 * p + extra
    q, k, v = _qkv(seed, 3, 4 * p + extra + 2 * (layout == "zigzag") * p, 5)
    out = R.run_threaded(q, k, v, p, causal=causal, layout=layout)
    ref = dense_attention(q, k, v, is_causal=causal)[0]
    np.testing.assert_allclose(out, ref, atol=1e-12, rtol=0, err_msg=f"seed {seed}")


def test_extreme_logits_float32_and_explicit_scale():
    q, k, v = _qkv(1701, 2, 24, 4, scale=1e4)            # scores around ±1e4
    out = R.run_threaded(q, k, v, 3, causal=True)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, dense_attention(q, k, v, is_causal=True)[0], atol=1e-9)
    q, k, v = (x.astype(np.float32) for x in _qkv(1702, 2, 16, 4))
    out = R.run_threaded(q, k, v, 2, causal=False, scale=0.3)
    assert out.dtype == np.float32
    ref = dense_attention(*(x.astype(np.float64) for x in (q, k, v)), scale=0.3)[0]
    np.testing.assert_allclose(out, ref, atol=2e-6)


def test_chunks_are_the_library_layout_and_ragged_chunks_cover_the_sequence():
    for layout in ("zigzag", "contiguous"):
        for r, (ch, idx) in enumerate(zip(R.chunk_bounds(48, 4, layout), shard_indices(48, 4, layout))):
            assert np.array_equal(np.concatenate([np.arange(a, b) for a, b in ch]), idx), (layout, r)
    ch = R.chunk_bounds(19, 2, "zigzag")                   # 4 chunks of 5, 5, 5, 4 tokens
    assert ch == [[(0, 5), (15, 19)], [(5, 10), (10, 15)]]


def test_pair_modes():
    assert R.pair_mode((4, 8), (0, 4), True) == "full"
    assert R.pair_mode((4, 8), (8, 12), True) == "skip"
    assert R.pair_mode((4, 8), (4, 8), True) == "causal"
    assert R.pair_mode((4, 8), (8, 12), False) == "full"
    with pytest.raises(ValueError, match="overlap partially"):
        R.pair_mode((4, 8), (6, 10), True)


def test_double_buffer_schedule_and_zigzag_balance():
    p, n, bh = 4, 32, 2
    q, k, v = _qkv(1703, bh, n, 4)
    log = []
    R.run_threaded(q, k, v, p, causal=True, log=log)
    for r in range(p):
        ops = [e for e in log if e["rank"] == r]
        expect = [(o, s) for s in range(p) for o in (("post", "compute", "wait") if s < p - 1 else ("compute",))]
        assert [(e["op"], e["step"]) for e in ops] == expect, r
        for e in ops:
            if e["op"] == "post":                 # send the block in use, receive into the other buffer
                s = e["step"]
                assert (e["send_buf"], e["recv_buf"], e["owner"], e["recv_owner"]) == (s % 2, 1 - s % 2, (r - s) % p,
                                                                                        (r - s - 1) % p)
            if e["op"] == "compute":
                assert (e["buf"], e["owner"]) == (e["step"] % 2, (r - e["step"]) % p)
    work = [sum(e["work"] for e in log if e["rank"] == r and e["op"] == "compute") for r in range(p)]
    c = n // (2 * p)                              # zig-zag: every rank the same, N²/(2P) pairs (× BH)
    assert work == [bh * n * n // (2 * p)] * p and c * c * 2 * p * p == n * n // 2


def test_transport_copies_at_the_second_post_and_wait_needs_both_ends():
    t0, t1 = R.InMemoryTransport.group(2, timeout=0.2)
    a0, b0, a1, b1 = np.arange(4.0), np.zeros(4), np.arange(4.0) + 10, np.zeros(4)
    t0.send_recv(a0, b0)
    assert (b0 == 0).all()                        # rank 1 has not posted: nothing moved yet
    t1.send_recv(a1, b1)                          # second post: both transfers happen now, before any wait
    assert np.array_equal(b1, a0) and np.array_equal(b0, a1)
    t0.wait(); t1.wait()
    lone = R.InMemoryTransport.group(2, timeout=0.05)[0]
    lone.send_recv(np.zeros(2), np.zeros(2))
    with pytest.raises(RuntimeError, match="never arrived"):
        lone.wait()
    u0, u1 = R.InMemoryTransport.group(2)
    u0.send_recv(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="does not fit"):
        u1.send_recv(np.zeros(3), np.zeros(4))


def test_receiving_into_the_buffer_in_use_is_caught():
    """A loop given one buffer twice (no double buffering) computes on overwritten blocks."""
    p, (q, k, v) = 2, _qkv(1704, 2, 16, 4)
    chunks = R.chunk_bounds(16, p, "zigzag")
    ts, outs, gate = R.InMemoryTransport.group(p), [None] * p, threading.Barrier(p)

    class Slow(R.NumpyBackend):                    # both ranks post before either computes
        def block(self, acc, *a):
            gate.wait() if not getattr(self, "passed", False) else None
            self.passed = True
            return super().block(acc, *a)

    def run(r):
        buf = np.zeros(R.message_size(chunks[r], 2, 4))
        R.pack_kv(k, v, chunks[r], buf)
        outs[r] = R.ring_loop(r, chunks, [q[:, a:b] for a, b in chunks[r]], [buf, buf], ts[r], Slow(0.5),
                              causal=False)
    th = [threading.Thread(target=run, args=(r,)) for r in range(p)]
    [t.start() for t in th]; [t.join() for t in th]
    out = np.zeros_like(q)
    for r in range(p):
        for (o, _), (a, b) in zip(outs[r], chunks[r]):
            out[:, a:b] = o
    assert np.abs(out - dense_attention(q, k, v)[0]).max() > 1e-3


def test_timeline_follows_the_stream_rules():
    log = []
    q, k, v = _qkv(1705, 1, 12, 2)
    R.run_threaded(q, k, v, 3, causal=False, log=log)
    tw, tb = 1.0, 0.5
    tl = R.timeline(log, 0, tw, tb)
    comp = [(s, a, b) for kind, s, a, b in tl if kind == "compute"]
    comm = [(s, a, b) for kind, s, a, b in tl if kind == "comm"]
    w, nbytes = 4 * 4, 2 * 4 * 2 * 8               # 4×4 pairs per step; K and V of 4 tokens, d = 2, float64
    assert comm[0] == (0, 0.0, nbytes * tb)       # first transfer starts with the first compute
    assert comp[0] == (0, 0.0, w * tw)
    assert comm[1][1] == max(comm[0][2], comp[0][2])               # waits for compute 0 (buffer reuse)
    assert comp[1][1] == max(comp[0][2], comm[0][2])               # waits for its block
    assert comp[2][1] == max(comp[1][2], comm[1][2])


@pytest.mark.parametrize("bad, match", [
    (dict(k=np.zeros((2, 8, 3))), "q, k, v must share"),
    (dict(q=np.zeros((8, 4))), r"q must be a floating array of shape \(BH, N, d\)"),
    (dict(v=np.zeros((2, 8, 4), int)), "v must be a floating"),
    (dict(p=0), "p \\(number of ranks\\)"),
    (dict(layout="striped"), "layout"),
    (dict(p=5), "n must be an int >= 10"),
])
def test_bad_input(bad, match):
    kw = dict(q=np.zeros((2, 8, 4)), k=np.zeros((2, 8, 4)), v=np.zeros((2, 8, 4)), p=2, layout="zigzag")
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        R.run_threaded(kw.pop("q"), kw.pop("k"), kw.pop("v"), kw.pop("p"), causal=True, **kw)


@pytest.mark.parametrize("argv, match", [
    (["--n-gpus", "1"], "--n-gpus must be >= 2"),
    (["--d", "96"], "--d must be one of"),
    (["--heads", "0"], "--heads must be >= 1"),
    (["--n", "3"], "n must be an int >= 4"),
    (["--single-gpu-check", "--ranks", "0"], "--ranks must be >= 1"),
])
def test_launcher_rejects_bad_arguments(argv, match, capsys):
    with pytest.raises(ValueError, match=match):
        RN.parse_args(argv)
    assert RN.main(argv) == 2 and "error:" in capsys.readouterr().err


def test_launcher_refuses_without_enough_gpus(monkeypatch, capsys):
    monkeypatch.setattr(RN, "visible_gpus", lambda: 1)
    assert RN.main(["--n-gpus", "2", "--n", "1024"]) == 2
    assert "needs 2 visible CUDA GPU(s), found 1" in capsys.readouterr().err


def test_benchmark_refuses_on_fewer_than_two_gpus():
    if RN.visible_gpus() >= 2:
        pytest.skip("two GPUs are visible: the benchmark would run")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ring_nccl.py"), "--sizes", "1024"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--single-gpu-check" in res.stderr, res.stderr


# The exception text of each rank in the single-GPU check of session 21 (one H200, CuPy 14.2, NCCL 2.28.9):
# two tracebacks of ~740 characters, so the launcher's message is ~1500 characters long.
_NCCL_TB = """Traceback (most recent call last):
  File "/work/main/tinyattn/distributed/ring_nccl.py", line 52, in _child
    res_q.put((rank, True, fn(rank, p, uid, barrier, *args)))
                           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/work/main/tinyattn/distributed/ring_nccl.py", line 104, in _probe_worker
    comm = nccl.NcclCommunicator(p, uid, rank)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "cupy_backends/cuda/libs/nccl.pyx", line 346, in cupy_backends.cuda.libs.nccl.NcclCommunicator.__init__
  File "cupy_backends/cuda/libs/nccl.pyx", line 139, in cupy_backends.cuda.libs.nccl.check_status
cupy_backends.cuda.libs.nccl.NcclError: NCCL_ERROR_INVALID_USAGE: invalid usage (run with NCCL_DEBUG=WARN for details)
"""
_NCCL_LINE = "NcclError: NCCL_ERROR_INVALID_USAGE: invalid usage (run with NCCL_DEBUG=WARN for details)"


def test_rank_failure_message_keeps_every_rank_whole():
    exc = RN.RankFailure({1: _NCCL_TB, 0: _NCCL_TB})
    assert len(str(exc)) > 1500                          # as long as the session-21 message
    assert str(exc) == f"rank 0 failed:\n{_NCCL_TB}\nrank 1 failed:\n{_NCCL_TB}"
    assert isinstance(exc, RuntimeError) and list(exc.failures) == [0, 1]


def test_error_line_names_the_error_and_cuts_only_the_end():
    assert RN.error_line(_NCCL_TB) == _NCCL_LINE
    assert RN.error_line("TimeoutError: rank 1 gave no result within 20.0 s") == \
        "TimeoutError: rank 1 gave no result within 20.0 s"
    long = RN.error_line("ValueError: " + "x" * 400, limit=50)
    assert long == "ValueError: " + "x" * 37 + "…" and len(long) == 50
    assert RN.error_line("\n \n") == "(empty traceback)"


@pytest.mark.parametrize("outcome, want", [
    (RN.RankFailure({0: _NCCL_TB, 1: _NCCL_TB}), f"failed on ranks 0, 1: {_NCCL_LINE}"),
    (RN.RankFailure({0: _NCCL_TB, 1: "TimeoutError: rank 1 gave no result within 20.0 s"}),
     f"failed on rank 0: {_NCCL_LINE}; failed on rank 1: TimeoutError: rank 1 gave no result within 20.0 s"),
    (OSError("cannot start a process"), "failed: OSError: cannot start a process"),
    ([{"created": True, "received_from": 2.0}, {"created": True, "received_from": 1.0}],
     "ok: two ranks on one GPU created a communicator and exchanged 1 MiB"),
    ([{"created": True, "received_from": 0.0}, {"created": True, "received_from": 1.0}],
     "wrong data: ranks 0, 1 received the fill values [0.0, 1.0], expected [2.0, 1.0]"),
])
def test_nccl_probe_verdict_is_one_short_line(outcome, want, monkeypatch):
    def fake_spawn(p, fn, args=(), devices=None, timeout=600.0):
        assert (p, fn, devices) == (2, RN._probe_worker, [0, 0])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    monkeypatch.setattr(RN, "spawn", fake_spawn)
    assert RN.nccl_probe() == want


_FAKE_CUPY = {                      # just enough of CuPy for _child and _probe_worker to reach NCCL
    "cupy/__init__.py": "from . import cuda\n",
    "cupy/cuda/__init__.py": "class Device:\n    def __init__(self, i): pass\n    def use(self): pass\n",
    "cupy/cuda/nccl.py": ("class NcclError(RuntimeError): pass\n"
                          "def get_unique_id(): return b'fake'\n"
                          "class NcclCommunicator:\n    def __init__(self, p, uid, rank):\n"
                          "        raise NcclError('NCCL_ERROR_INVALID_USAGE: invalid usage ' + 'x' * 1200)\n"),
}


def test_nccl_probe_through_real_processes_reports_the_nccl_error(tmp_path, monkeypatch):
    """spawn -> _child -> _probe_worker in two real processes, with a stand-in CuPy whose NCCL refuses
    the communicator; each traceback is > 1500 characters (the case that lost a letter before)."""
    try:
        import cupy  # noqa: F401
        pytest.skip("a real CuPy is importable: the stand-in would not be used by the children")
    except ImportError:
        pass
    for rel, text in _FAKE_CUPY.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))                 # spawned children inherit sys.path
    verdict = RN.nccl_probe(timeout=120)
    sys.modules.pop("cupy", None)
    head = "failed on ranks 0, 1: NcclError: NCCL_ERROR_INVALID_USAGE: invalid usage xxx"
    assert verdict.startswith(head) and verdict.endswith("x…") and len(verdict) == 22 + 160, verdict


def test_single_gpu_timing_is_the_median_of_interleaved_rounds_of_the_slowest_rank():
    """Session 21's single-GPU check timed each mode once although --repeats 3 was given."""
    times = {(0, "ring"): [9.0, 1.0, 3.0, 2.0], (1, "ring"): [9.0, 1.5, 1.0, 1.0],      # first: warm-up
             (0, "compute"): [0.5, 0.7, 0.6], (1, "compute"): [0.9, 0.1, 0.2],
             (0, "comm"): [0.3, 0.3, 0.3], (1, "comm"): [0.2, 0.4, 0.1]}
    calls, lock = [], threading.Lock()

    def fake_timed(rank, mode, barrier):
        barrier.wait()                                    # both ranks must be in the same round
        with lock:
            calls.append((rank, mode))
            return times[(rank, mode)].pop(0)
    out = RN.time_modes([0, 1], 3, fake_timed)
    assert out["ring_samples_s"] == [1.5, 3.0, 2.0] and out["ring_s"] == 2.0          # max per round, median
    assert out["compute_samples_s"] == [0.9, 0.7, 0.6] and out["compute_s"] == 0.7
    assert out["comm_samples_s"] == [0.3, 0.4, 0.3] and out["comm_s"] == 0.3
    modes = [m for r, m in calls if r == 0]
    assert modes == ["ring"] + ["ring", "compute", "comm"] * 3                         # warm-up, interleaved
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        RN.time_modes([0, 1], 0, fake_timed)


def _gpu() -> bool:
    try:
        import cupy as cp
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.skipif(not _gpu(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_virtual_ranks_on_one_gpu_match_float64(dtype):
    res = RN.single_gpu_check(dict(n=2048, bh=2, d=64, dtype=dtype, seed=1706, ranks=3, layout="zigzag",
                                   causal=True, rows=16), probe=False)
    assert all(c["ok"] for c in res["checks"]), res["checks"]


def test_benchmark_summary_follows_its_definitions():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_ring_nccl", ROOT / "benchmarks" / "ring_nccl.py")
    B = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(B)
    cfg = dict(bh=4, batch=1, heads=4, d=64, dtype="float16", repeats=3)
    n, p = 1024, 2
    # rank 1 is the slower one in repeats 0 and 2; the summary takes the slowest rank, then the median
    t = [{"ring": [1.0, 1.2, 1.1], "compute": [0.9, 0.9, 0.9], "comm": [0.5, 0.5, 0.5], "single": [0.8, 0.8, 0.8]},
         {"ring": [1.3, 1.0, 1.4], "compute": [1.0, 0.8, 1.0], "comm": [0.4, 0.6, 0.4], "single": [0.9, 0.7, 0.9]}]
    chk = {"rel_err": 1e-3, "ok": True, "rows_checked": 8}
    per_rank = [[{"N": n, "causal": True, "times": t[r], "check": chk, "bytes_sent": 1000 + r,
                  "single_flops": 7e9}] for r in range(p)]
    row = B.summarize(per_rank, cfg, p)[0]
    ring, comp, comm, single = 1.3, 1.0, 0.5, 0.9       # medians of [1.3, 1.2, 1.4], [1.0, .9, 1.0], ...
    f_gpu = 4 * 4 * n * n * 64 / 2 / p
    assert row["per_gpu_tflops"] == pytest.approx(f_gpu / ring / 1e12)
    assert row["single_gpu_tflops"] == pytest.approx(7e9 / single / 1e12)
    assert row["hidden_comm_fraction"] == pytest.approx(1 - (ring - comp) / comm)
    assert row["link_GBps"] == pytest.approx(1001 / comm / 1e9)
    assert row["ratio_vs_single"] == pytest.approx(row["per_gpu_tflops"] / row["single_gpu_tflops"])


def test_no_heads_and_float16_messages():
    q = np.zeros((0, 8, 4))                               # BH = 0: empty messages, empty output
    assert R.run_threaded(q, q, q, 2, causal=True).shape == (0, 8, 4)
    q, k, v = (x.astype(np.float16) for x in _qkv(1707, 2, 20, 8))
    out = R.run_threaded(q, k, v, 2, causal=True)
    ref = dense_attention(*(x.astype(np.float64) for x in (q, k, v)), is_causal=True)[0]
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, ref, atol=5e-3, err_msg="seed 1707")
