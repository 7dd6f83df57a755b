"""Head dims 32-128 of the tensor-core forward, and the Numba fp32 kernel at d = 64 vs d = 128 (issue 13, item 3).

    python benchmarks/gpu_flash_dims.py [--seed S] [--out DIR] [--name gpu_flash_dims_h200.json]
        [--skip numba,mma_checks,timed] [--dims 96] [--variants 96:w4m2k64er,w4m2k64erl] [--rounds R]

--dims / --variants restrict parts 1 and 3 to some head dims and to named tile shapes (sweep ones included;
default: every shipped variant); --rounds R > 0 times part 3 INTERLEAVED (per size, causal and dtype: round r
launches every variant and torch flash 3 times each; the record keeps the median over rounds).

A companion of gpu_flash.py (which it imports for the float64 reference, the launch wrappers and the
CUDA-event timer); it writes its own JSON so the full run's records stay as they were.

1. Checks (`checks`): cupy_fp16_mma and cupy_bf16_mma, every shipped variant of flash_mma.cu, d = 32,
   64, 96, 128, causal and not, on ragged N, Nq != Nk (both ways), GQA (8 query heads on 2 kv heads)
   and MQA (4 on 1): output (NaN-poisoned first) and lse against a float64 reference (K/V repeated
   per group in the reference only); the Numba candidates on ragged shapes.
2. Numba fp32 at N = 8192 (`numba`): candidate tile shapes for d = 64 and d = 128, timed INTERLEAVED
   (round r times every candidate once, non-causal and causal; the record keeps the median over
   rounds), each checked at the timed size (heads 0-1 vs float64, NaN-poisoned output).
3. Tensor-core forward (`results`): every shipped variant, fp16 and bf16, d = 32, 64, 96, 128, N = 8k,
   16k (B N = 16k tokens, H = 2048 // d), causal and not, and GQA 8:1 (H = 16, Hkv = 2) at N = 8k;
   torch SDPA flash (fp16, bf16; enable_gqa for GQA) on the same inputs. Every timed size checked.
FLOPs = 4 B H N^2 d (halved for causal); records carry pass = "fwd".
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_flash as gf  # noqa: E402  (sets up tinyattn.gpu, numpy's row_stack for numba-cuda)

import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from tinyattn.gpu import cupy_flash, numba_flash  # noqa: E402

DEV = "cuda"
DIMS = (32, 64, 96, 128)
KIND = {"float16": "f16", "bfloat16": "bf16"}
IMPL = {"float16": "cupy_fp16_mma", "bfloat16": "cupy_bf16_mma"}
TOL = gf.TOL
# Numba candidates (d, NumbaConfig fields (tx, ty, rq, ck[, max_regs, pad, sum_once, stage, prefetch])): the shipped d = 64 / 128
# shapes first, then 64x64 tiles at d = 128 (device call 2 of session 20 timed another kernel version with other
# shapes: NOTES.md, JSON numba_vec4_experiment), then session 20 nb128's candidates from the shared-memory model
# (benchmarks/numba_smem_model.py): d = 128 A = 256 threads + pad + sum_once, B = the shipped shape + pad +
# sum_once, A with pad only, and the d = 64 shipped shape + pad + sum_once as the control
NUMBA_CANDS = ((64, (8, 16, 4, 8)), (128, (8, 16, 4, 4)), (128, (8, 16, 4, 8)), (128, (16, 8, 8, 4)),
               (128, (16, 16, 4, 4)), (64, (16, 8, 8, 4)),
               (128, (16, 16, 4, 4, 0, 1, 1)), (128, (8, 16, 4, 4, 0, 1, 1)), (128, (16, 16, 4, 4, 0, 1, 0)),
               (64, (8, 16, 4, 8, 0, 1, 1)),
               # session 21: 512 threads, 128 x 128 tiles at d = 128 (one block per SM, 214 KB): 4 x 8 score
               # micro-tiles at <= 128 registers (model: 0.395 shared wavefronts per FFMA vs d = 64's 0.477)
               (128, (16, 32, 4, 8, 128, 1, 1)), (128, (16, 32, 4, 8, 128, 1, 0)), (128, (16, 32, 4, 8, 128, 0, 1)),
               # session 21, call 3: stage = 8 (a full K / V tile copied in groups of 8 K + 8 V loads issued back to
               # back; in call 3's JSON the field reads 1, when the group size was fixed at 8)
               (128, (16, 32, 4, 8, 128, 1, 0, 8)), (128, (16, 32, 4, 8, 128, 1, 1, 8)), (64, (8, 16, 4, 8, 128, 0, 0, 8)),
               (64, (8, 16, 4, 8, 128, 1, 1, 8)), (128, (16, 16, 4, 4, 0, 1, 1, 8)),
               # call 4: groups of 16 and 32
               (64, (8, 16, 4, 8, 128, 1, 1, 16)), (64, (8, 16, 4, 8, 128, 1, 1, 32)), (128, (16, 32, 4, 8, 128, 1, 1, 16)),
               (128, (16, 32, 4, 8, 128, 1, 1, 32)), (128, (16, 16, 4, 4, 0, 1, 1, 16)),
               # call 5: prefetch = 1 (the next tile's first group loaded during this tile's P V loop)
               (64, (8, 16, 4, 8, 128, 1, 0, 8)), (64, (8, 16, 4, 8, 128, 1, 0, 8, 1)), (64, (8, 16, 4, 8, 128, 1, 1, 8, 1)),
               (128, (16, 32, 4, 8, 128, 1, 0, 8, 1)), (128, (16, 32, 4, 8, 128, 1, 1, 8, 1)))


VARIANTS_OVERRIDE: dict = {}     # --variants: d -> tile shapes to check and time instead of the shipped ones
ROUNDS = 0                       # --rounds: > 0 times part 3 interleaved


def variants(d: int) -> list:
    """The tile shapes of head dim d that parts 1 and 3 check and time (default: the shipped ones)."""
    return VARIANTS_OVERRIDE.get(d) or sorted(cupy_flash.shipped_variants(d))


def log(*a):
    print(*a, flush=True)


def reference(q, k, v, causal):
    """float64 (out, lse); q (B, H, Nq, d), k, v (B, Hkv, Nk, d): kv head h // (H // Hkv)."""
    g = q.shape[1] // k.shape[1]
    k, v = (x.double().repeat_interleave(g, dim=1) for x in (k, v))
    q = q.double()
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    nq, nk = s.shape[-2:]
    if causal:
        ok = torch.arange(nk, device=DEV)[None, :] <= torch.arange(nq, device=DEV)[:, None] + (nk - nq)
        s = s.masked_fill(~ok, float("-inf"))
    lse = torch.logsumexp(s, -1)                                   # -inf for a row that sees no key
    p = torch.exp(s - torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))[..., None])
    return p @ v, lse


