"""Ring attention on GPUs: one process per GPU, K/V blocks passed with NCCL send/recv (issue 17).

    python -m tinyattn.distributed.ring_nccl --n-gpus 2 --n 65536 --heads 8 --d 128 --causal
    python -m tinyattn.distributed.ring_nccl --single-gpu-check --ranks 2 --n 8192 --causal

Each rank runs :func:`ring_loop.ring_loop` (the loop the CPU tests check) with

- :class:`~.ring_cuda.CupyBackend`: chapter 07's CuPy tensor-core flash kernel (fp16 or bf16, fp32 lse) on the
  compute stream, then the lse merge in fp32 on the GPU (two fused elementwise kernels, the rule of
  :func:`tinyattn.distributed.merge_lse`);
- :class:`~.ring_cuda.NcclTransport`: ``ncclSend``/``ncclRecv`` to the neighbours in one NCCL group on a second
  (comm) stream. An event recorded on the compute stream when the transfer is posted makes the comm
  stream wait until the compute that read the receive buffer is done; an event recorded after the
  transfer makes the next compute wait for the block. So step s+1's transfer overlaps step s's compute.
- :class:`~.ring_cuda.StreamCopyTransport` (``--single-gpu-check``): P virtual ranks as threads on one GPU,
  the transfer a device-to-device copy on a comm stream with the same events (tests the stream logic).

The launcher spawns one process per GPU (multiprocessing "spawn"); rank 0 creates the NCCL unique id
and hands it to the others. ``NCCL_NVLS_ENABLE=0`` keeps NVLink multicast off. Every rank checks
sampled rows of its output against a float64 reference on its GPU; exit status 0 iff all match.
Needs CuPy with NCCL (``cupy.cuda.nccl``) and CUDA GPUs; nothing here is imported by ``tinyattn``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import traceback

from .ring_cuda import TOL
from .ring_loop import chunk_bounds

HEAD_DIMS = (64, 128)


def _child(rank, p, device, fn, args, uid_q, res_q, barrier):
    """Body of one spawned process: pick the GPU, share the NCCL id, run ``fn(rank, p, uid, barrier, *args)``."""
    os.environ["NCCL_NVLS_ENABLE"] = "0"
    try:
        import cupy as cp
        from cupy.cuda import nccl
        cp.cuda.Device(device).use()
        if rank == 0:
            uid = nccl.get_unique_id()
            for _ in range(p - 1):
                uid_q.put(uid)
        else:
            uid = uid_q.get(timeout=120)
        res_q.put((rank, True, fn(rank, p, uid, barrier, *args)))
    except BaseException:                                        # report, never hang the launcher
        res_q.put((rank, False, traceback.format_exc()))


def spawn(p: int, fn, args=(), devices=None, timeout: float = 600.0) -> list:
    """Run ``fn(rank, p, uid, barrier, *args)`` in one spawned process per GPU -> results by rank.
    Raises :class:`RankFailure` (a RuntimeError) with every failing or silent rank's traceback."""
    import multiprocessing as mp
    os.environ["NCCL_NVLS_ENABLE"] = "0"                         # NVLink multicast stays off
    ctx = mp.get_context("spawn")
    uid_q, res_q, barrier = ctx.Queue(), ctx.Queue(), ctx.Barrier(p)
    devices = list(range(p)) if devices is None else devices
    procs = [ctx.Process(target=_child, args=(r, p, devices[r], fn, args, uid_q, res_q, barrier)) for r in range(p)]
    for pr in procs:
        pr.start()
    out, deadline = {}, time.time() + timeout
    try:
        while len(out) < p:
            rank, ok, val = res_q.get(timeout=max(1.0, deadline - time.time()))
            out[rank] = (ok, val)
    except Exception as exc:
        late = {r: f"TimeoutError: rank {r} gave no result within {timeout} s" for r in range(p) if r not in out}
        raise RankFailure({**{r: v for r, (ok, v) in out.items() if not ok}, **late}) from exc
    finally:
        for pr in procs:
            pr.join(timeout=min(10.0, timeout / 4))
            if pr.is_alive():
                pr.terminate()
    bad = {r: v for r, (ok, v) in out.items() if not ok}
    if bad:
        raise RankFailure(bad)
    return [out[r][1] for r in range(p)]


class RankFailure(RuntimeError):
    """What :func:`spawn` raises: ``failures`` maps every failing rank to its traceback text (or a
    one-line timeout message); ``str()`` is ``"rank r failed:\\n<traceback>"`` for each, in rank order."""

    def __init__(self, failures: dict):
        self.failures = dict(sorted(failures.items()))
        super().__init__("\n".join(f"rank {r} failed:\n{tb}" for r, tb in self.failures.items()))


