"""Ring attention and Ulysses on real processes with MPI (mpi4py), checked against dense attention.

    mpiexec -n 4 python -m tinyattn.distributed.ring --n 1024 --causal --layout zigzag
    mpiexec -n 4 python -m tinyattn.distributed.ring --algo ulysses --heads 8

Every rank builds the same seeded q, k, v (a real job would load only its shard) and keeps only its
shard. Ring: for P steps each rank attends to the K/V block it holds, merges with the log-sum-exp
rule and passes the block on; with the default non-blocking mode the next block's ``Isend``/``Irecv``
are posted *before* the compute, so the transfer hides behind it (``--blocking`` sends after the
compute with ``Sendrecv``, for comparison). Rank 0 gathers the output, compares it with a float64
dense reference, prints one line per rank (compute and communication time) and the verdict; the
exit status is 0 on every rank iff the result matches (so ``mpiexec``'s status is the verdict).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from .local import block_visible, merge_lse, partial_attention
from .sharding import LAYOUTS, shard_indices


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:   # pragma: no cover - depends on the environment
        raise ImportError("tinyattn.distributed.ring needs mpi4py and an MPI library: "
                          "pip install mpi4py mpich (both are in the course's dependencies)") from exc
    return MPI


def ring_mpi(comm, q, k, v, shards, *, is_causal: bool, scale: float, blocking: bool = False):
    """One rank's ring attention: ``q`` (..., n, d) and ``k``/``v`` its shards -> (o, lse, timings)."""
    p, r = comm.Get_size(), comm.Get_rank()
    kv = np.ascontiguousarray(np.concatenate([k, v], axis=-1))      # one message per step: [K | V]
    d = k.shape[-1]
    o = np.zeros(q.shape[:-1] + (v.shape[-1],), q.dtype)
    lse = np.full(q.shape[:-1], -np.inf, q.dtype)
    owner, t_compute, t_comm = r, 0.0, 0.0
    nxt, prv = (r + 1) % p, (r - 1) % p
    for step in range(p):
        last = step == p - 1
        if not last and not blocking:                                 # post the next transfer first
            incoming = np.empty_like(kv)
            reqs = [comm.Irecv(incoming, source=prv, tag=step), comm.Isend(kv, dest=nxt, tag=step)]
        t0 = time.perf_counter()
        if block_visible(shards[r], shards[owner], is_causal):        # skip blocks of future keys only
            kb, vb = kv[..., :d], kv[..., d:]
            g = q.shape[-3] // kb.shape[-3]
            if g > 1:                                                 # GQA: query head i uses K/V head i // g
                kb, vb = np.repeat(kb, g, axis=-3), np.repeat(vb, g, axis=-3)
            o_p, lse_p = partial_attention(q, kb, vb, shards[r], shards[owner], is_causal=is_causal,
                                           scale=scale)
            o, lse = merge_lse(o, lse, o_p, lse_p)
        t_compute += time.perf_counter() - t0
        if not last:
            t0 = time.perf_counter()
            if blocking:
                incoming = np.empty_like(kv)
                comm.Sendrecv(kv, dest=nxt, sendtag=step, recvbuf=incoming, source=prv, recvtag=step)
            else:
                _mpi().Request.Waitall(reqs)                          # only the part not hidden by compute
            t_comm += time.perf_counter() - t0
            kv, owner = incoming, (owner - 1) % p
    return o, lse, {"compute_s": t_compute, "comm_s": t_comm}


def ulysses_mpi(comm, q, k, v, *, is_causal: bool, scale: float):
    """One rank's Ulysses attention on contiguous sequence shards (..., H, n, d) -> (o, timings)."""
    p = comm.Get_size()
    t_comm = 0.0

    def all_to_all(x, forward: bool):
        nonlocal t_comm
        t0 = time.perf_counter()
        if forward:     # (B, H, n, e): send head group j to rank j, receive every rank's tokens
            h = x.shape[-3]
            send = np.ascontiguousarray(np.stack(np.split(x, p, axis=-3)))          # (P, B, H/P, n, e)
            recv = np.empty_like(send)
            comm.Alltoall(send, recv)
            out = np.concatenate(list(recv), axis=-2)                              # (B, H/P, N, e)
            assert out.shape[-3] == h // p
        else:           # (B, H/P, N, e): send token shard j to rank j, receive every rank's heads
            send = np.ascontiguousarray(np.stack(np.split(x, p, axis=-2)))          # (P, B, H/P, n, e)
            recv = np.empty_like(send)
            comm.Alltoall(send, recv)
            out = np.concatenate(list(recv), axis=-3)                              # (B, H, n, e)
        t_comm += time.perf_counter() - t0
        return out

    qh, kh, vh = (all_to_all(x, True) for x in (q, k, v))
    t0 = time.perf_counter()
    g = qh.shape[-3] // kh.shape[-3]
    if g > 1:
        kh, vh = np.repeat(kh, g, axis=-3), np.repeat(vh, g, axis=-3)
    pos = np.arange(qh.shape[-2])
    oh, _ = partial_attention(qh, kh, vh, pos, pos, is_causal=is_causal, scale=scale)
    t_compute = time.perf_counter() - t0
    return all_to_all(oh, False), {"compute_s": t_compute, "comm_s": t_comm}


