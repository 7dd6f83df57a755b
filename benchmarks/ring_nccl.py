"""Ring attention over P GPUs with NCCL: per-GPU TFLOP/s against the single-GPU kernel, achieved
link bandwidth, hidden communication, and correctness at every size (issue 17).

    python benchmarks/ring_nccl.py --n-gpus 2 [--sizes 32768 65536 131072 262144] [--repeats 5]
    python benchmarks/ring_nccl.py --single-gpu-check [--ranks 2] [--sizes 8192]

Per (N, causal) every rank (one process per GPU, :mod:`tinyattn.distributed.ring_nccl`) times,
interleaved within each repeat, after a barrier and up to the end of its GPU work:

- ``ring``: the ring (compute + NCCL transfers, double-buffered on two streams);
- ``compute``: the same kernel and merge calls with no transfers;
- ``comm``: the same transfers with no attention;
- ``single``: the chapter-07 kernel alone on this GPU with the ring's per-GPU work as one call:
  non-causal ``q (BH, N/P, d)`` against ``k, v (BH, N, d)`` (exactly the ring's work); causal, a
  causal self-attention of length ``N/sqrt(P)`` rounded to 128 (the same count, ``N^2/(2P)`` pairs).

Each repeat's time is the slowest rank's; the table keeps the median over repeats. FLOPs per GPU =
``4·BH·N²·d / P`` (halved when causal, the convention of gpu_flash.py). Definitions:
``per_gpu_tflops = flops per GPU / ring time``, ``single_gpu_tflops`` the baseline's rate,
``link_GBps = bytes each rank sends / comm-only time``, ``hidden_comm_fraction = 1 - (ring - compute)
/ comm`` clipped to [0, 1] (1: the transfers cost nothing on top of compute). Correctness: sampled
output rows of every rank against float64 attention on the GPU, at every size.
Refuses to run (exit 2) with fewer than 2 visible GPUs unless ``--single-gpu-check`` is given, which
runs P virtual ranks on one GPU with device-copy transport (stream/event logic, correctness) and
probes whether NCCL accepts two ranks on one GPU; it writes ``ring_nccl_single_gpu_check.json``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyattn.distributed import ring_nccl as RN  # noqa: E402
from tinyattn.distributed.ring_loop import message_size  # noqa: E402

MODES = ("ring", "compute", "comm", "single")


def flops(bh: int, nq: int, nk: int, d: int, causal: bool) -> float:
    """4·BH·Nq·Nk·d, halved when causal."""
    return 4.0 * bh * nq * nk * d / (2 if causal else 1)


def _bench_worker(rank, p, uid, barrier, cfg):
    """One rank: for every (N, causal), check once, then time MODES interleaved ``repeats`` times."""
    import cupy as cp
    from tinyattn.distributed import ring_cuda as G
    from tinyattn.gpu.cupy_flash import launch
    comm = G.nccl_comm(rank, p, uid)
    out = []
    for n in cfg["sizes"]:
        for causal in cfg["causal"]:
            (q, k, v), exact = G.make_inputs(n, cfg["bh"], cfg["d"], cfg["dtype"], cfg["seed"])
            r = G.nccl_rank(rank, p, comm, q, k, v, dtype=cfg["dtype"], layout="zigzag", causal=causal)
            res = r.run("ring")
            cp.cuda.Device().synchronize()
            check = r.check(res, q, k, v, exact, cfg["rows"], cfg["seed"])
            del res
            ns = n // p if not causal else max(128, round(n / math.sqrt(p) / 128) * 128)
            with r.compute:
                qs = cp.ascontiguousarray(q[:, :ns])
                kv = (k, v) if not causal else (cp.ascontiguousarray(k[:, :ns]), cp.ascontiguousarray(v[:, :ns]))
                os_, lse = cp.empty_like(qs), cp.empty(qs.shape[:-1], cp.float32)
            kind = G.DTYPES[cfg["dtype"]]

            class Single:                       # the baseline, timed like a ring mode
                compute, comm = r.compute, r.comm

                @staticmethod
                def run(_mode):
                    with r.compute:
                        launch(qs, *kv, os_, kind, lse, is_causal=causal)
            times = {m: [] for m in MODES}
            for m in MODES:                     # warm-up
                G.timed(Single if m == "single" else r, m, barrier)
            for _ in range(cfg["repeats"]):
                for m in MODES:
                    times[m].append(G.timed(Single if m == "single" else r, m, barrier))
            sent = sum(message_size(r.chunks[(rank - s) % p], cfg["bh"], cfg["d"]) * 2 for s in range(p - 1))
            out.append({"N": n, "causal": causal, "times": times, "check": check, "bytes_sent": sent,
                        "single_flops": flops(cfg["bh"], ns, n if not causal else ns, cfg["d"], causal)})
            del r, q, k, v, qs, kv, os_, lse, Single
            cp.get_default_memory_pool().free_all_blocks()
    return out


def summarize(per_rank: list, cfg: dict, p: int) -> list[dict]:
    """Slowest rank per repeat, median over repeats, and the derived rates."""
    rows = []
    for i, first in enumerate(per_rank[0]):
        n, causal = first["N"], first["causal"]
        med = {m: statistics.median(max(pr[i]["times"][m][j] for pr in per_rank)
                                    for j in range(cfg["repeats"])) for m in MODES}
        f_gpu = flops(cfg["bh"], n, n, cfg["d"], causal) / p
        sent = max(pr[i]["bytes_sent"] for pr in per_rank)
        hidden = 1 - (med["ring"] - med["compute"]) / med["comm"] if med["comm"] > 0 else None
        checks = [pr[i]["check"] for pr in per_rank]
        rows.append({"impl": "ring_nccl", "n_gpus": p, "N": n, "d": cfg["d"], "heads": cfg["heads"],
                     "batch": cfg["batch"], "causal": causal, "dtype": cfg["dtype"], "layout": "zigzag",
                     "ring_ms": med["ring"] * 1e3, "compute_only_ms": med["compute"] * 1e3,
                     "comm_only_ms": med["comm"] * 1e3, "single_gpu_ms": med["single"] * 1e3,
                     "per_gpu_tflops": f_gpu / med["ring"] / 1e12,
                     "compute_only_tflops": f_gpu / med["compute"] / 1e12,
                     "single_gpu_tflops": first["single_flops"] / med["single"] / 1e12,
                     "link_GBps": sent / med["comm"] / 1e9 if med["comm"] > 0 else None,
                     "bytes_sent_per_rank": sent,
                     "hidden_comm_fraction": None if hidden is None else min(1.0, max(0.0, hidden)),
                     "max_rel_err": max(c["rel_err"] for c in checks), "rows_checked_per_rank": checks[0]["rows_checked"],
                     "ok": all(c["ok"] for c in checks)})
        rows[-1]["ratio_vs_single"] = rows[-1]["per_gpu_tflops"] / rows[-1]["single_gpu_tflops"]
    return rows


def environment() -> dict:
    import cupy as cp
    try:
        from cupy.cuda import nccl
        nccl_version = nccl.get_version()
    except Exception as exc:                                   # CuPy without a usable NCCL
        nccl_version = f"unavailable: {type(exc).__name__}: {exc}"
    props = cp.cuda.runtime.getDeviceProperties(0)
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"gpu": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
                        "visible_gpus": RN.visible_gpus(), "platform": platform.platform(),
                        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()]},
            "versions": {"python": platform.python_version(), "cupy": cp.__version__,
                         "nccl": nccl_version,
                         "cuda_runtime": cp.cuda.runtime.runtimeGetVersion()},
            "env": {"NCCL_NVLS_ENABLE": os.environ.get("NCCL_NVLS_ENABLE")}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-gpus", type=int, default=2)
    ap.add_argument("--single-gpu-check", action="store_true")
    ap.add_argument("--ranks", type=int, default=2, help="virtual ranks for --single-gpu-check")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--d", type=int, default=128, choices=RN.HEAD_DIMS)
    ap.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    os.environ["NCCL_NVLS_ENABLE"] = "0"                      # NVLink multicast stays off (device README)
    have = RN.visible_gpus()
    if not a.single_gpu_check and (a.n_gpus < 2 or have < a.n_gpus):
        print(f"error: ring_nccl needs --n-gpus >= 2 visible GPUs (asked {a.n_gpus}, visible {have}); "
              f"on one GPU run with --single-gpu-check", file=sys.stderr)
        return 2
    if a.single_gpu_check and have < 1:
        print("error: --single-gpu-check needs one visible CUDA GPU, found none", file=sys.stderr)
        return 2
    cfg = dict(bh=a.batch * a.heads, batch=a.batch, heads=a.heads, d=a.d, dtype=a.dtype, repeats=a.repeats,
               rows=a.rows, seed=a.seed, causal=[False, True])
    res_dir = ROOT / "benchmarks" / "results"
    if a.single_gpu_check:
        runs = []
        for n in a.sizes or [8192]:
            for c in (False, True):
                runs.append(RN.single_gpu_check(dict(cfg, n=n, causal=c, layout="zigzag", ranks=a.ranks), probe=False)
                            | {"N": n, "causal": c})
                print(f"N={n} causal={c}: checked and timed", flush=True)
        doc = {**environment(), "mode": "single_gpu_check", "config": cfg, "runs": runs}
        out = Path(a.out or res_dir / "ring_nccl_single_gpu_check.json")
        out.write_text(json.dumps(doc, indent=1, default=str))
        doc["nccl_probe_two_ranks_one_gpu"] = RN.nccl_probe()
        out.write_text(json.dumps(doc, indent=1, default=str))
        for r in runs:
            print(f"N={r['N']:>7} causal={str(r['causal']):5} ranks={r['virtual_ranks']} ring {r['ring_s'] * 1e3:8.2f} ms "
                  f"compute-only {r['compute_s'] * 1e3:8.2f} comm-only {r['comm_s'] * 1e3:7.2f}  rel err "
                  f"{max(c['rel_err'] for c in r['checks']):.1e} {'OK' if all(c['ok'] for c in r['checks']) else 'MISMATCH'}")
        print(f"GPU lse merge vs library merge_lse (float64): max error {max(r['merge_vs_library_max_err'] for r in runs):.1e}")
        print("NCCL, two ranks on one GPU:", doc["nccl_probe_two_ranks_one_gpu"])
        return 0 if all(c["ok"] for r in runs for c in r["checks"]) else 1
    cfg["sizes"] = a.sizes or [32768, 65536, 131072, 262144]
    per_rank = RN.spawn(a.n_gpus, _bench_worker, (cfg,), timeout=3600)
    rows = summarize(per_rank, cfg, a.n_gpus)
    doc = {**environment(), "config": cfg, "timing": "median over repeats of the slowest rank; modes interleaved",
           "definitions": __doc__.split("Definitions:")[1].split("Refuses")[0].strip(), "results": rows}
    Path(a.out or res_dir / "ring_nccl.json").write_text(json.dumps(doc, indent=1))
    print(f"{'N':>7} {'causal':6} {'ring ms':>8} {'TF/GPU':>7} {'single':>7} {'ratio':>6} {'GB/s':>6} {'hidden':>6} err")
    for r in rows:
        print(f"{r['N']:>7} {str(r['causal']):6} {r['ring_ms']:8.2f} {r['per_gpu_tflops']:7.1f} "
              f"{r['single_gpu_tflops']:7.1f} {r['ratio_vs_single']:6.3f} {r['link_GBps'] or 0:6.0f} "
              f"{r['hidden_comm_fraction'] or 0:6.3f} {r['max_rel_err']:.1e} {'OK' if r['ok'] else 'MISMATCH'}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