def error_line(tb: str, limit: int = 160) -> str:
    """The exception line of a traceback text (its last non-blank line), the class named without its
    module path and the line cut at ``limit`` characters, *at the end*:
    ``"...\\ncupy_backends.cuda.libs.nccl.NcclError: NCCL_ERROR_INVALID_USAGE: ..."``
    -> ``"NcclError: NCCL_ERROR_INVALID_USAGE: ..."``."""
    lines = [ln.strip() for ln in str(tb).splitlines() if ln.strip()]
    last = lines[-1] if lines else "(empty traceback)"
    name, sep, msg = last.partition(": ")
    if sep and " " not in name:                                  # a dotted class name, not prose
        last = f"{name.rsplit('.', 1)[-1]}: {msg}"
    return last if len(last) <= limit else last[:limit - 1] + "…"


def _check_worker(rank, p, uid, barrier, cfg):
    """One NCCL rank of the CLI run: ring once, check sampled rows, time one more ring."""
    from . import ring_cuda as G
    (q, k, v), exact = G.make_inputs(cfg["n"], cfg["bh"], cfg["d"], cfg["dtype"], cfg["seed"])
    r = G.nccl_rank(rank, p, G.nccl_comm(rank, p, uid), q, k, v, dtype=cfg["dtype"], layout=cfg["layout"], causal=cfg["causal"])
    res = r.run("ring")
    r.compute.synchronize()
    out = r.check(res, q, k, v, exact, cfg["rows"], cfg["seed"])
    out["ring_s"] = G.timed(r, "ring", barrier)
    return out


def _probe_worker(rank, p, uid, barrier):
    """Create an NCCL communicator (two ranks may share one GPU here) and exchange 1 MiB once."""
    import cupy as cp
    from cupy.cuda import nccl
    from . import ring_cuda as G
    comm = nccl.NcclCommunicator(p, uid, rank)
    x, y = cp.full(1 << 18, rank + 1, cp.float32), cp.zeros(1 << 18, cp.float32)   # 0 = nothing arrived
    s = cp.cuda.Stream(non_blocking=True)
    cp.cuda.Device().synchronize()
    t = G.NcclTransport(comm, rank, p, s, s)
    t.send_recv(x, y)
    t.wait()
    s.synchronize()
    return {"created": True, "received_from": float(y[0])}


def _threads(fns) -> list:
    """Run callables in parallel threads (virtual ranks); re-raise the first failure."""
    res, errs = [None] * len(fns), []

    def work(i):
        try:
            res[i] = fns[i]()
        except BaseException:
            errs.append(traceback.format_exc())
    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise RuntimeError(errs[0])
    return res