def mma_fn(dtype, q, k, v, causal, variant):
    """(run, out, lse) for the tensor-core kernel on torch tensors q (B, H, Nq, d), k, v (B, Hkv, Nk, d)."""
    B, H, nq, d = q.shape
    hkv, nk = k.shape[1], k.shape[2]
    q3, k3, v3 = q.reshape(B * H, nq, d), k.reshape(B * hkv, nk, d), v.reshape(B * hkv, nk, d)
    o = torch.empty_like(q3)
    lse = torch.empty(B * H, nq, device=DEV)
    cq, ck, cv, co, cl = (gf.as_cupy(x) for x in (q3, k3, v3, o, lse))
    run = lambda: cupy_flash.launch(cq, ck, cv, co, KIND[dtype], cl, is_causal=causal, variant=variant,  # noqa: E731
                                    group=H // hkv)
    return run, o.view(B, H, nq, d), lse.view(B, H, nq)


def torch_fn(q, k, v, causal):
    """torch's FlashAttention-2 forward; GQA through enable_gqa (K/V repeated if that backend refuses it)."""
    box = {"gqa_repeat_kv": False}
    gqa = k.shape[1] != q.shape[1]

    def run():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            box["o"] = TF.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
    try:
        run()
    except RuntimeError:
        if not gqa:
            raise
        k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], dim=1) for x in (k, v))
        gqa = False
        box["gqa_repeat_kv"] = True
    return run, box


def compare(o, lse, ref, ref_lse, heads=None) -> dict:
    """Errors of out (and lse) against float64, on heads [:heads] of batch 0 if given."""
    if heads:
        o, ref, ref_lse = o[:1, :heads], ref[:1, :heads], ref_lse[:1, :heads]
        lse = None if lse is None else lse[:1, :heads]
    o = o.double()
    r = {"check_rel_err": (torch.linalg.norm(o - ref) / torch.linalg.norm(ref)).item(),
         "check_max_abs": (o - ref).abs().max().item(), "check_nan": bool(torch.isnan(o).any())}
    if lse is not None:
        fin = torch.isfinite(ref_lse)
        r["lse_max_abs"] = (lse.double()[fin] - ref_lse[fin]).abs().max().item()
        r["lse_inf_ok"] = bool((lse[~fin] == float("-inf")).all())
    return r


