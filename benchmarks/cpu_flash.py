"""CPU attention: naive NumPy vs NumPy-tiled FlashAttention vs the Numba flash kernel, against SGEMM.

One head, float32, q, k, v of shape (N, d); N = 1k, 2k, 4k, 8k, 16k and d = 64 by default, on
``--threads`` threads (default 2: OpenBLAS and Numba are limited before NumPy is imported).

Timing is interleaved: each repeat times every implementation once, in turn (and the Numba kernel
once more with ``is_causal=True``). Before each timed call: a ``--gap`` pause (default 0.3 s) so
that BLAS and OpenMP worker threads still spinning from the previous implementation have stopped
(without it, whichever implementation runs second loses up to half its speed to them), then one
untimed call of the same implementation, which wakes its own sleeping threads (after a pause, a
2 ms call measured 3-15 ms here). Reported: the median of the repeats
and ratios of medians; the first call of each (Numba compile or cache load) is an untimed check
against naive. In the same loop, ``sgemm``: a float32 ``(2048, 2048) @ (2048, 2048)`` NumPy matmul,
the machine's measured dense-matmul rate on the same threads and under the same load. Attention
GFLOP/s count the two products only, 4 N^2 d (halved for causal), so ``frac_of_sgemm`` says how close
an implementation is to the rate the CPU reaches on pure matrix products.

Memory: peak extra bytes from ``tracemalloc`` in a separate, untimed call. tracemalloc sees NumPy's
allocations (including the Numba wrapper's output arrays) but not the Numba runtime's allocations inside
the kernel; those are the per-task tile buffers, whose size is known and is ADDED to the Numba figure
(``numba_tile_bytes``).

The machine may be shared: the JSON records the load average before, during (per N) and after.

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
_p.add_argument("--repeats", type=int, default=7, help="repeats for N <= 4096 (3 above)")
_p.add_argument("--gap", type=float, default=0.3, help="seconds of idle before each timed call")
_p.add_argument("--np-block", type=int, nargs=2, default=[512, 1024], help="NumPy flash block_q block_k")
_p.add_argument("--nb-block", type=int, nargs=2, default=None, help="Numba flash block_q block_k "
                "(default: the kernel's DEFAULT_BLOCKS)")
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

SGEMM_N = 2048


def naive_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Dense float32 attention done well in NumPy: one N x N array, every pass in place.

    q: (N, d), k: (N, d), v: (N, dv) float32 -> (N, dv). The scale is applied to q (N d multiplies,
    not N^2); the products are BLAS sgemm calls on all threads; NumPy's exp is its SIMD loop."""
    s = (q * np.float32(1.0 / np.sqrt(q.shape[-1]))) @ k.T   # S = (Q scale) K^T      (N, N) float32
    s -= s.max(axis=-1, keepdims=True)                       # safe softmax, in place
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)                       # P
    return s @ v                                             # O = P V


