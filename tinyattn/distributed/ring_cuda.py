"""GPU pieces of ring attention (issue 17): the CuPy kernel backend, the fp32 lse merge, the NCCL
and single-GPU stream-copy transports, seeded inputs and one rank's state (:class:`Rank`).

Used by :mod:`tinyattn.distributed.ring_nccl` (launcher) and ``benchmarks/ring_nccl.py``. Streams:
each rank has a compute stream (kernel + merge) and a comm stream (transfers). A post records an
event on the compute stream (covers the compute that read the receive buffer) that the comm stream
waits for; the transfer's own event makes the next compute wait. Needs CuPy and a CUDA GPU.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .ring_loop import InMemoryTransport, chunk_bounds, message_size, pack_kv, ring_loop

DTYPES = {"float16": "f16", "bfloat16": "bf16"}
TOL = {"float16": 1e-2, "bfloat16": 3e-2}     # relative Frobenius error of the sampled rows vs float64


class CupyBackend:
    """Flash kernel per block on ``stream``; fp32 accumulators ``o (BH, c, d)``, ``lse (BH, c)``."""

    def __init__(self, kind: str, stream, scale: float):
        import cupy as cp
        self.cp, self.kind, self.stream, self.scale, self.scratch = cp, kind, stream, scale, {}

    def new_acc(self, q):
        with self.stream:
            return self.cp.zeros(q.shape, self.cp.float32), self.cp.full(q.shape[:-1], -np.inf, self.cp.float32)

    def block(self, acc, q, k, v, causal):
        from ..gpu.cupy_flash import launch
        cp = self.cp
        if q.shape not in self.scratch:
            with self.stream:
                self.scratch[q.shape] = (cp.empty_like(q), cp.empty(q.shape[:-1], cp.float32))
        o_p, lse_p = self.scratch[q.shape]             # reuse is safe: one stream orders every use
        with self.stream:
            launch(q, k, v, o_p, self.kind, lse_p, is_causal=causal, scale=self.scale)
            o, lse = acc
            merge_o, merge_lse_ = _merge_kernels(self.kind)
            merge_o(lse[..., None], lse_p[..., None], o_p, o)             # o <- merged o (reads old lse)
            merge_lse_(lse_p, lse)                                        # lse <- log(e^lse + e^lse_p)
        return acc

    def finish(self, acc):
        return acc


class _NoCompute:
    """Backend for comm-only timing: blocks are received but not attended to."""

    def __init__(self, inner):
        self.inner = inner

    def new_acc(self, q):
        return self.inner.new_acc(q)

    def block(self, acc, q, k, v, causal):
        return acc

    def finish(self, acc):
        return acc


_MERGE: dict = {}
_TO_F32 = {"f16": "(float)op", "bf16": "__uint_as_float(((unsigned int)op) << 16)"}   # bf16 bits -> float


def _merge_kernels(kind: str):
    """Fused fp32 lse merge for block outputs of ``kind`` ('f16' or 'bf16'): m = max(L, Lp);
    o = (e^(L-m) o + e^(Lp-m) o_p) / (e^(L-m) + e^(Lp-m)); L = m + log(e^(L-m) + e^(Lp-m));
    rows with L = Lp = -inf keep o = 0, L = -inf (the rule of :func:`merge_lse`)."""
    if kind not in _MERGE:
        import cupy as cp
        _MERGE[kind] = (cp.ElementwiseKernel(
            "float32 L, float32 Lp, T op", "float32 o",
            "float m = fmaxf(L, Lp);"
            "if (isinf(m)) { o = 0.f; } else { float a = expf(L - m), b = expf(Lp - m);"
            f" o = (a * o + b * {_TO_F32[kind]}) / (a + b); }}", f"ta_ring_merge_o_{kind}"),
            cp.ElementwiseKernel(
            "float32 Lp", "float32 L",
            "float m = fmaxf(L, Lp); if (!isinf(m)) L = m + logf(expf(L - m) + expf(Lp - m));",
            "ta_ring_merge_lse"))
    return _MERGE[kind]


def merge_check(kind: str, seed: int = 0) -> float:
    """Max |GPU merge - library merge_lse (float64)| on random partials with empty rows and ±30 lse."""
    import cupy as cp
    from .local import merge_lse
    rng = np.random.default_rng(seed)
    o1, o2 = rng.standard_normal((2, 3, 64, 8)).astype(np.float32)
    l1, l2 = rng.uniform(-30, 30, (2, 3, 64)).astype(np.float32)
    l1[0, :8] = -np.inf                                          # rows empty before, and on both sides
    l1[1, :4] = l2[1, :4] = -np.inf
    o1[np.isneginf(l1)] = 0
    if kind == "f16":
        o2, o2_exact = o2.astype(np.float16), o2.astype(np.float16).astype(np.float64)
    else:
        bits = o2.view(np.uint32)
        o2 = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        o2_exact = (o2.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    want_o, want_l = merge_lse(o1.astype(np.float64), l1.astype(np.float64), o2_exact, l2.astype(np.float64))
    o, lse = cp.asarray(o1), cp.asarray(l1)
    merge_o, merge_l = _merge_kernels(kind)
    merge_o(lse[..., None], cp.asarray(l2)[..., None], cp.asarray(o2), o)
    merge_l(cp.asarray(l2), lse)
    got_l = cp.asnumpy(lse)
    same_inf = np.array_equal(np.isneginf(got_l), np.isneginf(want_l))
    fin = np.isfinite(want_l)
    err = max(np.abs(cp.asnumpy(o) - want_o).max(), np.abs(got_l[fin] - want_l[fin]).max())
    return float(err) if same_inf else float("inf")


class NcclTransport:
    """send_recv: the comm stream waits for the compute issued so far, then one NCCL group sends
    ``send`` to rank+1 and receives ``recv`` from rank-1; wait: the compute stream waits for it."""

    def __init__(self, comm, rank: int, p: int, compute, comm_stream):
        self.comm, self.rank, self.p, self.compute, self.stream = comm, rank, p, compute, comm_stream

    def send_recv(self, send, recv) -> None:
        from cupy.cuda import nccl
        self.stream.wait_event(self.compute.record())
        nccl.groupStart()
        self.comm.send(send.data.ptr, send.nbytes, nccl.NCCL_UINT8, (self.rank + 1) % self.p, self.stream.ptr)
        self.comm.recv(recv.data.ptr, recv.nbytes, nccl.NCCL_UINT8, (self.rank - 1) % self.p, self.stream.ptr)
        nccl.groupEnd()
        self.done = self.stream.record()

    def wait(self) -> None:
        self.compute.wait_event(self.done)


class StreamCopyTransport(InMemoryTransport):
    """Virtual ranks on one GPU (threads): a post records an event on the poster's compute stream;
    the copy runs on the sender's comm stream after both ends' events; wait() makes the compute
    stream wait for the copy's event."""

    def __init__(self, shared, rank, p, compute, comm_stream, **kw):
        super().__init__(shared, rank, p, **kw)
        self.compute, self.stream = compute, comm_stream

    def _token(self, arr):
        return arr, self.compute.record(), self.stream

    def _copy(self, src, dst):
        import cupy as cp
        (a, ev_a, stream), (b, ev_b, _) = src, dst
        if a.nbytes != b.nbytes:
            raise ValueError(f"message of {a.nbytes} bytes does not fit the receive buffer ({b.nbytes} bytes)")
        stream.wait_event(ev_a)
        stream.wait_event(ev_b)
        cp.cuda.runtime.memcpyAsync(b.data.ptr, a.data.ptr, a.nbytes, cp.cuda.runtime.memcpyDeviceToDevice,
                                    stream.ptr)
        return stream.record()

    def _finish(self, handle) -> None:
        self.compute.wait_event(handle)


