"""Sparse and linear attention on the CPU: time against tile density and against N.

Part 1 (chapter 10): block-sparse FlashAttention (``tinyattn.sparse.block_sparse_attention``) at
N = 4096, d = 64, tiles 64 x 64, with random block masks of density 1/16 .. 1; the baseline is the
same loop with every tile on, timed in the same repeats (ratios, not absolute times, are the result).
Part 2 (chapter 11): exact softmax attention (float32 NumPy, the N x N matrix materialised) against
elu+1 linear attention (r = d) and FAVOR+ with m = 256 features, non-causal, d = 64, N = 128 .. 16384.
Timing: median of ``--repeats`` runs after one warm-up, implementations interleaved per repeat;
BLAS limited to ``--threads`` before NumPy is imported.

    python benchmarks/sparse_linear.py [--threads 1] [--repeats 5]
writes benchmarks/results/sparse_linear.json and prints a table.
"""
from __future__ import annotations

import argparse
import os
import sys

_p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
_p.add_argument("--threads", type=int, default=1)
_p.add_argument("--repeats", type=int, default=5)
_p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096, 8192, 16384])
_p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                              "sparse_linear.json"))
ARGS = _p.parse_args()
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)

import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tinyattn import linear as LA  # noqa: E402
from tinyattn import sparse as S  # noqa: E402


def exact_attention(q, k, v):
    """float32 softmax(q k^T / sqrt d) v with the N x N matrix, softmax in place."""
    s = q @ k.T
    s *= np.float32(1.0 / np.sqrt(q.shape[-1]))
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s @ v


def interleaved(impls: dict, repeats: int) -> dict:
    """Median seconds per implementation; every repeat runs each implementation once, in turn."""
    for fn in impls.values():
        fn()                                                   # warm-up
    times = {name: [] for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            t0 = time.perf_counter(); fn(); times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def main() -> None:
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)
    N, d, b = 4096, 64, 64
    T = N // b
    q, k, v = (rng.standard_normal((N, d)).astype(np.float32) for _ in range(3))
    sparse_rows = []
    for dens in (1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4):
        bm = np.zeros((T, T), bool)
        bm.flat[np.random.default_rng(1).permutation(T * T)[:int(round(dens * T * T))]] = True
        full = np.ones((T, T), bool)
        t = interleaved({"sparse": lambda: S.block_sparse_attention(q, k, v, bm, block_q=b, block_k=b),
                         "all_tiles": lambda: S.block_sparse_attention(q, k, v, full, block_q=b, block_k=b)},
                        ARGS.repeats)
        sparse_rows.append({"tile_density": dens, "ms": 1e3 * t["sparse"], "all_tiles_ms": 1e3 * t["all_tiles"],
                            "ratio": t["sparse"] / t["all_tiles"]})
        print(f"tile density {dens:.3f}: {1e3 * t['sparse']:8.2f} ms, all tiles {1e3 * t['all_tiles']:8.2f} ms, "
              f"ratio {t['sparse'] / t['all_tiles']:.3f}")
    W = LA.gaussian_features_matrix(256, d, np.random.default_rng(1))
    linear_rows = []
    for n in ARGS.sizes:
        qn, kn, vn = (rng.standard_normal((n, d)).astype(np.float32) for _ in range(3))
        reps = ARGS.repeats if n <= 4096 else 3
        t = interleaved({"exact": lambda: exact_attention(qn, kn, vn),
                         "elu1_linear": lambda: LA.linear_attention(qn, kn, vn),
                         "favor_m256": lambda: LA.performer_attention(qn, kn, vn, 256, None, W=W)}, reps)
        linear_rows.append({"N": n, **{f"{key}_ms": 1e3 * val for key, val in t.items()}})
        print(f"N={n:6d}: exact {1e3 * t['exact']:9.2f} ms  elu+1 {1e3 * t['elu1_linear']:8.2f} ms  "
              f"FAVOR+ m=256 {1e3 * t['favor_m256']:8.2f} ms")
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "threads": ARGS.threads,
                    "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
                    "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
        "config": {"d": d, "dtype": "float32", "block_sparse": {"N": N, "block": b},
                   "favor_features": 256, "repeats": ARGS.repeats,
                   "timing": "median of repeats after a warm-up, implementations interleaved per repeat"},
        "block_sparse": sparse_rows,
        "linear_vs_exact": linear_rows,
    }
    os.makedirs(os.path.dirname(ARGS.out), exist_ok=True)
    with open(ARGS.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {ARGS.out}")


if __name__ == "__main__":
    main()