def _dense(q, k, v, is_causal, scale):
    """Plain float64 softmax(q kᵀ · scale) v on the whole sequence (independent of the ring code)."""
    g = q.shape[-3] // k.shape[-3]
    k, v = np.repeat(k, g, axis=-3), np.repeat(v, g, axis=-3)
    s = q @ np.swapaxes(k, -1, -2) * scale
    if is_causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tinyattn.distributed.ring", description=__doc__.splitlines()[0])
    ap.add_argument("--algo", choices=["ring", "ulysses"], default="ring")
    ap.add_argument("--n", type=int, default=256, help="sequence length N")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=4, help="query heads")
    ap.add_argument("--kv-heads", type=int, default=None, help="K/V heads (GQA); default = --heads")
    ap.add_argument("--d", type=int, default=32, help="head dimension")
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--layout", choices=LAYOUTS, default="contiguous", help="ring only")
    ap.add_argument("--blocking", action="store_true", help="ring: send after compute (no overlap)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="rank 0 writes the timings and the error here")
    args = ap.parse_args(argv)
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    p, r = comm.Get_size(), comm.Get_rank()
    hkv = args.kv_heads or args.heads
    try:
        if args.heads % hkv:
            raise ValueError(f"--heads ({args.heads}) must be a multiple of --kv-heads ({hkv})")
        layout = args.layout if args.algo == "ring" else "contiguous"
        if args.algo == "ulysses" and (args.heads % p or hkv % p):
            raise ValueError(f"Ulysses needs --heads ({args.heads}) and K/V heads ({hkv}) divisible by "
                             f"the number of ranks ({p})")
        shards = shard_indices(args.n, p, layout)
    except ValueError as exc:
        if r == 0:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    dt = np.dtype(args.dtype)
    q = rng.standard_normal((args.batch, args.heads, args.n, args.d)).astype(dt)
    k = rng.standard_normal((args.batch, hkv, args.n, args.d)).astype(dt)
    v = rng.standard_normal((args.batch, hkv, args.n, args.d)).astype(dt)
    scale = 1 / math.sqrt(args.d)
    mine = shards[r]
    comm.Barrier()
    t0 = time.perf_counter()
    if args.algo == "ring":
        o, _, times = ring_mpi(comm, q[..., mine, :], k[..., mine, :], v[..., mine, :], shards,
                               is_causal=args.causal, scale=scale, blocking=args.blocking)
    else:
        o, times = ulysses_mpi(comm, q[..., mine, :], k[..., mine, :], v[..., mine, :],
                               is_causal=args.causal, scale=scale)
    times["wall_s"] = time.perf_counter() - t0
    gathered = comm.gather(o, root=0)
    all_times = comm.gather(times, root=0)
    ok = True
    if r == 0:
        out = np.empty(q.shape[:-1] + (args.d,), dt)
        for rank, piece in enumerate(gathered):
            out[..., shards[rank], :] = piece
        ref = _dense(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), args.causal, scale)
        err = float(np.abs(out - ref).max())
        tol = 1e-10 if dt == np.float64 else 1e-4
        ok = err <= tol
        for rank, t in enumerate(all_times):
            print(f"rank {rank}: compute {t['compute_s'] * 1e3:8.2f} ms  waiting for messages "
                  f"{t['comm_s'] * 1e3:8.2f} ms  wall {t['wall_s'] * 1e3:8.2f} ms")
        print(f"{args.algo} on {p} ranks, N={args.n}, causal={args.causal}, layout={layout}: "
              f"max |out - dense| = {err:.2e} (tol {tol:.0e}) -> {'OK' if ok else 'MISMATCH'}")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump({"algo": args.algo, "ranks": p, "N": args.n, "causal": args.causal,
                           "layout": layout, "blocking": args.blocking, "max_abs_err": err,
                           "ok": ok, "per_rank": all_times}, fh, indent=1)
    ok = comm.bcast(ok, root=0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
