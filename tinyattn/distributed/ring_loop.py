"""The ring-attention loop, written once for every transport (chapter 12, issue 17).

One rank holds the query chunks of its shard and a K/V *message*: a flat buffer holding, chunk by
chunk, ``K_c (BH, c, d)`` then ``V_c (BH, c, d)`` of the shard of its current *owner*. Each step it

1. posts ``transport.send_recv(send=buf[cur], recv=buf[1 - cur])`` (the block goes to rank r+1,
   the next one arrives from rank r-1 into the *other* buffer: double buffering),
2. attends its query chunks to the block in ``buf[cur]`` and merges with the lse rule,
3. ``transport.wait()``, then swaps the buffers; the owner becomes ``(owner - 1) mod P``.

The transfer of step s+1's block overlaps step s's compute; ``buf[1 - cur]`` is only written after
the compute of step s-1 (which read it) was issued: the transport orders the two (a CUDA event on
the compute stream; program order here). Causal masking works on *chunks* (sharding.py's zig-zag
cuts the sequence into 2P chunks, contiguous into P): a (query chunk, key chunk) pair is ``full``
(every key before every query), ``causal`` (the same chunk: the kernel's own causal mask) or
``skip`` (every key after every query), so the GPU kernel is only ever called full or causal.

Transports: :class:`InMemoryTransport` (threads, NumPy; CI) here; NCCL and a single-GPU
multi-stream copy in :mod:`tinyattn.distributed.ring_nccl`.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from .local import merge_lse, partial_attention
from .sharding import shard_indices

__all__ = ["chunk_bounds", "pair_mode", "message_size", "pack_kv", "ring_loop", "NumpyBackend",
           "InMemoryTransport", "run_threaded", "timeline"]


def chunk_bounds(n: int, p: int, layout: str = "zigzag") -> list[list[tuple[int, int]]]:
    """Per rank, its contiguous chunks ``[(start, stop), ...]`` of the N positions.

    ``layout``: "zigzag" (2P chunks, rank r holds chunks r and 2P-1-r) or "contiguous" (P chunks).
    When N is a multiple of the chunk count this is exactly ``sharding.shard_indices``; otherwise
    the chunks are ragged (sizes differ by at most one, as ``np.array_split``).
    """
    if not isinstance(p, (int, np.integer)) or p < 1:
        raise ValueError(f"p (number of ranks) must be a positive int, got {p!r}")
    if layout not in ("zigzag", "contiguous"):
        raise ValueError(f"layout must be 'zigzag' or 'contiguous' (the kernel needs contiguous chunks), "
                         f"got {layout!r}")
    parts = 2 * p if layout == "zigzag" else p
    if not isinstance(n, (int, np.integer)) or n < parts:
        raise ValueError(f"sequence length n must be an int >= {parts} for layout {layout!r} on {p} ranks, got {n!r}")
    if n % parts == 0:                                   # the library's layout, cut into contiguous runs
        runs = [np.split(idx, 2 if layout == "zigzag" else 1) for idx in shard_indices(n, p, layout)]
        return [[(int(r[0]), int(r[-1]) + 1) for r in rs] for rs in runs]
    edges = [int(x[0]) for x in np.array_split(np.arange(n), parts)] + [n]
    ch = [(edges[i], edges[i + 1]) for i in range(parts)]
    return [[ch[r], ch[parts - 1 - r]] if layout == "zigzag" else [ch[r]] for r in range(p)]


def pair_mode(qc: tuple[int, int], kc: tuple[int, int], causal: bool) -> str:
    """'full', 'causal' (same chunk: key j visible to query i iff j <= i) or 'skip'."""
    if not causal or kc[1] <= qc[0]:
        return "full"
    if kc[0] >= qc[1]:
        return "skip"
    if kc == qc:
        return "causal"
    raise ValueError(f"chunks {qc} and {kc} overlap partially; the ring needs identical or disjoint chunks")


def message_size(chunks: list[tuple[int, int]], bh: int, d: int) -> int:
    """Elements of one K/V message: ``2 · BH · d · (tokens in the chunks)``."""
    return 2 * bh * d * sum(b - a for a, b in chunks)


def _views(flat, chunks, bh: int, d: int):
    """[(k (BH, c, d), v (BH, c, d)), ...] views into a flat message (NumPy or CuPy)."""
    out, off = [], 0
    for a, b in chunks:
        n = bh * (b - a) * d
        out.append((flat[off:off + n].reshape(bh, b - a, d), flat[off + n:off + 2 * n].reshape(bh, b - a, d)))
        off += 2 * n
    return out


def pack_kv(k, v, chunks, buf) -> None:
    """Write ``k, v: (BH, N, d)`` restricted to ``chunks`` into the message buffer ``buf`` (flat)."""
    for (kb, vb), (a, b) in zip(_views(buf, chunks, k.shape[0], k.shape[-1]), chunks):
        kb[...] = k[:, a:b]
        vb[...] = v[:, a:b]


def ring_loop(rank: int, chunks, q_chunks, bufs, transport, backend, *, causal: bool, log=None):
    """One rank's ring: ``q_chunks[i]: (BH, c_i, d)``, ``bufs``: two flat buffers (``bufs[0]`` holds
    this rank's own message, both at least the largest message long) -> ``[(o_i, lse_i), ...]``.

    ``transport`` has ``send_recv(send, recv)`` (start moving ``send`` to rank+1 and receiving from
    rank-1 into ``recv``) and ``wait()``; ``None`` skips every transfer (compute-only timing).
    ``backend`` has ``new_acc(q) -> acc``, ``block(acc, q, k, v, causal) -> acc`` and ``finish(acc)``.
    ``log`` (a list) receives one dict per operation, in issue order.
    """
    p = len(chunks)
    bh, d = q_chunks[0].shape[0], q_chunks[0].shape[-1]
    sizes = [message_size(c, bh, d) for c in chunks]
    acc = [backend.new_acc(q) for q in q_chunks]
    cur, owner = 0, rank
    for step in range(p):
        nxt = (owner - 1) % p                                   # owner of the block arriving now
        if step < p - 1 and transport is not None:
            transport.send_recv(bufs[cur][:sizes[owner]], bufs[1 - cur][:sizes[nxt]])
            if log is not None:
                log.append(dict(rank=rank, step=step, op="post", send_buf=cur, recv_buf=1 - cur,
                                owner=owner, recv_owner=nxt, bytes=sizes[owner] * bufs[cur].itemsize))
        work = 0
        for i, qc in enumerate(chunks[rank]):
            for (kb, vb), kc in zip(_views(bufs[cur], chunks[owner], bh, d), chunks[owner]):
                mode = pair_mode(qc, kc, causal)
                if mode != "skip":                              # work = scored (query, key) pairs
                    acc[i] = backend.block(acc[i], q_chunks[i], kb, vb, mode == "causal")
                    work += (qc[1] - qc[0]) * (kc[1] - kc[0]) // (2 if mode == "causal" else 1)
        if log is not None:
            log.append(dict(rank=rank, step=step, op="compute", buf=cur, owner=owner, work=work * bh))
        if step < p - 1 and transport is not None:
            transport.wait()
            if log is not None:
                log.append(dict(rank=rank, step=step, op="wait"))
        if step < p - 1:
            cur, owner = 1 - cur, nxt
    return [backend.finish(a) for a in acc]


class NumpyBackend:
    """Stand-in for the GPU kernel: exact attention of one block (float64 if given float64), causal
    aligned bottom-right like the kernel, merged with the library's :func:`merge_lse`."""

    def __init__(self, scale: float):
        self.scale = scale

    def new_acc(self, q):
        return np.zeros(q.shape, q.dtype), np.full(q.shape[:-1], -np.inf, q.dtype)

    def block(self, acc, q, k, v, causal):
        nq, nk = q.shape[-2], k.shape[-2]
        o_p, lse_p = partial_attention(q, k, v, np.arange(nq) + nk - nq, np.arange(nk), is_causal=causal,
                                       scale=self.scale)
        return merge_lse(*acc, o_p, lse_p)                       # lse rule: o = Σ e^(lse_k - lse) o_k

    def finish(self, acc):
        return acc


