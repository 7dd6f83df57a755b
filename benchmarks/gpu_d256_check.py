"""The d = 256 tensor-core forward (built with -DTA_FLASH_D256, ``cupy_flash.VARIANTS[256]``) on a GPU against
float64: fp16 and bf16, every variant, causal and not, ragged N, Nq != Nk, GQA 4:1; outputs NaN-poisoned
before each launch; lse checked too. Writes ``$OUT/gpu_d256_check.json`` (or --out) and prints one line per
(dtype, variant) and "ALL OK" / "FAIL". Not a timing: d = 256 has no measured speed yet.

    python3 benchmarks/gpu_d256_check.py --seed 20262108
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_flash_dims as gd  # noqa: E402  (torch, cupy, tinyattn.gpu set up by gpu_flash)

torch, cupy_flash, DEV = gd.torch, gd.cupy_flash, gd.DEV
CASES = [(1, 2, 2, 257, 257), (1, 2, 2, 300, 1000), (1, 2, 2, 1000, 300), (1, 8, 2, 333, 333)]  # (B, H, Hkv, Nq, Nk)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    gen = torch.Generator(device=DEV)
    gen.manual_seed(args.seed)
    t0, rows = time.time(), []
    for dtype in ("float16", "bfloat16"):
        for variant in sorted(cupy_flash.VARIANTS[256]):
            for causal in (False, True):
                for B, H, hkv, nq, nk in CASES:
                    q = torch.randn(B, H, nq, 256, device=DEV, generator=gen).to(gd.gf.TORCH_DT[dtype])
                    k, v = (torch.randn(B, hkv, nk, 256, device=DEV, generator=gen).to(gd.gf.TORCH_DT[dtype]) for _ in range(2))
                    run, o, lse = gd.mma_fn(dtype, q, k, v, causal, variant)
                    o.fill_(float("nan"))
                    lse.fill_(float("nan"))
                    run()
                    torch.cuda.synchronize()
                    ref, ref_lse = gd.reference(q, k, v, causal)
                    rec = {"dtype": dtype, "variant": variant, "causal": causal, "B": B, "H": H, "Hkv": hkv, "Nq": nq,
                           "Nk": nk, **gd.compare(o, lse, ref, ref_lse)}
                    rec["ok"] = (rec["check_rel_err"] < gd.TOL[dtype] and not rec["check_nan"] and rec["lse_max_abs"] < 1e-3
                                 and rec["lse_inf_ok"])
                    rows.append(rec)
            mine = [r for r in rows if r["dtype"] == dtype and r["variant"] == variant]
            print(f"d=256 {dtype:9s} {variant}: {sum(r['ok'] for r in mine)}/{len(mine)} ok, worst rel "
                  f"{max(r['check_rel_err'] for r in mine):.1e}, worst lse {max(r['lse_max_abs'] for r in mine):.1e}", flush=True)
    out = {"seed": args.seed, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tol": gd.TOL,
           "versions": gd.gf.versions(), "wall_s": time.time() - t0, "checks": rows}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_d256_check.json").write_text(json.dumps(out, indent=1))
    print("ALL OK" if all(r["ok"] for r in rows) else "FAIL", f"({len(rows)} checks, {out['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
