"""Ring attention and Ulysses on MPI: time, overlap and correctness against the number of ranks.

For each configuration the script launches ``mpiexec -n P python -m tinyattn.distributed.ring``
(every rank one BLAS thread), ``--repeats`` times, interleaving configurations within a repeat so
machine load hits them alike, and keeps the median wall time of the slowest rank. Overlap: the same
ring run with ``--blocking`` (send after compute) gives the communication time ``c_b``; the
non-blocking run's time spent waiting for messages ``c_nb`` is what compute did not hide, so
``hidden = 1 - c_nb / c_b`` (clipped to [0, 1]).

On one 2-core machine, ranks beyond 2 share cores: the numbers show the algorithms' bookkeeping
and correctness at every rank count, not a cluster's speed-up.

    python benchmarks/ring_mpi.py [--n 2048] [--d 64] [--heads 4] [--ranks 1 2 4] [--repeats 3]
writes benchmarks/results/ring_mpi.json and prints a table.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(ranks: int, args: list[str]) -> dict:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(ranks), sys.executable, "-m",
               "tinyattn.distributed.ring", "--json", str(out), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
        return json.loads(out.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ring_mpi.json"))
    a = ap.parse_args()
    base = ["--n", str(a.n), "--d", str(a.d), "--heads", str(a.heads), "--dtype", "float32"]
    configs = []
    for p in a.ranks:
        for causal in (False, True):
            c = ["--causal"] if causal else []
            configs.append((p, "ring", "contiguous", causal, False, base + c))
            configs.append((p, "ring", "contiguous", causal, True, base + c + ["--blocking"]))
            if causal:
                configs.append((p, "ring", "zigzag", causal, False, base + c + ["--layout", "zigzag"]))
            if a.heads % p == 0:
                configs.append((p, "ulysses", "contiguous", causal, False, base + c + ["--algo", "ulysses"]))
    load_before = os.getloadavg()
    runs = {i: [] for i in range(len(configs))}
    for rep in range(a.repeats):
        for i, (p, algo, layout, causal, blocking, args) in enumerate(configs):
            runs[i].append(run(p, args))
            print(f"repeat {rep + 1}/{a.repeats}: {algo} P={p} {layout} causal={causal} blocking={blocking}",
                  file=sys.stderr, flush=True)
    results = []
    for i, (p, algo, layout, causal, blocking, _) in enumerate(configs):
        rs = runs[i]
        wall = statistics.median(max(t["wall_s"] for t in r["per_rank"]) for r in rs)
        comp = statistics.median(max(t["compute_s"] for t in r["per_rank"]) for r in rs)
        comm = statistics.median(max(t["comm_s"] for t in r["per_rank"]) for r in rs)
        results.append({"algo": algo, "ranks": p, "layout": layout, "causal": causal, "blocking": blocking,
                        "N": a.n, "d": a.d, "heads": a.heads, "wall_ms": wall * 1e3, "compute_ms": comp * 1e3,
                        "comm_ms": comm * 1e3, "max_abs_err": max(r["max_abs_err"] for r in rs),
                        "ok": all(r["ok"] for r in rs)})
    for r in results:                                     # hidden fraction: non-blocking vs blocking pair
        if r["algo"] == "ring" and not r["blocking"] and r["layout"] == "contiguous":
            b = next(x for x in results if x["algo"] == "ring" and x["blocking"] and x["ranks"] == r["ranks"]
                     and x["causal"] == r["causal"])
            r["hidden_comm_fraction"] = (min(1.0, max(0.0, 1 - r["comm_ms"] / b["comm_ms"]))
                                         if b["comm_ms"] > 0 else None)
    import numpy
    doc = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
                       "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()]},
           "versions": {"python": platform.python_version(), "numpy": numpy.__version__},
           "config": {"dtype": "float32", "repeats": a.repeats, "threads_per_rank": 1,
                      "timing": "median over repeats of the slowest rank; configurations interleaved"},
           "results": results}
    Path(a.out).write_text(json.dumps(doc, indent=1))
    print(f"{'algo':8} {'P':>2} {'layout':10} {'causal':6} {'block':5} {'wall ms':>9} {'compute':>9} "
          f"{'wait/comm':>9} {'hidden':>7} {'err':>8}")
    for r in results:
        h = r.get("hidden_comm_fraction")
        print(f"{r['algo']:8} {r['ranks']:>2} {r['layout']:10} {str(r['causal']):6} {str(r['blocking']):5} "
              f"{r['wall_ms']:9.1f} {r['compute_ms']:9.1f} {r['comm_ms']:9.1f} "
              f"{'' if h is None else f'{h:7.2f}':>7} {r['max_abs_err']:8.1e}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