class InMemoryTransport:
    """Threaded stand-in for NCCL send/recv among P ranks of one process (one instance per rank).

    Like a real interconnect, a transfer starts as soon as both ends have posted (the second poster
    copies at once, possibly *before* its own compute): a loop that received into the buffer it is
    about to read would compute on the next block and fail the tests. ``wait()`` returns when both
    this rank's outgoing and incoming messages have been copied (NCCL's send completes likewise).
    """

    def __init__(self, shared: dict, rank: int, p: int, timeout: float = 60.0):
        self.shared, self.rank, self.p, self.step, self.timeout = shared, rank, p, 0, timeout
        shared.setdefault("lock", threading.Lock())

    @classmethod
    def group(cls, p: int, **kw) -> list["InMemoryTransport"]:
        shared: dict = {}
        return [cls(shared, r, p, **kw) for r in range(p)]

    def _token(self, arr):               # what a post leaves for the other end (subclasses: + event)
        return arr

    def _copy(self, src, dst):           # move src into dst -> a handle wait() finishes on
        if src.shape != dst.shape:
            raise ValueError(f"message of {src.shape} elements does not fit the receive buffer {dst.shape}")
        np.copyto(dst, src)

    def _finish(self, handle) -> None:
        pass

    def _offer(self, key, role: str, arr) -> None:
        with self.shared["lock"]:
            e = self.shared.setdefault(key, {"done": threading.Event()})
            e[role] = self._token(arr)
            if "send" in e and "recv" in e:
                e["handle"] = self._copy(e["send"], e["recv"])
                e["done"].set()

    def send_recv(self, send, recv) -> None:
        self._out, self._in = (self.rank, self.step), ((self.rank - 1) % self.p, self.step)
        self._offer(self._out, "send", send)
        self._offer(self._in, "recv", recv)

    def wait(self) -> None:
        for key in (self._out, self._in):
            with self.shared["lock"]:
                e = self.shared[key]
            if not e["done"].wait(self.timeout):
                raise RuntimeError(f"rank {self.rank}: message {key} (from rank, step) never arrived")
            self._finish(e["handle"])
        self.step += 1