def make_inputs(n: int, bh: int, d: int, dtype: str, seed: int):
    """Seeded q, k, v (BH, N, d) in the kernel's dtype (bf16 as uint16 bits) on the current GPU,
    and a function giving their exact float64 values (the reference sees the rounded inputs)."""
    import cupy as cp
    rng = cp.random.default_rng(seed)
    xs = [rng.standard_normal((bh, n, d), dtype=cp.float32) for _ in range(3)]
    if dtype == "float16":
        return [x.astype(cp.float16) for x in xs], lambda x: x.astype(cp.float64)
    bits = [x.view(cp.uint32) for x in xs]                       # round to nearest even, keep top 16 bits
    out = [((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(cp.uint16) for b in bits]
    return out, lambda x: (x.astype(cp.uint32) << 16).view(cp.float32).astype(cp.float64)


class Rank:
    """One rank's state: its chunks, query chunks, two message buffers, streams and transport."""

    def __init__(self, rank, p, q, k, v, *, dtype, layout, causal, transport_factory):
        import cupy as cp
        cp.cuda.Device().synchronize()                           # inputs were made on the null stream
        self.rank, self.p, self.causal, self.dtype = rank, p, causal, dtype
        self.compute, self.comm = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
        bh, n, d = q.shape
        self.chunks = chunk_bounds(n, p, layout)
        size = max(message_size(c, bh, d) for c in self.chunks)
        with self.compute:
            self.q_chunks = [cp.ascontiguousarray(q[:, a:b]) for a, b in self.chunks[rank]]
            self.bufs = [cp.zeros(size, q.dtype), cp.zeros(size, q.dtype)]
            pack_kv(k, v, self.chunks[rank], self.bufs[0])
            self.own = self.bufs[0].copy()                       # to restore before every repeat
        self.backend = CupyBackend(DTYPES[dtype], self.compute, 1 / math.sqrt(d))
        self.transport = transport_factory(self)
        self.compute.synchronize()

    def run(self, mode: str = "ring", log=None):
        """mode 'ring' (compute + transfers), 'compute' (no transfers), 'comm' (no attention)."""
        with self.compute:                                       # the loop leaves the buffers swapped
            self.bufs[0][...] = self.own
        backend = _NoCompute(self.backend) if mode == "comm" else self.backend
        return ring_loop(self.rank, self.chunks, self.q_chunks, self.bufs,
                         None if mode == "compute" else self.transport, backend, causal=self.causal, log=log)

    def check(self, res, q, k, v, exact, rows: int, seed: int) -> dict:
        """Relative and max error of ``rows`` sampled output rows vs float64 attention on the GPU."""
        import cupy as cp
        pos = np.concatenate([np.arange(a, b) for a, b in self.chunks[self.rank]])
        pick = np.sort(np.random.default_rng(seed + self.rank).choice(len(pos), min(rows, len(pos)), replace=False))
        o = cp.concatenate([r[0] for r in res], axis=1)[:, cp.asarray(pick)]
        qp = cp.asarray(pos[pick])
        s = exact(q[:, qp]) @ exact(k).transpose(0, 2, 1) / math.sqrt(q.shape[-1])
        if self.causal:
            s = cp.where(cp.arange(k.shape[1])[None, None, :] <= qp[None, :, None], s, -cp.inf)
        w = cp.exp(s - s.max(axis=-1, keepdims=True))
        ref = (w / w.sum(axis=-1, keepdims=True)) @ exact(v)
        rel = float(cp.linalg.norm(o - ref) / cp.linalg.norm(ref))
        return {"rows_checked": int(len(pick)), "rel_err": rel, "max_abs_err": float(cp.abs(o - ref).max()),
                "ok": rel <= TOL[self.dtype]}


def timed(rank: "Rank", mode: str, barrier) -> float:
    """Seconds of one run of ``mode``, from a barrier to the end of this rank's GPU work."""
    import cupy as cp
    cp.cuda.Device().synchronize()
    barrier.wait()
    t0 = time.perf_counter()
    rank.run(mode)
    rank.compute.synchronize()
    rank.comm.synchronize()
    return time.perf_counter() - t0


def nccl_comm(rank: int, p: int, uid):
    """This process's NCCL communicator (``uid`` from rank 0's ``nccl.get_unique_id()``)."""
    from cupy.cuda import nccl
    return nccl.NcclCommunicator(p, uid, rank)


def nccl_rank(rank: int, p: int, comm, q, k, v, **kw) -> Rank:
    """A :class:`Rank` whose transport is NCCL over the communicator ``comm``."""
    return Rank(rank, p, q, k, v, **kw,
                transport_factory=lambda r: NcclTransport(comm, rank, p, r.compute, r.comm))


def virtual_ranks(p: int, q, k, v, **kw) -> list[Rank]:
    """P ranks on the current GPU, joined by :class:`StreamCopyTransport` (run each in a thread)."""
    shared: dict = {}
    return [Rank(r, p, q, k, v, **kw, transport_factory=lambda x: StreamCopyTransport(
        shared, x.rank, p, x.compute, x.comm)) for r in range(p)]


