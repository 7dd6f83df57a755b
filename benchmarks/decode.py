"""Decode speed with and without the KV cache against context length (chapter 08).

For each context length L the script times ONE next-token step of a small LM (batch 1):
- uncached: a full forward over the L + 1 tokens (what ``generate(use_cache=False)`` does per step);
- cached:   one token against a KV cache already holding L tokens (the cache is rewound to L after
            each timed step, so every repetition sees the same state).
Repetitions are interleaved (uncached, cached, uncached, ...) and the median is reported, with
tokens/s = 1 / median. Both use the same weights; before timing, the script checks the two give the
same next-token logits (float32, atol 1e-4).

    python benchmarks/decode.py [--reps 15] [--threads 1] [--lengths 8,16,...]
writes benchmarks/results/decode.json (machine, versions, date, load average, per-length timings).
"""
from __future__ import annotations

import argparse
import os
import sys

_p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
_p.add_argument("--reps", type=int, default=15)
_p.add_argument("--threads", type=int, default=1)
_p.add_argument("--lengths", default="1,4,16,64,256,1024")
_p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "decode.json"))
ARGS = _p.parse_args()
for _n in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_n] = str(ARGS.threads)

import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tinyattn as ta  # noqa: E402
from tinyattn.models import TransformerLM  # noqa: E402

CONFIG = dict(vocab=256, d_model=128, n_layers=2, n_heads=4, positional="rope")


def main() -> None:
    lengths = [int(x) for x in ARGS.lengths.split(",")]
    c = CONFIG
    model = TransformerLM(c["vocab"], c["d_model"], c["n_layers"], c["n_heads"], max(lengths) + 1,
                          positional=c["positional"], rng=np.random.default_rng(0)).eval()
    tokens = np.random.default_rng(1).integers(0, c["vocab"], (1, max(lengths) + 1))
    load_before = os.getloadavg()[0]
    rows = []
    with ta.no_grad():
        for L in lengths:
            cache = model.new_cache(1, L + 1)
            model(tokens[:, :L], cache=cache)                             # prefill L tokens

            def cached():
                cache.length = L                                          # rewind: same state each rep
                return model(tokens[:, L:L + 1], cache=cache).data[0, -1]

            def uncached():
                return model(tokens[:, :L + 1]).data[0, -1]

            np.testing.assert_allclose(cached(), uncached(), atol=1e-4)  # same next-token logits
            times = {"uncached": [], "cached": []}
            for _ in range(ARGS.reps):                                    # interleaved
                for name, fn in (("uncached", uncached), ("cached", cached)):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            med = {k: float(np.median(v)) for k, v in times.items()}
            rows.append({"context": L, "uncached_ms": 1e3 * med["uncached"], "cached_ms": 1e3 * med["cached"],
                         "uncached_tok_s": 1 / med["uncached"], "cached_tok_s": 1 / med["cached"],
                         "speedup": med["uncached"] / med["cached"]})
            print(f"L={L:5d}  uncached {1e3 * med['uncached']:8.2f} ms  cached {1e3 * med['cached']:7.2f} ms  "
                  f"speedup {med['uncached'] / med['cached']:6.2f}x", flush=True)
    faster = [r["context"] for r in rows if r["speedup"] > 1.0]
    first = next((r["context"] for i, r in enumerate(rows) if all(x["speedup"] > 1 for x in rows[i:])), None)
    out = {"benchmark": "decode", "config": CONFIG, "batch": 1, "threads": ARGS.threads, "reps": ARGS.reps,
           "timing": "median of interleaved single-token steps", "results": rows,
           "cached_faster_at": faster, "cached_faster_from_context": first,
           "machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "cpu_count": os.cpu_count()},
           "versions": {"python": platform.python_version(), "numpy": np.__version__, "tinyattn": ta.__version__},
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "loadavg_1min_before_after": [load_before, os.getloadavg()[0]]}
    os.makedirs(os.path.dirname(ARGS.out), exist_ok=True)
    with open(ARGS.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"cached faster from context {first}; wrote {ARGS.out}")


if __name__ == "__main__":
    main()