def mma_checks(gen) -> list[dict]:
    # (B, H, Hkv, Nq, Nk): ragged; Nq < Nk; Nq > Nk (causal: leading rows see no key); GQA 4:1; MQA
    cases = [(1, 2, 2, 257, 257), (1, 2, 2, 300, 1000), (1, 2, 2, 1000, 300), (1, 8, 2, 333, 333), (2, 4, 1, 200, 517)]
    rows = []
    for dtype in ("float16", "bfloat16"):
        for d in DIMS:
            for variant in variants(d):
                for causal in (False, True):
                    for B, H, hkv, nq, nk in cases:
                        rec = {"impl": IMPL[dtype], "dtype": dtype, "variant": variant, "d": d, "causal": causal,
                               "B": B, "H": H, "Hkv": hkv, "Nq": nq, "Nk": nk}
                        try:
                            q = torch.randn(B, H, nq, d, device=DEV, generator=gen).to(gf.TORCH_DT[dtype])
                            k, v = (torch.randn(B, hkv, nk, d, device=DEV, generator=gen).to(gf.TORCH_DT[dtype]) for _ in range(2))
                            run, o, lse = mma_fn(dtype, q, k, v, causal, variant)
                            o.fill_(float("nan"))
                            lse.fill_(float("nan"))
                            run()
                            torch.cuda.synchronize()
                            ref, ref_lse = reference(q, k, v, causal)
                            rec.update(compare(o, lse, ref, ref_lse))
                            rec["ok"] = (rec["check_rel_err"] < TOL[dtype] and not rec["check_nan"]
                                         and rec["lse_max_abs"] < 1e-2 and rec["lse_inf_ok"])
                        except Exception as e:  # noqa: BLE001
                            rec.update(ok=False, error=f"{type(e).__name__}: {e}"[:300])
                        rows.append(rec)
            bad = [r for r in rows if r["dtype"] == dtype and r["d"] == d and not r["ok"]]
            worst = max(r.get("check_rel_err", float("inf")) for r in rows if r["dtype"] == dtype and r["d"] == d)
            log(f"check mma {dtype:9s} d={d:3d} worst rel {worst:.1e} " + ("OK" if not bad else f"FAIL {bad[0]}"))
    return rows


def numba_checks(gen) -> list[dict]:
    from numba import cuda
    rows = []
    for d, shape in NUMBA_CANDS:
        cfg = numba_flash.NumbaConfig(*shape)
        for causal in (False, True):
            for nq, nk in ((257, 257), (300, 1000), (1000, 300)):
                q = torch.randn(1, 2, nq, d, device=DEV, generator=gen)
                k, v = (torch.randn(1, 2, nk, d, device=DEV, generator=gen) for _ in range(2))
                o, lse = torch.full_like(q, float("nan")), torch.full(q.shape[:-1], float("nan"), device=DEV)
                args = [cuda.as_cuda_array(x.reshape(2, x.shape[2], -1) if x.dim() == 4 else x.reshape(2, -1))
                        for x in (q, k, v, o, lse)]
                numba_flash.launch(*args, is_causal=causal, config=cfg)
                torch.cuda.synchronize()
                ref, ref_lse = reference(q, k, v, causal)
                rec = {"impl": "numba_fp32", "dtype": "float32", "config": list(shape), "d": d, "causal": causal,
                       "B": 1, "H": 2, "Hkv": 2, "Nq": nq, "Nk": nk, **compare(o, lse, ref, ref_lse)}
                rec["ok"] = rec["check_rel_err"] < TOL["float32"] and not rec["check_nan"] and rec["lse_max_abs"] < 1e-4
                rows.append(rec)
        log(f"check numba d={d} {shape}: " + ("OK" if all(r["ok"] for r in rows if r["config"] == list(shape) and r["d"] == d) else "FAIL"))
    return rows


