"""Run 7 probe (one device call, with gpu_decode.py): the Numba fp32 kernel's tile shapes at d = 64 and
128 (dynamic shared memory), and the naive baseline's three kernels timed one by one.

    python benchmarks/gpu_misc_probe.py [--out DIR] [--seed S]

Both sections live in gpu_flash.py (`numba_sweep`, `naive_split`; every timed output checked against
float64 on two heads, NaN-poisoned); this script only runs them alone and writes
OUT/gpu_misc_probe_h200.json, so the tile shape can be chosen before the full gpu_flash.py run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_flash as gf  # noqa: E402  (sets np.row_stack for numba-cuda, imports torch and cupy)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", str(gf.ROOT / "benchmarks" / "results")))
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    gen = gf.torch.Generator(device=gf.DEV)
    gen.manual_seed(args.seed)
    meta = {"seed": args.seed, "gpu": gf.torch.cuda.get_device_name(0), "versions": gf.versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    path = Path(args.out) / "gpu_misc_probe_h200.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for name, fn in (("numba_sweep", gf.numba_sweep), ("naive_split", gf.naive_split)):
        try:
            meta[name] = fn(gen)
        except Exception as e:  # noqa: BLE001
            meta[name + "_error"] = f"{type(e).__name__}: {e}"[:2000]
            gf.log(meta[name + "_error"])
        meta["wall_s"] = time.time() - t0
        path.write_text(json.dumps(meta, indent=1))
    gf.log(f"wrote {path} ({meta['wall_s']:.0f} s)")
    for r in meta.get("numba_sweep", []):
        gf.log(f"  numba d={r['d']} {r['config']} causal={int(r['causal'])} "
               + (f"{r['tflops']:.2f} TFLOP/s rel {r['check_rel_err']:.1e}" if r.get("ms") else r.get("error", "")))
    for r in meta.get("naive_split", []):
        gf.log(f"  naive d={r['d']} causal={int(r['causal'])} qk {r['ms_qk']:.2f} sm {r['ms_softmax']:.2f} "
               f"pv {r['ms_pv']:.2f} total {r['ms_total']:.2f} flash {r['ms_flash']:.2f} ms "
               f"-> {r['flash_speedup']:.2f}x rel {r['check_rel_err']:.1e}")


if __name__ == "__main__":
    main()