def time_modes(ranks: list, repeats: int, timed) -> dict:
    """One warm-up ring, then ``repeats`` rounds of ring, compute, comm (interleaved); a round's time
    is the slowest rank's ``timed(rank, mode, barrier)``, all ranks in parallel threads ->
    ``{"ring_s": median, "ring_samples_s": [...], "compute_s": ..., ...}`` (seconds)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    barrier = threading.Barrier(len(ranks))

    def one(mode):
        return max(_threads([lambda r=r: timed(r, mode, barrier) for r in ranks]))
    one("ring")                                                   # warm-up, not recorded
    samples = {m: [] for m in ("ring", "compute", "comm")}
    for _ in range(repeats):
        for m in samples:
            samples[m].append(one(m))
    out = {}
    for m, xs in samples.items():
        out[f"{m}_s"], out[f"{m}_samples_s"] = statistics.median(xs), xs
    return out


def single_gpu_check(cfg: dict, probe: bool = True) -> dict:
    """P virtual ranks on the current GPU (stream-copy transport): correctness of every rank's
    sampled rows vs float64, wall times of ring / compute-only / comm-only (median of
    ``cfg["repeats"]`` interleaved rounds, default 1, see :func:`time_modes`), and whether NCCL can
    create a communicator with two processes on this one GPU (``probe``)."""
    import cupy as cp
    from . import ring_cuda as G
    from ..gpu.cupy_flash import get_kernel
    p = cfg["ranks"]
    get_kernel(G.DTYPES[cfg["dtype"]], cfg["d"])          # compile once, before the threads
    G._merge_kernels(G.DTYPES[cfg["dtype"]])
    (q, k, v), exact = G.make_inputs(cfg["n"], cfg["bh"], cfg["d"], cfg["dtype"], cfg["seed"])
    ranks = G.virtual_ranks(p, q, k, v, dtype=cfg["dtype"], layout=cfg["layout"], causal=cfg["causal"])
    results = _threads([lambda r=r: r.run("ring") for r in ranks])
    cp.cuda.Device().synchronize()
    out = {"mode": "single_gpu_check", "virtual_ranks": p,
           "merge_vs_library_max_err": G.merge_check(G.DTYPES[cfg["dtype"]], cfg["seed"]),
           "checks": [r.check(res, q, k, v, exact, cfg["rows"], cfg["seed"]) for r, res in zip(ranks, results)]}
    out.update(time_modes(ranks, int(cfg.get("repeats", 1)), G.timed))
    if probe:
        out["nccl_probe"] = nccl_probe()
    return out


def nccl_probe(timeout: float = 20.0) -> str:
    """Two processes on GPU 0 try to create one NCCL communicator and exchange 1 MiB -> one short
    line: ``"ok: ..."``, ``"wrong data: ..."`` or ``"failed on ranks 0, 1: NcclError: NCCL_ERROR_..."``
    (each distinct error line once, with the ranks that raised it)."""
    try:
        res = spawn(2, _probe_worker, devices=[0, 0], timeout=timeout)
    except RankFailure as exc:
        groups: dict = {}
        for r, tb in exc.failures.items():
            groups.setdefault(error_line(tb), []).append(r)
        return "; ".join(f"failed on rank{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))}: {line}"
                         for line, rs in groups.items())
    except Exception as exc:                                     # the launcher itself failed
        return f"failed: {error_line(f'{type(exc).__name__}: {exc}')}"
    got = [float(r["received_from"]) for r in res]
    want = [float((r - 1) % 2 + 1) for r in range(2)]           # rank r gets rank r-1's fill value (r-1)%2+1
    if got == want:
        return "ok: two ranks on one GPU created a communicator and exchanged 1 MiB"
    return f"wrong data: ranks 0, 1 received the fill values {got}, expected {want}"


def visible_gpus() -> int:
    """Number of CUDA devices CuPy sees (0 without CuPy or a driver)."""
    try:
        import cupy as cp
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def parse_args(argv=None) -> argparse.Namespace:
    """Parse and check the launcher's arguments; bad values raise ValueError naming the option."""
    ap = argparse.ArgumentParser(prog="python -m tinyattn.distributed.ring_nccl",
                                 description="Ring attention over GPUs with NCCL (one process per GPU).")
    ap.add_argument("--n-gpus", type=int, default=2, help="ranks = GPUs (>= 2)")
    ap.add_argument("--single-gpu-check", action="store_true",
                    help="no NCCL ring: --ranks virtual ranks on GPU 0 (stream copies) + an NCCL probe")
    ap.add_argument("--ranks", type=int, default=2, help="virtual ranks for --single-gpu-check")
    ap.add_argument("--no-nccl-probe", action="store_true", help="--single-gpu-check without the NCCL probe")
    ap.add_argument("--n", type=int, default=65536, help="sequence length N")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--d", type=int, default=128, help="head dimension (64 or 128)")
    ap.add_argument("--dtype", choices=sorted(("float16", "bfloat16")), default="float16")
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--layout", choices=["zigzag", "contiguous"], default="zigzag")
    ap.add_argument("--rows", type=int, default=32, help="sampled output rows checked per rank")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the per-rank results here")
    a = ap.parse_args(argv)
    if not a.single_gpu_check and a.n_gpus < 2:
        raise ValueError(f"--n-gpus must be >= 2 (got {a.n_gpus}); use --single-gpu-check on one GPU")
    if a.ranks < 1:
        raise ValueError(f"--ranks must be >= 1, got {a.ranks}")
    if a.d not in HEAD_DIMS:
        raise ValueError(f"--d must be one of {HEAD_DIMS} (the kernel's head dims), got {a.d}")
    for name in ("batch", "heads", "rows"):
        if getattr(a, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(a, name)}")
    chunk_bounds(a.n, a.ranks if a.single_gpu_check else a.n_gpus, a.layout)    # raises for a too-short --n
    return a


def main(argv=None) -> int:
    try:
        a = parse_args(argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = dict(n=a.n, bh=a.batch * a.heads, d=a.d, dtype=a.dtype, causal=a.causal, layout=a.layout,
               rows=a.rows, seed=a.seed, ranks=a.ranks)
    have = visible_gpus()
    need = 1 if a.single_gpu_check else a.n_gpus
    if have < need:
        print(f"error: {'--single-gpu-check' if a.single_gpu_check else f'--n-gpus {a.n_gpus}'} needs {need} "
              f"visible CUDA GPU(s), found {have}", file=sys.stderr)
        return 2
    if a.single_gpu_check:
        res = single_gpu_check(cfg, probe=not a.no_nccl_probe)
        checks = res["checks"]
        print(f"ring ms {res['ring_s'] * 1e3:.2f}, compute-only {res['compute_s'] * 1e3:.2f}, "
              f"comm-only {res['comm_s'] * 1e3:.2f}; merge vs merge_lse {res['merge_vs_library_max_err']:.1e}; "
              f"NCCL probe: {res.get('nccl_probe', 'not run')}")
    else:
        checks = spawn(a.n_gpus, _check_worker, (cfg,))
        res = {"mode": "nccl", "n_gpus": a.n_gpus, "checks": checks}
    for r, c in enumerate(checks):
        print(f"rank {r}: {c['rows_checked']} rows, rel err {c['rel_err']:.2e} (tol {TOL[a.dtype]:.0e}), "
              f"max abs {c['max_abs_err']:.2e}" + (f", ring {c['ring_s'] * 1e3:.2f} ms" if "ring_s" in c else ""))
    ok = all(c["ok"] for c in checks)
    print(f"ring N={a.n} d={a.d} {a.dtype} causal={a.causal} layout={a.layout}: {'OK' if ok else 'MISMATCH'}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump({"config": cfg, **res}, fh, indent=1, default=str)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