def numba_interleaved(gen, rounds: int = 5, per_round: int = 3) -> list[dict]:
    """Every candidate at N = 8192, B = 2, H = 2048 / d; round r launches each (candidate, causal) per_round
    times (CUDA events each), so slow drift of clocks or temperature hits every candidate alike."""
    from numba import cuda
    slots = []
    for d, shape in NUMBA_CANDS:
        cfg = numba_flash.NumbaConfig(*shape)
        B, H, N = 2, 2048 // d, 8192
        q, k, v = (torch.randn(B, H, N, d, device=DEV, generator=gen) for _ in range(3))
        o, lse = torch.empty_like(q), torch.empty(B, H, N, device=DEV)
        args = [cuda.as_cuda_array(x.reshape(B * H, N, -1) if x.dim() == 4 else x.reshape(B * H, N)) for x in (q, k, v, o, lse)]
        for causal in (False, True):
            run = (lambda a=args, c=causal, f=cfg: numba_flash.launch(*a, is_causal=c, config=f))
            o.fill_(float("nan"))
            run()
            torch.cuda.synchronize()
            ref, ref_lse = reference(q[:1, :2], k[:1, :2], v[:1, :2], causal)
            chk = compare(o[:1, :2], lse[:1, :2], ref, ref_lse)
            kern = numba_flash.make_kernel(d, cfg)
            rec = {"impl": "numba_fp32", "dtype": "float32", "pass": "fwd", "config": list(shape), "B": B, "H": H,
                   "N": N, "d": d, "causal": causal, "shared_bytes": numba_flash.shared_bytes(d, cfg),
                   "regs": sorted(set(kern.get_regs_per_thread().values())) if hasattr(kern, "get_regs_per_thread") else None,
                   **chk, "times": []}
            rec["check_ok"] = chk["check_rel_err"] < TOL["float32"] and not chk["check_nan"] and chk["lse_max_abs"] < 1e-4
            try:                      # the PTX this machine's compiler made: 16-byte vs 4-byte shared loads
                ptx = "".join(kern.inspect_asm().values())
                rec["ptx_ld_shared"] = {"v4": ptx.count("ld.shared.v4.f32"), "v2": ptx.count("ld.shared.v2.f32"),
                                        "f32": ptx.count("ld.shared.f32")}
            except Exception as e:  # noqa: BLE001
                rec["ptx_ld_shared"] = f"{type(e).__name__}: {e}"[:200]
            slots.append((rec, run, (q, k, v, o, lse)))
    for _ in range(rounds):
        for rec, run, _keep in slots:
            for _i in range(per_round):
                rec["times"].append(gf.event_ms(run))
    rows = []
    for rec, _run, _keep in slots:
        rec["ms"] = statistics.median(rec["times"])
        rec["tflops"] = 4 * rec["B"] * rec["H"] * rec["N"] ** 2 * rec["d"] / (2 if rec["causal"] else 1) / rec["ms"] / 1e9
        rows.append(rec)
        log(f"numba d={rec['d']:3d} {tuple(rec['config'])} smem {rec['shared_bytes']:6d} regs {rec['regs']} ld {rec['ptx_ld_shared']} causal={int(rec['causal'])} "
            f"{rec['tflops']:6.2f} TFLOP/s (spread {min(rec['times']):.1f}-{max(rec['times']):.1f} ms) err {rec['check_rel_err']:.1e}")
    return rows


def interleave(slots: list, rounds: int, per_round: int = 3) -> None:
    """Time (rec, run, keep) slots in turn: one warm-up launch each, then `rounds` rounds in which every slot
    launches per_round times (CUDA events each), so clock or temperature drift hits every slot alike; rec gets
    the median ms, TFLOP/s and every time. A slot that raises gets an error and leaves the rounds."""
    live = list(slots)
    for _ in range(rounds + 1):
        for slot in list(live):
            rec, run, _keep = slot
            try:
                for _i in range(per_round if "times" in rec else 1):
                    ms = gf.event_ms(run)
                    if "times" in rec:
                        rec["times"].append(ms)
                rec.setdefault("times", [])          # the first pass is the warm-up
            except Exception as e:  # noqa: BLE001
                rec.update(check_ok=False, error=f"{type(e).__name__}: {e}"[:300])
                live.remove(slot)
    for rec, _run, _keep in slots:
        if rec.get("times") and "error" not in rec:
            rec["ms"] = statistics.median(rec["times"])
            flops = 4 * rec["B"] * rec["H"] * rec["N"] ** 2 * rec["d"] / (2 if rec["causal"] else 1)
            rec.update(tflops=flops / rec["ms"] / 1e9, reps=len(rec["times"]), timing=f"interleaved {rounds} x {per_round}")
        else:
            rec.update(ms=None, tflops=None)


