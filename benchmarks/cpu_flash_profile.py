"""Where the Numba flash kernel's time goes: a line-by-line split by timing variants (ablation).

Each variant is the kernel of ``tinyattn/flash/numba_cpu.py`` with one part removed by a text edit
of its source (each edit is checked to apply, so the script fails loudly if the kernel changes):
the Q Kᵀ sgemm, the P V sgemm, the row max, the exponentials, the rescale of O~, or the whole
online-softmax loop. ``full - variant`` estimates the removed part's cost (the parts overlap a
little: removing one can change how the others use the caches). The results of the variants are
wrong on purpose; only their times matter. Naive NumPy is split the same way, line by line.
Three causal runs measure the load balance: the kernel as it is (an atomic counter hands out the
query blocks largest causal workload first), with the blocks in ascending order, and with each
thread given a fixed contiguous half of the tasks (numba's own ``prange`` split).

All variants run interleaved (each repeat times every variant once, in turn, after ``--gap``
seconds of idle), median of ``--repeats``; N = 4096, d = 64, non-causal, ``--threads`` threads.
Both wall time and the process's CPU time (summed over its threads) are recorded: on a shared
machine the CPU time is the steadier measure of where the work goes, since time the threads spend
descheduled by other jobs is not counted.

    python benchmarks/cpu_flash_profile.py [--N 4096] [--threads 2]
writes benchmarks/results/cpu_flash_profile.json and prints a table.
"""
from __future__ import annotations

import argparse
import os
import sys

_p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
_p.add_argument("--N", type=int, default=4096)
_p.add_argument("--d", type=int, default=64)
_p.add_argument("--threads", type=int, default=2)
_p.add_argument("--repeats", type=int, default=15)
_p.add_argument("--gap", type=float, default=0.3)
_p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                              "cpu_flash_profile.json"))
ARGS = _p.parse_args()
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)

import datetime  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tinyattn.flash import numba_cpu  # noqa: E402

# variant name -> (text in the kernel, replacement); the kernel's S tile becomes zeros so that a
# variant without the Q K^T product still feeds finite numbers to the softmax
EDITS = {
    "no Q K^T sgemm": ("_gemm(ch, iv, fv, 1, 0,", "if False: _gemm(ch, iv, fv, 1, 0,"),
    "no P V sgemm": ("_gemm(ch, iv, fv, 0, 0,", "if False: _gemm(ch, iv, fv, 0, 0,"),
    # a fixed shift above every score (|S log2 e| < 64 here): the exponentials stay normal floats
    "no row max": ("mx = _row_max(srow, n, m[i])", "mx = np.float32(64.0)"),
    "no exp": ("rs = _exp2_rows(srow, n, mx)", "rs = np.float32(n)"),
    "no rescale of O~": ("if mx > m[i]:", "if False:"),
    "no softmax loop": ("for i in range(nq):                       # online softmax",
                        "for i in range(0):                       # online softmax"),
}
EDITS["no sgemm at all"] = (EDITS["no Q K^T sgemm"], EDITS["no P V sgemm"])
# causal runs: the kernel as is (a shared counter hands out the largest query blocks first), with
# the blocks handed out in ascending order, and with each thread given a fixed contiguous half of
# the tasks (what numba's prange does on its own, chunksize or not: the previous kernel's schedule)
_PER = "((n_tasks + n_workers - 1) // n_workers)"
CAUSAL = {
    "causal": [],
    "causal, ascending block order": [("q0 = (n_qblocks - 1 - task // B) * bq", "q0 = (task // B) * bq")],
    "causal, static contiguous split": [
        ("for _ in prange(min(n_workers, n_tasks)):", "for w in prange(min(n_workers, n_tasks)):"),
        ("        task = _next_task(head)\n        while", f"        task = w * {_PER}\n        while"),
        ("            task = _next_task(head)\n", f"            task = task + 1 if (task + 1) % {_PER} else n_tasks\n")],
}


