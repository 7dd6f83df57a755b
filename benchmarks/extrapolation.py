"""Chapter 05's length-extrapolation study, full size: writes benchmarks/results/extrapolation.json.

    python benchmarks/extrapolation.py            # 6 encodings x 3 seeds + RoPE scaling: 2 min idle, 7 min loaded (2 cores)
    python benchmarks/extrapolation.py --quick    # 1 seed, short training (a smoke test, not the results)

Everything is seeded (see ``tinyattn.experiments.extrapolation``); BLAS is pinned to one thread so
runs are reproducible and polite on a shared machine. Prints a table of loss / accuracy per length.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinyattn.experiments.extrapolation import ExtrapolationConfig, run, summary  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "extrapolation.json"


def table(res: dict) -> str:
    lengths = res["config"]["lengths"]
    head = f"{'model':<24}" + "".join(f"{'L=' + str(n):>16}" for n in lengths)
    lines = [head, "-" * len(head)]
    rows = [(f"{enc}", runs) for enc, runs in res["encodings"].items()]
    rows += [(f"rope zero-shot {m}", runs) for m, runs in res["zero_shot"].items()]
    rows += [(f"rope finetuned {m}", runs) for m, runs in res["finetuned"].items()]
    for name, runs in rows:
        cells = []
        for n in lengths:
            loss = summary(runs, n, "loss")[0]
            acc = summary(runs, n, "acc")[0]
            cells.append(f"{loss:7.3f} / {acc:5.2f}")
        lines.append(f"{name:<24}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines) + "\n(mean over seeds: loss in nats / accuracy)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="1 seed, 100 steps (smoke test)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    cfg = ExtrapolationConfig()
    if args.quick:
        cfg = ExtrapolationConfig(steps=100, seeds=(0,), n_eval=32, finetune_steps=5)
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    res = run(cfg, progress=True)
    res["meta"] = dict(
        date=started.isoformat(timespec="seconds"), wall_seconds=round(res["seconds"], 1),
        quick=args.quick,
        machine=dict(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                     cpu_count=os.cpu_count(),
                     loadavg_1_5_15_before=[round(x, 2) for x in load_before],
                     loadavg_1_5_15_after=[round(x, 2) for x in os.getloadavg()],
                     note="shared machine: other processes ran during the run (load averages above)"),
        versions=dict(python=platform.python_version(), numpy=np.__version__),
        command="python benchmarks/extrapolation.py" + (" --quick" if args.quick else ""))
    print(table(res))
    print(f"wall time {res['seconds']:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
