"""Checks and summaries of benchmarks/gpu_hopper.py (issue 14): the wgmma descriptor layout test, torch's
own error, the timed-output check, kernel resources, and the acceptance summary read off one run."""
from __future__ import annotations

import math
import subprocess

import cupy as cp
import numpy as np
import torch

from gpu_flash import log, output_of  # noqa: E402  (imported after gpu_flash's setup)
from tinyattn.gpu import hopper

IMPL = {"float16": "cupy_fp16_wgmma", "bfloat16": "cupy_bf16_wgmma"}


def layout_test() -> dict:
    mod = hopper._module()
    kern = mod.get_function("wg_layout_test_f16")
    kern.max_dynamic_shared_size_bytes = 2 * (64 * 128 + 2 * 128 * 128) + 1024
    rng = np.random.default_rng(0)
    A, B, W = (cp.asarray(rng.standard_normal(s).astype(np.float16)) for s in ((64, 128), (128, 128), (128, 128)))
    out = {}
    for lbo, sbo in ((128 * 128, 1024), (1024, 128 * 128)):
        C1, C2 = cp.full((64, 128), cp.nan, cp.float32), cp.full((64, 128), cp.nan, cp.float32)
        kern((1, 1, 1), (128, 1, 1), (A, B, W, C1, C2, np.int32(lbo), np.int32(sbo)),
             shared_mem=2 * (64 * 128 + 2 * 128 * 128) + 1024)
        cp.cuda.runtime.deviceSynchronize()
        r1 = A.astype(cp.float32) @ B.astype(cp.float32).T
        r2 = A.astype(cp.float32) @ W.astype(cp.float32)
        e1 = float(cp.abs(C1 - r1).max() / cp.abs(r1).max())
        e2 = float(cp.abs(C2 - r2).max() / cp.abs(r2).max())
        out[f"lbo{lbo}_sbo{sbo}"] = {"qk_kmajor_rel_maxerr": e1, "pv_mnmajor_rel_maxerr": e2}
        log(f"layout test lbo={lbo} sbo={sbo}: S=QK^T (K-major, smem/smem) err {e1:.2e}; "
            f"O=PV (P regs, V MN-major) err {e2:.2e}")
    return out


def torch_error(q, k, v, causal, ref):
    """torch SDPA's own relative error vs float64 on the same inputs (its default backend; flash for
    Nq = Nk), or None where torch cannot express the mask: torch's is_causal is top-left aligned, so
    causal Nq != Nk uses causal_lower_right (None if unsupported, or for Nq > Nk: rows with no key)."""
    nq, nk = q.shape[2], k.shape[2]
    try:
        if causal and nq != nk:
            if nq > nk:
                return None
            from torch.nn.attention.bias import causal_lower_right
            o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(nq, nk))
        else:
            o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        err = (torch.linalg.norm(o.double() - ref) / torch.linalg.norm(ref)).item()
        return err if math.isfinite(err) else None
    except Exception:  # noqa: BLE001
        return None


def resources(variants) -> dict:
    res = {}
    for var in variants:
        for d in hopper.VARIANTS[var][4]:
            try:
                kern, block, rows, smem = hopper.get_kernel("f16", d, var)
                a = kern.attributes
                res[f"{var}_d{d}"] = {"regs": a.get("num_regs"), "local_bytes": a.get("local_size_bytes"),
                                      "dyn_smem": smem, "threads": block[0]}
            except Exception as e:  # noqa: BLE001
                res[f"{var}_d{d}"] = {"error": f"{type(e).__name__}: {e}"[:200]}
    try:
        sass = subprocess.run(["cuobjdump", "-sass", str(hopper.build_cubin())], capture_output=True, text=True).stdout
        res["sass_counts"] = {w: sass.count(w) for w in ("HGMMA", "HMMA", "UTMALDG", "SYNCS", "LDL", "STL", "WARPGROUP")}
    except Exception as e:  # noqa: BLE001
        res["sass_counts"] = str(e)[:200]
    return res


def timed_err(run, out, like, ref) -> dict:
    """Re-run a timed launch into a NaN-poisoned output; heads 0-1 of batch 0 vs float64 (ref)."""
    if isinstance(out, torch.Tensor):
        out.fill_(float("nan"))
    run()
    torch.cuda.synchronize()
    o = output_of(out, like)[:1, :2].double()
    rel = (torch.linalg.norm(o - ref) / torch.linalg.norm(ref)).item()
    return {"check_rel_err": rel, "check_max_abs": (o - ref).abs().max().item(), "check_nan": bool(torch.isnan(o).any())}


def acceptance(results, checks) -> dict:
    """Issue 14's acceptance read off this run: default fp16 variant / torch flash per cell; errors."""
    cells, worst = {}, 0.0
    for r in results:
        if r["impl"] == IMPL["float16"] and r.get("default") and r.get("tflops"):
            fl = next(x for x in results if x["impl"] == "torch_sdpa_flash" and all(x[c] == r[c] for c in ("N", "d", "causal")))
            cu = next(x for x in results if x["impl"] == "torch_sdpa_cudnn" and all(x[c] == r[c] for c in ("N", "d", "causal")))
            cells[f"N{r['N']}_d{r['d']}_{'causal' if r['causal'] else 'full'}"] = {
                "variant": r["variant"], "tflops": r["tflops"], "torch_flash": fl["tflops"], "cudnn": cu["tflops"],
                "x_flash": r["tflops"] / fl["tflops"], "x_cudnn": r["tflops"] / cu["tflops"],
                "check_rel_err": r["check_rel_err"], "torch_rel_err": r["torch_rel_err"]}
    f16 = [r for r in results if r["impl"] == IMPL["float16"] and r.get("err_ratio_vs_torch") is not None]
    f16c = [c for c in checks if c["dtype"] == "float16" and c["impl"] == IMPL["float16"] and c.get("torch_rel_err")]
    worst = max([r["err_ratio_vs_torch"] for r in f16] + [c["rel_err"] / c["torch_rel_err"] for c in f16c if c["rel_err"] is not None])
    fp8 = [r["check_rel_err"] for r in results if r["impl"] == "cupy_fp8_wgmma"] + [
        c["rel_err"] for c in checks if c["impl"] == "cupy_fp8_wgmma" and c["rel_err"] is not None]
    return {"cells": cells, "min_x_flash": min((c["x_flash"] for c in cells.values()), default=None),
            "fp16_worst_err_ratio_vs_torch": worst, "fp8_rel_err_range": [min(fp8, default=None), max(fp8, default=None)],
            "checks_failed": sum(not c["ok"] for c in checks),
            "timed_checks_failed": sum(not r.get("check_ok", False) for r in results if r["impl"].startswith("cupy"))}