def kernel_variant(name: str, edits) -> object:
    """Compile a copy of numba_cpu._fwd_kernel with ``edits`` (pairs of old, new text) applied."""
    src = inspect.getsource(numba_cpu._fwd_kernel.py_func)
    src = src.replace("st = np.empty(", "st = np.zeros(").replace("cache=True", "cache=False")
    for old, new in edits:
        if old not in src:
            raise RuntimeError(f"variant {name!r}: {old!r} not found in the kernel; update EDITS")
        src = src.replace(old, new)
    namespace = dict(vars(numba_cpu))
    exec(compile(src, f"<variant {name}>", "exec"), namespace)
    return namespace["_fwd_kernel"]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
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

    N, d = ARGS.N, ARGS.d
    bq, bk = numba_cpu.DEFAULT_BLOCKS
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, N, d)).astype(np.float32) for _ in range(3))
    out, lse = np.empty((1, N, d), np.float32), np.empty((1, N), np.float32)
    kernels = {"full kernel": kernel_variant("full", [])}
    for name, e in EDITS.items():
        kernels[name] = kernel_variant(name, e if isinstance(e[0], tuple) else [e])

    for name, e in CAUSAL.items():
        kernels[name] = kernel_variant(name, e)

    def run_kernel(kern, causal=False):
        with numba_cpu._one_blas_thread():
            kern(q, k, v, 1 / np.sqrt(d), bq, bk, causal, out, lse, numba.get_num_threads())

    q2, k2, v2 = q[0], k[0], v[0]
    st = {}

    def naive_line(i):
        """One line of benchmarks/cpu_flash.py's naive_attention, on state kept between lines."""
        if i == 0:
            st.clear()                 # one N x N array alive at a time, as in naive_attention
            st["s"] = (q2 * np.float32(1 / np.sqrt(d))) @ k2.T
        elif i == 1:
            st["m"] = st["s"].max(axis=-1, keepdims=True)
        elif i == 2:
            st["s"] -= st["m"]
        elif i == 3:
            np.exp(st["s"], out=st["s"])
        elif i == 4:
            st["s"] /= st["s"].sum(axis=-1, keepdims=True)
        else:
            st["o"] = st["s"] @ v2

    # naive lines first, then one discarded kernel call: NumPy's BLAS threads keep spinning for a
    # while after a product, and no measured variant should run next to them
    lines = ["S = (Q scale) K^T", "rowmax S", "S -= max", "exp(S)", "P = S / rowsum S", "O = P V"]
    items = {f"naive: {line}": (lambda i=i: naive_line(i)) for i, line in enumerate(lines)}
    items["(discarded)"] = lambda: run_kernel(kernels["full kernel"])
    items.update({name: (lambda kern=kern, c=name.startswith("causal"): run_kernel(kern, c))
                  for name, kern in kernels.items()})
    for fn in items.values():          # compile every variant, warm every line
        fn()
    load_before = os.getloadavg()
    times = {name: [] for name in items}
    cpu = {name: [] for name in items}
    for _ in range(ARGS.repeats):
        for name, fn in items.items():
            time.sleep(ARGS.gap)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    for t in (times, cpu):
        del t["(discarded)"]
    med = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
    med_cpu = {name: float(np.median(t)) * 1e3 for name, t in cpu.items()}
    full, full_cpu = med["full kernel"], med_cpu["full kernel"]
    rows = []
    for name, ms in med.items():
        part = None if name == "full kernel" or name.startswith(("naive", "causal")) else full - ms
        part_cpu = None if part is None else full_cpu - med_cpu[name]
        rows.append(dict(variant=name, ms=ms, removed_part_ms=part, cpu_ms=med_cpu[name],
                         removed_part_cpu_ms=part_cpu))
        extra = (f"   -> the removed part ~ {part:5.1f} ms ({part / full:4.0%}); CPU time "
                 f"{part_cpu:5.1f} ms ({part_cpu / full_cpu:4.0%})" if part is not None else "")
        print(f"{name:<32} {ms:8.2f} ms (CPU {med_cpu[name]:6.1f} ms){extra}")
    naive_total = sum(med[f"naive: {line}"] for line in lines)
    naive_total_cpu = sum(med_cpu[f"naive: {line}"] for line in lines)
    print(f"{'naive total (sum of lines)':<32} {naive_total:8.2f} ms")
    print("causal speed-up: " + ", ".join(f"{name[8:] or 'as is'} {full / med[name]:.2f}x" for name in CAUSAL))
    res = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine=dict(processor=cpu_model(), platform=platform.platform(),
                     cpu_count=os.cpu_count(), threads=ARGS.threads,
                     loadavg_1_5_15_before=[round(x, 2) for x in load_before],
                     loadavg_1_5_15_after=[round(x, 2) for x in os.getloadavg()]),
        versions=dict(numpy=np.__version__, numba=numba.__version__),
        config=dict(N=N, d=d, blocks=[bq, bk], causal=False, repeats=ARGS.repeats, gap_s=ARGS.gap,
                    method="median of interleaved repeats, wall time (ms) and process CPU time summed "
                           "over threads (cpu_ms: not inflated by other jobs' time slices); "
                           "removed_part = full - variant"),
        results=rows, naive_total_ms=naive_total, naive_total_cpu_ms=naive_total_cpu)
    with open(ARGS.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {ARGS.out}")


if __name__ == "__main__":
    main()