def interleaved_times(impls: dict, repeats: int, gap: float) -> dict:
    """Seconds per call for each implementation: each repeat runs all of them in turn, so all see
    the same background load. Before each timed call: ``gap`` seconds of sleep (the previous
    implementation's worker threads stop spinning), then one untimed call of the same
    implementation (it wakes this one's sleeping threads: on this VM a wake-up costs milliseconds).
    Returns {name: [seconds, ...]}."""
    times = {name: [] for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            time.sleep(gap)
            fn()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


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
    from tinyattn.flash.numba_cpu import DEFAULT_BLOCKS

    d = ARGS.d
    nbq, nbk = ARGS.nb_block or DEFAULT_BLOCKS
    npq, npk = ARGS.np_block
    # live buffers of one numba_cpu._fwd_kernel task (one per thread): the S/P tile, the O~
    # accumulator, m and l, and the sgemm scalars (Q, K and V tiles are views of the inputs)
    tile_bytes = (4 * (nbq * nbk + nbq * d + 2 * nbq) + 64) * ARGS.threads
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((SGEMM_N, SGEMM_N)).astype(np.float32) for _ in range(2))
    c = a @ b
    load_before = os.getloadavg()
    results, sgemm_rates, loads = [], [], {}
    print(f"{'N':>6} {'impl':<18} {'ms':>9} {'GFLOP/s':>8} {'of sgemm':>9} {'vs naive':>9} "
          f"{'peak MiB':>9} {'% NxN fp32':>11} {'max|err|':>9}")
    for N in ARGS.sizes:
        q, k, v = (rng.standard_normal((N, d)).astype(np.float32) for _ in range(3))
        impls = {
            "naive_numpy": lambda: naive_attention(q, k, v),
            "flash_numpy": lambda: flash_attention(q, k, v, block_q=npq, block_k=npk),
            "flash_numba": lambda: flash_attention_numba(q, k, v, block_q=nbq, block_k=nbk),
            "flash_numba_causal": lambda: flash_attention_numba(q, k, v, block_q=nbq, block_k=nbk,
                                                                is_causal=True),
            "sgemm": lambda: np.matmul(a, b, out=c),
        }
        big = N > 4096
        if big:                     # the NumPy-tiled flash takes seconds there: its check run is timed
            del impls["flash_numpy"]
        ref = naive_attention(q, k, v)
        errs, extra = {}, {}
        for name in ("naive_numpy", "flash_numpy", "flash_numba"):   # warm-up (compile / cache) + check
            fn = impls.get(name) or (lambda: flash_attention(q, k, v, block_q=npq, block_k=npk))
            t0 = time.perf_counter()
            out = fn()
            first = time.perf_counter() - t0
            out = out[0] if isinstance(out, tuple) else out
            errs[name] = float(np.abs(out - ref).max())
            if name not in impls:
                extra[name] = [first]
        del ref, out
        impls["flash_numba_causal"]()
        load_n = os.getloadavg()
        times = {**interleaved_times(impls, ARGS.repeats if not big else 3, ARGS.gap), **extra}
        loads[N] = [round(x, 2) for x in (*load_n, *os.getloadavg())]
        med = {name: float(np.median(t)) for name, t in times.items()}
        sgemm = 2 * SGEMM_N**3 / med["sgemm"] / 1e9
        sgemm_rates.append(sgemm)
        for name in ("naive_numpy", "flash_numpy", "flash_numba", "flash_numba_causal"):
            flops = 4 * N * N * d / (2 if name.endswith("causal") else 1)
            gflops = flops / med[name] / 1e9
            fn = impls.get(name) or (lambda: flash_attention(q, k, v, block_q=npq, block_k=npk))
            peak = peak_extra_bytes(fn) + (tile_bytes if name.startswith("flash_numba") else 0)
            row = dict(impl=name, N=N, d=d, ms=med[name] * 1e3, ms_all=[round(t * 1e3, 2) for t in times[name]],
                       repeats=len(times[name]), gflops=gflops, frac_of_sgemm=gflops / sgemm,
                       speedup_vs_naive=med["naive_numpy"] / med[name],
                       peak_bytes=int(peak), peak_frac_of_scores=peak / (4 * N * N),
                       max_abs_err_vs_naive=errs.get(name.replace("_causal", ""), float("nan")),
                       sgemm_gflops_same_loop=sgemm)
            if name.endswith("causal"):
                row["speedup_vs_noncausal"] = med["flash_numba"] / med[name]
                row["max_abs_err_vs_naive"] = None            # different function (masked)
            results.append(row)
            print(f"{N:>6} {name:<18} {row['ms']:>9.1f} {gflops:>8.1f} {row['frac_of_sgemm']:>9.1%} "
                  f"{row['speedup_vs_naive']:>8.2f}x {peak / 2**20:>9.2f} {100 * row['peak_frac_of_scores']:>10.2f}% "
                  f"{errs.get(name, float('nan')):>9.1e}", flush=True)
        print(f"{N:>6} {'sgemm 2048^3':<18} {med['sgemm'] * 1e3:>9.1f} {sgemm:>8.1f}   (load {loads[N]})",
              flush=True)
    meta = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine=dict(platform=platform.platform(), processor=cpu_model(),
                     cpu_count=os.cpu_count(), threads=ARGS.threads,
                     loadavg_1_5_15_before=[round(x, 2) for x in load_before],
                     loadavg_1_5_15_after=[round(x, 2) for x in os.getloadavg()],
                     loadavg_per_N_before_and_after_timing={str(n): l for n, l in loads.items()},
                     note="shared machine: other processes may have run during the benchmark "
                          "(load averages above; interleaving keeps the ratios fair)"),
        versions=dict(python=platform.python_version(), numpy=np.__version__, numba=numba.__version__),
        sgemm=dict(shape=[SGEMM_N, SGEMM_N, SGEMM_N], gflops_per_N=[round(x, 1) for x in sgemm_rates],
                   gflops_median=float(np.median(sgemm_rates))),
        config=dict(d=d, dtype="float32", heads=1, numpy_blocks=[npq, npk],
                    numba_blocks=[nbq, nbk], numba_tile_bytes=tile_bytes, gap_s=ARGS.gap,
                    flops="4 N^2 d per non-causal call (two products), half for causal",
                    timing="median of interleaved repeats; each timed call follows gap_s of idle "
                           "and one untimed call of the same implementation; the NumPy flash "
                           "above N = 4096 is its single check run; "
                           "memory: tracemalloc peak above the inputs, separate call"),
    )
    with open(ARGS.out, "w") as f:
        json.dump({**meta, "results": results}, f, indent=1)
    print(f"wrote {ARGS.out}")


if __name__ == "__main__":
    main()
