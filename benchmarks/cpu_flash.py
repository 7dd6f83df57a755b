"""CPU attention: naive NumPy vs NumPy-tiled FlashAttention vs the Numba flash kernel.

One head, float32, q, k, v of shape (N, d), non-causal; N = 1k, 2k, 4k, 8k, 16k and d = 64 by
default. For each implementation: wall time (median of ``--repeats`` runs after one warm-up, the
implementations timed in turn within each repeat; 3 runs for N > 4096, and a single run of the
slow NumPy-tiled flash there, to keep the script under ~10 minutes) and peak extra memory from ``tracemalloc``
(measured in a separate, untimed call). Threads: OpenBLAS and Numba are limited to ``--threads``
(default 2) before NumPy is imported.

Caveat on memory: tracemalloc sees NumPy's allocations (including numba's output arrays, which are
allocated in Python) but not the Numba runtime's allocations inside the kernel; those are the
per-thread tile buffers, whose size is known exactly and is ADDED to the numba figure
(``numba_tile_bytes`` in the JSON).

    python benchmarks/cpu_flash.py [--sizes 1024 2048 4096 8192 16384] [--d 64] [--threads 2]
writes benchmarks/results/cpu_flash.json and prints a table.
"""
from __future__ import annotations

import argparse
import os
import sys

_p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
_p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
_p.add_argument("--d", type=int, default=64)
_p.add_argument("--threads", type=int, default=2)
_p.add_argument("--repeats", type=int, default=5)
_p.add_argument("--np-block", type=int, nargs=2, default=[512, 1024], help="NumPy flash block_q block_k")
_p.add_argument("--nb-block", type=int, nargs=2, default=[64, 64], help="Numba flash block_q block_k")
_p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                              "cpu_flash.json"))
ARGS = _p.parse_args()
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)

import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tinyattn.flash import flash_attention, flash_attention_numba, peak_extra_bytes  # noqa: E402


def naive_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The best plain NumPy can do with the N x N matrix: one float32 S, softmax in place."""
    s = q @ k.T                                       # S = Q K^T            (N, N) float32
    s *= np.float32(1.0 / np.sqrt(q.shape[-1]))
    s -= s.max(axis=-1, keepdims=True)                # safe softmax, in place
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s @ v                                      # O = P V



def round_robin_times(impls: dict, repeats: dict, *args) -> dict:
    """Median seconds per implementation; each repeat times every implementation once, in turn,
    so that all of them see the same background load (the machine is shared)."""
    times = {name: [] for name in impls}
    for r in range(max(repeats.values())):
        for name, fn in impls.items():
            if r < repeats[name]:
                t0 = time.perf_counter()
                fn(*args)
                times[name].append(time.perf_counter() - t0)
    return {name: (float(np.median(t)), len(t)) for name, t in times.items() if t}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    import numba

    d = ARGS.d
    nbq, nbk = ARGS.nb_block
    npq, npk = ARGS.np_block
    # live per-thread buffers of numba_cpu._fwd_kernel: Q tile, O accumulator, the P~V product,
    # m and l, the exp scratch, and the S/P tile (K and V tiles are views of the inputs)
    tile_bytes = (4 * (nbq * d + 2 * nbq * d + 2 * nbq + nbk + nbq * nbk) + 32) * ARGS.threads
    impls = {
        "naive_numpy": lambda q, k, v: naive_attention(q, k, v),
        "flash_numpy": lambda q, k, v: flash_attention(q, k, v, block_q=npq, block_k=npk),
        "flash_numba": lambda q, k, v: flash_attention_numba(q, k, v, block_q=nbq, block_k=nbk),
    }
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()
    results = []
    print(f"{'N':>6} {'impl':<12} {'ms':>10} {'peak MiB':>10} {'% of NxN fp32':>14} {'max|err|':>10}")
    for N in ARGS.sizes:
        q, k, v = (rng.standard_normal((N, d)).astype(np.float32) for _ in range(3))
        ref = naive_attention(q, k, v)
        scores = N * N * 4
        big = N > 4096      # the slow NumPy-tiled flash runs once there (its check run is timed)
        reps = {name: (ARGS.repeats if not big else 3) for name in impls}
        errs, secs = {}, {}
        for name, fn in impls.items():                # warm-up (Numba compile / cache load) + check
            t0 = time.perf_counter()
            out = fn(q, k, v)
            first = time.perf_counter() - t0
            out = out[0] if isinstance(out, tuple) else out
            errs[name] = float(np.abs(out - ref).max())
            if big and name == "flash_numpy":
                secs[name], reps[name] = (first, 1), 0
        del ref, out
        secs.update({n: t for n, t in round_robin_times(impls, reps, q, k, v).items() if reps[n] > 0})
        for name, fn in impls.items():
            err, (seconds, reps_done) = errs[name], secs[name]
            peak = peak_extra_bytes(fn, q, k, v) + (tile_bytes if name == "flash_numba" else 0)
            row = dict(impl=name, N=N, d=d, ms=seconds * 1e3, peak_bytes=int(peak),
                       peak_frac_of_scores=peak / scores, max_abs_err_vs_naive=err, repeats=reps_done)
            results.append(row)
            print(f"{N:>6} {name:<12} {row['ms']:>10.1f} {peak / 2**20:>10.2f} "
                  f"{100 * row['peak_frac_of_scores']:>13.2f}% {err:>10.2e}", flush=True)
    meta = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine=dict(platform=platform.platform(), processor=cpu_model(),
                     cpu_count=os.cpu_count(), threads=ARGS.threads,
                     loadavg_1_5_15_before=[round(x, 2) for x in load_before],
                     loadavg_1_5_15_after=[round(x, 2) for x in os.getloadavg()],
                     note="shared machine: other processes ran during the benchmark (load averages above)"),
        versions=dict(python=platform.python_version(), numpy=np.__version__, numba=numba.__version__),
        config=dict(d=d, dtype="float32", causal=False, heads=1, numpy_blocks=[npq, npk],
                    numba_blocks=[nbq, nbk], numba_tile_bytes=tile_bytes,
                    timing="median of repeats after a warm-up, implementations interleaved per repeat; "
                           "memory: tracemalloc peak above the inputs, separate call"),
    )
    with open(ARGS.out, "w") as f:
        json.dump({**meta, "results": results}, f, indent=1)
    print(f"wrote {ARGS.out}")


if __name__ == "__main__":
    main()