def run_threaded(q, k, v, p: int, *, causal: bool, layout: str = "zigzag", scale: float | None = None,
                 log: list | None = None, backend=None):
    """Ring attention of ``q, k, v: (BH, N, d)`` on ``p`` threaded ranks -> ``out (BH, N, d)``.

    Every rank runs :func:`ring_loop` with ``backend`` (default :class:`NumpyBackend`, one instance
    per rank made by calling ``backend(scale)``) and :class:`InMemoryTransport`.
    """
    arrs = [np.asarray(x) for x in (q, k, v)]
    for name, x in zip("qkv", arrs):
        if x.ndim != 3 or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{name} must be a floating array of shape (BH, N, d), got {x.dtype} {x.shape}")
    q, k, v = arrs
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"q, k, v must share the shape (BH, N, d), got q {q.shape}, k {k.shape}, v {v.shape}")
    chunks = chunk_bounds(q.shape[1], p, layout)
    bh, n, d = q.shape
    scale = 1 / math.sqrt(d) if scale is None else float(scale)
    size = max(message_size(c, bh, d) for c in chunks)
    transports, out, errors = InMemoryTransport.group(p), np.zeros_like(q), []
    logs = [[] for _ in range(p)]

    def work(r):
        try:
            bufs = [np.zeros(size, q.dtype), np.zeros(size, q.dtype)]
            pack_kv(k, v, chunks[r], bufs[0])
            res = ring_loop(r, chunks, [q[:, a:b] for a, b in chunks[r]], bufs, transports[r],
                            (backend or NumpyBackend)(scale), causal=causal, log=logs[r])
            for (o, _), (a, b) in zip(res, chunks[r]):
                out[:, a:b] = o
        except Exception as exc:          # pragma: no cover - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in range(p)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if log is not None:
        log.extend(e for lg in logs for e in lg)
    return out


def timeline(log: list, rank: int, t_work: float, t_byte: float) -> list[tuple[str, int, float, float]]:
    """Replay one rank's logged schedule on two streams -> ``[(stream, step, start, end), ...]``.

    ``t_work``: seconds per scored (query, key) pair (compute stream); ``t_byte``: seconds per byte
    (comm stream). Rules the CUDA version enforces with events: the transfer posted at step s starts
    when the compute of step s-1 is done (it overwrites the buffer that compute read) and the
    previous transfer is done; the compute of step s+1 starts when step s's transfer is done.
    """
    comp = comm = 0.0                       # each stream's time cursor
    out = []
    for e in (e for e in log if e["rank"] == rank):
        if e["op"] == "post":               # event on the compute stream: everything issued so far
            start = max(comm, comp)
            comm = start + e["bytes"] * t_byte
            out.append(("comm", e["step"], start, comm))
        elif e["op"] == "compute":
            out.append(("compute", e["step"], comp, comp + e["work"] * t_work))
            comp += e["work"] * t_work
        elif e["op"] == "wait":             # compute stream waits for the transfer's event
            comp = max(comp, comm)
    return out