def timed(gen) -> list[dict]:
    rows = []
    sizes = [(d, N, max(1, 16384 // N), 2048 // d, 2048 // d) for d in DIMS for N in (8192, 16384)]
    sizes += [(d, 8192, 2, 16, 2) for d in DIMS]                       # GQA 8:1
    for d, N, B, H, hkv in sizes:
        for causal in (False, True):
            for dtype in ("float16", "bfloat16"):
                q = torch.randn(B, H, N, d, device=DEV, generator=gen).to(gf.TORCH_DT[dtype])
                k, v = (torch.randn(B, hkv, N, d, device=DEV, generator=gen).to(gf.TORCH_DT[dtype]) for _ in range(2))
                kv = 1 if hkv < H else 2          # GQA: query heads 0-1 (one group of 8) both read kv head 0
                ref, ref_lse = reference(q[:1, :2], k[:1, :kv], v[:1, :kv], causal)
                runs = [(IMPL[dtype], var) for var in variants(d)] + [("torch_sdpa_flash", None)]
                slots = []                        # --rounds: (rec, run, outputs) timed together after the checks
                for impl, variant in runs:
                    rec = {"impl": impl, "dtype": dtype, "pass": "fwd", "B": B, "H": H, "Hkv": hkv, "N": N, "d": d,
                           "causal": causal}
                    if variant:
                        rec["variant"] = variant
                        rec["default"] = variant == cupy_flash.DEFAULT_VARIANT[d]
                    try:
                        if impl == "torch_sdpa_flash":
                            run, keep = torch_fn(q, k, v, causal)
                            run()
                            torch.cuda.synchronize()
                            keep["o"].fill_(float("nan"))
                            run()
                            torch.cuda.synchronize()
                            rec.update(compare(keep["o"], None, ref, ref_lse, heads=2), gqa_repeat_kv=keep["gqa_repeat_kv"])
                        else:
                            run, o, lse = mma_fn(dtype, q, k, v, causal, variant)
                            keep = (o, lse)
                            o.fill_(float("nan"))
                            run()
                            torch.cuda.synchronize()
                            rec.update(compare(o, lse, ref, ref_lse, heads=2))
                        rec["check_ok"] = rec["check_rel_err"] < TOL[dtype] and not rec["check_nan"] and rec.get("lse_max_abs", 0) < 1e-2
                        if ROUNDS:
                            slots.append((rec, run, keep))
                        else:
                            ms, t = gf.time_ms(run, target_s=0.1, max_reps=30)
                            rec.update(ms=ms, tflops=4 * B * H * N * N * d / (2 if causal else 1) / ms / 1e9, reps=len(t))
                    except Exception as e:  # noqa: BLE001
                        rec.update(ms=None, tflops=None, check_ok=False, error=f"{type(e).__name__}: {e}"[:300])
                    rows.append(rec)
                interleave(slots, ROUNDS)
                for rec in rows[-len(runs):]:
                    log(f"{rec['impl']:17s} {rec.get('variant', ''):13s} {dtype:8s} d={d:3d} N={N:5d} H={H}/{hkv} c={int(causal)} "
                        + (f"{rec['tflops']:6.1f} TFLOP/s err {rec['check_rel_err']:.1e}" if rec.get("tflops") else rec.get("error", "")))
                del q, k, v, slots
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", str(gf.ROOT / "benchmarks" / "results")))
    ap.add_argument("--name", default="gpu_flash_dims_h200.json")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: mma_checks,numba,timed")
    ap.add_argument("--numba-cands", default="", help="indices into NUMBA_CANDS to run (comma-separated; default all)")
    ap.add_argument("--keep", default="", help="earlier JSON of this script: copy the skipped parts' records from it "
                    "(and its Numba records as numba_before)")
    ap.add_argument("--dims", default="", help="head dims of parts 1 and 3 (comma-separated; default 32,64,96,128)")
    ap.add_argument("--variants", default="", help="d:v1,v2[;d:...] tile shapes of head dim d to check and time "
                    "(cupy_flash.VARIANTS names, sweep ones included; default: the shipped ones)")
    ap.add_argument("--rounds", type=int, default=0, help="> 0: time part 3 interleaved, this many rounds")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    global DIMS, ROUNDS
    DIMS = tuple(int(x) for x in args.dims.split(",")) if args.dims else DIMS
    ROUNDS = args.rounds
    for item in filter(None, args.variants.split(";")):
        d, names = item.split(":")
        bad = [n for n in names.split(",") if n not in cupy_flash.VARIANTS[int(d)]]
        if bad:
            raise ValueError(f"--variants: {bad} not in cupy_flash.VARIANTS[{d}] {sorted(cupy_flash.VARIANTS[int(d)])}")
        VARIANTS_OVERRIDE[int(d)] = names.split(",")
    if args.numba_cands:
        global NUMBA_CANDS
        NUMBA_CANDS = tuple(NUMBA_CANDS[int(i)] for i in args.numba_cands.split(","))
    gen = torch.Generator(device=DEV)
    gen.manual_seed(args.seed)
    props = torch.cuda.get_device_properties(0)
    meta = {"seed": args.seed, "gpu": props.name, "sm_count": props.multi_processor_count,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": gf.versions(), "flops_formula": "4*B*H*N^2*d, halved when causal",
            "timing": "CUDA events; mma / torch: median after warm-up; numba: median over interleaved rounds",
            "default_variant": cupy_flash.DEFAULT_VARIANT, "load_avg": os.getloadavg(),
            "argv": sys.argv[1:], "dims": list(DIMS), "variants": {d: variants(d) for d in DIMS}, "rounds": ROUNDS}
    log(json.dumps(meta))
    t0 = time.time()
    out = {**meta, "checks": [], "numba": [], "results": []}
    if args.keep:                       # records of an earlier run for the parts skipped now
        old = json.loads(Path(args.keep).read_text())
        out["numba_before"] = old["numba"]
        out["numba_before_from"] = f"run of {old['date']} (seed {old['seed']}): the Numba records this run replaced"
        for key, val in old.items():     # other records of the earlier file (e.g. numba_vec4_experiment) stay
            if key not in out and key not in meta and key not in ("kept_from", "wall_s", "errors"):
                out[key] = val
        out["kept_from"] = {"date": old["date"], "seed": old["seed"], "parts": sorted(skip - {""})}
        if "mma_checks" in skip:
            out["checks"] += [c for c in old["checks"] if c["impl"] != "numba_fp32"]
        if "timed" in skip:
            out["results"] += old["results"]
    path = Path(args.out) / args.name
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for part, key, fn in (("numba", "checks", numba_checks), ("numba", "numba", numba_interleaved),
                          ("mma_checks", "checks", mma_checks), ("timed", "results", timed)):
        if part in skip:
            continue
        t = time.time()
        try:
            out[key] += fn(gen)
        except Exception:  # noqa: BLE001 - keep the other parts' records
            traceback.print_exc()
            out.setdefault("errors", []).append(f"{fn.__name__}: {traceback.format_exc()[-600:]}")
        out["wall_s"] = time.time() - t0
        log(f"[{part}: {time.time() - t:.0f} s]")
        path.write_text(json.dumps(out, indent=1))                      # partial file after each part
    # summary
    log(f"\nwrote {path} ({out['wall_s']:.0f} s)")
    log("checks failed:", [c for c in out["checks"] if not c["ok"]][:3] or "none")
    log("timed checks failed:", [(r["impl"], r["d"], r["N"]) for r in out["results"] + out["numba"] if not r.get("check_ok")] or "none")
    for r in out["numba"]:
        log(f"numba d={r['d']:3d} {tuple(r['config'])} c={int(r['causal'])} {r['tflops']:.2f}")
    get = {(r["impl"], r.get("variant"), r["dtype"], r["d"], r["N"], r["causal"], r["Hkv"] < r["H"]): r["tflops"]
           for r in out["results"] if r.get("tflops")}
    for d in DIMS:
        for n in (8192, 16384):
            for causal in (False, True):
                fl = get.get(("torch_sdpa_flash", None, "float16", d, n, causal, False))
                ours = {v: get.get(("cupy_fp16_mma", v, "float16", d, n, causal, False)) for v in variants(d)}
                log(f"fp16 N={n} d={d:3d} c={int(causal)} torch flash {fl and round(fl, 1)}  ours " +
                    "  ".join(f"{v} {t and round(t, 1)} ({t and fl and round(t / fl, 2)}x)" for v, t in ours.items()))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
