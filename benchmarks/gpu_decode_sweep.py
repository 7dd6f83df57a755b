"""Sessions 20-21 (issue 13): decoding against torch SDPA at every batch, one device call.

    python benchmarks/gpu_decode.py --sweep [--out DIR] [--seed S] [--key KEY]

--key session21 (the default): the shipped default (since session 21 the cooperative kernel at d = 128,
Lq = 1) against the previous default (one warp per chunk, ``coop=False``: "cupy_fp16_decode_w1") and torch
SDPA (default, cuDNN, flash), stored under data["session21"] = {results, decode_checks, meta}; notebook 07
and README read it. --key session20: session 20's variant list, replacing the top-level records (run S2).
--key dec2: session 20 dec2's variants, stored under data["dec2"]. The committed records are all kept.

1. Copy bandwidth (bytes read + written) and the CPU cost of one launch: an empty kernel through
   CuPy's RawKernel call, through a prepacked cuLaunchKernel (decode._fast), and a one-element torch op.
2. Decode checks (gpu_decode.decode_checks: every variant of CHECK_VARIANTS, contiguous and paged,
   Lq 1..16, GQA, ragged lengths, fp16/bf16, d 64/128) against float64, outputs NaN-poisoned.
3. Context 32k, Hq 64 / Hkv 8 (GQA 8:1), d 128, fp16, B = 1, 4, 16, 64, Lq = 1: the shipped default
   and the alternatives (CuPy launch path, separate / fused merge, chunk rule for half / two waves,
   run 8's rule), each checked at the timed size, then timed interleaved with torch SDPA (default,
   cuDNN, flash) in ROUNDS = 5 rounds (rotated order): one call between two events, and 20 calls back to back.
   Which backend torch's default picks (torch._fused_sdp_choice); the kernels each side runs (profiler,
   after all timings: it slows later CPU launch paths).
   Lq = 16: the default and paged, once.
Merges into the committed benchmarks/results/gpu_decode_h200.json (old top-level decode records kept
under *_run7 / *_run8 keys) and writes OUT/gpu_decode_h200.json; prints a table last.
"""
from __future__ import annotations

import datetime
import json
import statistics
import time
from pathlib import Path

import cupy as cp
import numpy as np
import torch
import torch.nn.functional as TF
from torch.nn.attention import SDPBackend, sdpa_kernel

from gpu_decode import DEV, ROOT, decode_checks, decode_reference, err, from_cupy, log, run_decode, time_b2b
from gpu_flash import time_ms, versions
from tinyattn.gpu import decode

S, HQ, HKV, D = 32768, 64, 8, 128
RUN8_CHUNK = {1: 1024, 4: 1024, 16: 1952, 64: 6560}      # run 8's rule (2112 warps, chunk >= 1024)
ROUNDS = 5                                                # interleaved timing rounds at Lq = 1


def profile_kernels(gen, key: str = "session20") -> dict:
    """Kernel names and GPU microseconds per call (torch profiler) at B = 1 and 16, Lq = 1. Run LAST:
    once the profiler has run, CUPTI keeps tracing driver calls in this process and every later CPU
    launch path is slower (run S1: torch's default +20 us per call)."""
    out = {}
    for B in (1, 16):
        k, v = (torch.randn(B, HKV, S, D, device=DEV, generator=gen, dtype=torch.float16) for _ in range(2))
        q = torch.randn(B, HQ, 1, D, device=DEV, generator=gen, dtype=torch.float16)
        lens = torch.full((B,), S, device=DEV, dtype=torch.int32)
        out[B] = {"torch_sdpa_default": kernels_of(lambda: TF.scaled_dot_product_attention(q, k, v, enable_gqa=True))}
        names = (("cupy_fp16_decode", {}), ("cupy_fp16_decode_w1", {"coop": False})) if key == "session21" else \
            (("cupy_fp16_decode", {}), ("cupy_fp16_decode_sepmerge", {"fused": False})) + tuple(DEC2_VARIANTS)
        for name, kw in names:                          # the split kernel's own time is the question at B = 1
            var, *_ = run_decode(q, k, v, lens, True, "float16", **kw)
            out[B][name] = kernels_of(var)
            del var
        del k, v, q
    return out


def launch_overhead() -> dict:
    """CPU microseconds per launch (500 launches queued, then one sync; GPU time of an empty kernel is
    ~2 us, so a larger figure is the CPU side)."""
    k = cp.RawKernel('extern "C" __global__ void ta_empty(const float* x, int n) {}', "ta_empty")
    x = cp.zeros(1, cp.float32)
    t = torch.zeros(1, device=DEV)
    fast = decode._fast(k, (1,), (32,), 0, (x, np.int32(1)))
    fns = {"cupy_rawkernel_call": lambda: k((1,), (32,), (x, np.int32(1))), "cuLaunchKernel_prepacked": fast,
           "torch_add_one_element": lambda: t.add_(1)}
    out = {"prepacked_path_used": bool(getattr(fast, "fast", False))}
    for name, fn in fns.items():
        for _ in range(50):
            fn()
        torch.cuda.synchronize()
        best = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(500):
                fn()
            t1 = time.perf_counter()
            torch.cuda.synchronize()
            best.append(((t1 - t0) / 500 * 1e6, (time.perf_counter() - t0) / 500 * 1e6))
        out[name] = {"cpu_us": min(b[0] for b in best), "with_sync_us": min(b[1] for b in best)}
        log(f"launch {name:26s} CPU {out[name]['cpu_us']:.2f} us/launch")
    return out


def torch_info(q, k, v) -> dict:
    info = {}
    try:
        c = torch._fused_sdp_choice(q, k, v, enable_gqa=True)
        info["fused_sdp_choice"] = int(c)
        try:
            info["backend"] = SDPBackend(c).name
        except Exception:  # noqa: BLE001
            info["backend"] = {0: "MATH", 1: "FLASH_ATTENTION", 2: "EFFICIENT_ATTENTION", 3: "CUDNN_ATTENTION"}.get(int(c), str(c))
    except Exception as e:  # noqa: BLE001
        info["fused_sdp_choice_error"] = f"{type(e).__name__}: {e}"[:200]
    return info


def kernels_of(fn, n: int = 5) -> list[dict]:
    """GPU kernels one call runs (names, microseconds per call), from the torch profiler (CUPTI)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
    out = []
    for e in prof.key_averages():
        dt = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0) or 0
        if dt > 0 and e.count >= n:
            out.append({"name": e.key[:140], "us_per_call": dt / n, "count": e.count})
    return out


def our_variants(B: int, key: str = "session20") -> list[tuple[str, dict]]:
    """Timed variants at Lq = 1: session 20's list plus dec2's; --key dec2 times only the default, the
    separate-merge default and dec2's (session 20's others were measured in run S2); --key session21 the
    default (cooperative at d = 128), the previous default (w1) and the paged default."""
    if key == "session21":
        return [("cupy_fp16_decode", {}), ("cupy_fp16_decode_w1", {"coop": False}), ("cupy_fp16_decode_paged16", {"paged": 16})]
    if key != "session20":
        return [("cupy_fp16_decode", {}), ("cupy_fp16_decode_sepmerge", {"fused": False})] + DEC2_VARIANTS
    v = [("cupy_fp16_decode", {}), ("cupy_fp16_decode_cupylaunch", {"fast": False}),
         ("cupy_fp16_decode_sepmerge", {"fused": False}), ("cupy_fp16_decode_fusedmerge", {"fused": True}),
         ("cupy_fp16_decode_slots264", {"slots": 264}), ("cupy_fp16_decode_slots1056", {"slots": 1056}),
         ("cupy_fp16_decode_run8rule", {"chunk": RUN8_CHUNK[B], "fused": False, "fast": False}),
         ("cupy_fp16_decode_paged16", {"paged": 16}), ("cupy_fp16_decode_s3", {"stages": 3}),
         ("cupy_fp16_decode_nwb2", {"nwb": 2}), ("cupy_fp16_decode_nwb2_slots528", {"nwb": 2, "slots": 528}),
         ("cupy_fp16_decode_paged16_slots1584", {"paged": 16, "slots": 1584})]
    v += DEC2_VARIANTS
    return v


# session 20 dec2 variants (NOTES.md "Session 20: dec2": analysis and predictions written before the run):
# (a) coop: 4 warps share 128-key tiles of one chunk (cuDNN's 16x128x128 1x4x1 shape; occupancy slots 132 ->
#     n_part 16 / 4 / 1 / 1); (b) 16-key tiles: k16 (80 KB smem, 2 blocks per SM: slots 1056) and the same at
#     528 slots, k16s4 (4 stages, 3 tiles in flight per warp); (c) allsm: chunks of any length so that
#     B = 1 fills all 132 SMs (66 chunks of 497 keys) - the default kernel, other chunk rule.
DEC2_VARIANTS = [("cupy_fp16_decode_coop", {"coop": True}), ("cupy_fp16_decode_coop_slots264", {"coop": True, "slots": 264}),
                 ("cupy_fp16_decode_k16", {"bk": 16}), ("cupy_fp16_decode_k16_slots528", {"bk": 16, "slots": 528}),
                 ("cupy_fp16_decode_k16s4", {"bk": 16, "stages": 4}), ("cupy_fp16_decode_allsm", {"chunk_align": 1})]


def sweep(gen, copy_gbps: float, meta: dict, key: str = "session20") -> list[dict]:
    rows = []
    for B in (1, 4, 16, 64):
        k, v = (torch.randn(B, HKV, S, D, device=DEV, generator=gen, dtype=torch.float16) for _ in range(2))
        lens = torch.full((B,), S, device=DEV, dtype=torch.int32)
        kv_bytes = 2 * B * HKV * S * D * 2
        for lq in (1, 16):
            q = torch.randn(B, HQ, lq, D, device=DEV, generator=gen, dtype=torch.float16)
            ro, rl = decode_reference(q, k, v, lens, True)
            runs, recs, keep = {}, {}, []
            variants = our_variants(B, key) if lq == 1 else [("cupy_fp16_decode", {}), ("cupy_fp16_decode_paged16", {"paged": 16})]
            for impl, kw in variants:
                kw = dict(kw)
                pbs = kw.pop("paged", None)
                rec = {"impl": impl, "pass": "decode", "dtype": "float16", "B": B, "H": HQ, "Hkv": HKV, "N": S, "Lq": lq,
                       "d": D, "causal": True, "copy_gbps": copy_gbps, "options": {**kw, "paged_block": pbs}}
                go, o, l, kp = run_decode(q, k, v, lens, True, "float16", pbs, gen, **kw)
                o.fill(float("nan"))
                l.fill(float("nan"))
                go()
                torch.cuda.synchronize()
                rec["out_err"], rec["lse_err"] = err(from_cupy(o, "float16"), ro), err(torch.from_dlpack(l), rl)
                rec["check_ok"] = rec["out_err"]["rel"] < 5e-3 and rec["lse_err"]["rel"] < 5e-3 and not rec["out_err"]["nan"]
                for a in ("n_part", "chunk", "wpc", "nwb", "stages", "fused", "fast", "slots", "bk", "coop", "chunk_align", "grid"):
                    rec[a] = getattr(go, a)
                runs[impl], recs[impl] = go, rec
                keep.append(kp)
            if lq == 1:
                meta.setdefault("torch_backend", {})[B] = torch_info(q, k, v)
                for impl, backend in (("torch_sdpa_default", None), ("torch_sdpa_cudnn", SDPBackend.CUDNN_ATTENTION),
                                      ("torch_sdpa_flash", SDPBackend.FLASH_ATTENTION)):
                    box = {}

                    def run(backend=backend, box=box):
                        if backend is None:
                            box["o"] = TF.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                        else:
                            with sdpa_kernel(backend):
                                box["o"] = TF.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                    rec = {"impl": impl, "pass": "decode", "dtype": "float16", "B": B, "H": HQ, "Hkv": HKV, "N": S,
                           "Lq": 1, "d": D, "causal": False, "copy_gbps": copy_gbps}
                    try:
                        run()
                        torch.cuda.synchronize()
                        rec["out_err"] = err(box["o"], ro)
                        runs[impl] = run
                    except Exception as e:  # noqa: BLE001
                        rec.update(ms=None, error=f"{type(e).__name__}: {e}"[:200])
                    recs[impl] = rec
            names = list(runs)
            singles, b2bs = {n: [] for n in names}, {n: [] for n in names}
            for rnd in range(ROUNDS if lq == 1 else 1):
                order = names[rnd % len(names):] + names[:rnd % len(names)]
                for n in order:
                    singles[n].append(time_ms(runs[n], target_s=0.04, max_reps=25)[0])
                    b2bs[n].append(time_b2b(runs[n], n=20, rounds=3))
            for n in names:
                ms, mb = statistics.median(singles[n]), statistics.median(b2bs[n])
                recs[n].update(ms=ms, ms_b2b=mb, gbps=kv_bytes / ms / 1e6, gbps_b2b=kv_bytes / mb / 1e6,
                               tflops=4 * B * HQ * lq * S * D / ms / 1e9, rounds_ms=singles[n], rounds_ms_b2b=b2bs[n])
            for n, rec in recs.items():
                rows.append(rec)
                if rec.get("ms"):
                    log(f"{n:30s} B={B:3d} Lq={lq:2d} {rec['ms']:8.4f} ms (b2b {rec['ms_b2b']:.4f}) "
                        f"{rec['gbps'] / copy_gbps:.2f} x copy" + (f" n_part {rec['n_part']} fused {rec['fused']} fast "
                                                                   f"{rec['fast']} ok {rec['check_ok']}" if "n_part" in rec else ""))
            del q, keep, runs
        del k, v
        torch.cuda.empty_cache()
    return rows


def main_sweep(args) -> None:
    gen = torch.Generator(device=DEV)
    gen.manual_seed(args.seed)
    t0 = time.time()
    meta = {"seed": args.seed, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(), "gpu": torch.cuda.get_device_properties(0).name,
            "timing": f"median of {ROUNDS} interleaved rounds (Lq = 1; Lq = 16 one round); each round: median of <= 25 single calls between two CUDA "
                      "events, and median of 3 x (20 calls back to back) / 20"}
    x = torch.randn(1 << 30, device=DEV)
    y = torch.empty_like(x)
    meta["copy_gbps"] = 2 * x.numel() * 4 / time_ms(lambda: y.copy_(x), target_s=0.3)[0] / 1e6
    del x, y
    log(f"copy {meta['copy_gbps']:.0f} GB/s")
    meta["launch_overhead"] = launch_overhead()
    checks = decode_checks(gen)
    res = sweep(gen, meta["copy_gbps"], meta, getattr(args, "key", "session20"))
    try:
        meta["profiler_kernels"] = profile_kernels(gen, getattr(args, "key", "session20"))
    except Exception as e:  # noqa: BLE001
        meta["profiler_kernels_error"] = f"{type(e).__name__}: {e}"[:300]
    meta["wall_s"] = time.time() - t0
    base_path = ROOT / "benchmarks" / "results" / "gpu_decode_h200.json"
    data = json.loads(base_path.read_text())
    key = getattr(args, "key", "session20")
    if key != "session20":                              # a sweep of its own (e.g. dec2): the committed records stay
        meta["key"] = key
        data[key] = {"results": res, "decode_checks": checks, "meta": meta}
    else:
        if "results_run7" not in data:                  # the old top level (run 7 records, run 8 checks)
            data["results_run7"], data["decode_checks_run8"] = data["results"], data["decode_checks"]
        data["results"], data["decode_checks"], data["session20"] = res, checks, meta
    data["note"] = ("top-level results and decode_checks are session 20 (gpu_decode.py --sweep --key session20: one-wave "
                    "chunk rule, fused merge, prepacked launches; its seed, date, copy_gbps under session20); session21 "
                    "holds the run of the session-21 default (cooperative kernel at d = 128, Lq = 1) against the previous "
                    "default (cupy_fp16_decode_w1) and torch, that notebook 07 reads; lse_checks, "
                    "numba_backward, naive_split, forward_retime and seed/date/copy_gbps at the top are run 7; "
                    "results_run7 / decode_checks_run8 are the previous decode records; any other key holding "
                    "{results, decode_checks, meta} is a separate sweep (gpu_decode.py --sweep --key KEY)")
    out = Path(args.out) / "gpu_decode_h200.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    log(f"\nwrote {out} ({meta['wall_s']:.0f} s); checks {sum(c['ok'] for c in checks)}/{len(checks)} ok; "
        f"timed-size checks {sum(bool(r.get('check_ok')) for r in res if 'check_ok' in r)}/{sum('check_ok' in r for r in res)}")
    log(f"torch backend: {meta.get('torch_backend')}")
    log(f"copy {meta['copy_gbps']:.0f} GB/s; launch CPU us: " + ", ".join(
        f"{k_} {v_['cpu_us']:.1f}" for k_, v_ in meta["launch_overhead"].items() if isinstance(v_, dict)))
    get = {(r["impl"], r["B"], r["Lq"]): r for r in res if r.get("ms")}
    log(f"{'impl (Lq = 1)':30s} " + " ".join(f"{'B=' + str(b):>15s}" for b in (1, 4, 16, 64)) + "   (ms, b2b; x torch default)")
    for impl in [n for n, _ in our_variants(1, getattr(args, "key", "session20"))] + ["torch_sdpa_default", "torch_sdpa_cudnn", "torch_sdpa_flash"]:
        cells = []
        for b in (1, 4, 16, 64):
            r, t = get.get((impl, b, 1)), get.get(("torch_sdpa_default", b, 1))
            cells.append(f"{r['ms']:.4f}/{r['ms_b2b'] / t['ms_b2b']:.2f}/{r['ms'] / t['ms']:.2f}" if r and t else "-")
        log(f"{impl:30s} " + " ".join(f"{c:>15s}" for c in cells))
    log("cells: single ms / (b2b ratio to torch default) / (single ratio); < 1.00 = ours faster")
    cp_ = meta["copy_gbps"]
    for impl in ("cupy_fp16_decode", "cupy_fp16_decode_w1", "torch_sdpa_default"):
        cells = [f"{get[(impl, b, 1)]['gbps'] / cp_:.2f}/{get[(impl, b, 1)]['gbps_b2b'] / cp_:.2f}"
                 if (impl, b, 1) in get else "-" for b in (1, 4, 16, 64)]
        log(f"{impl + ' x copy':30s} " + " ".join(f"{c:>15s}" for c in cells) + "   (single / b2b)")
    if all(("cupy_fp16_decode_w1", b, 1) in get for b in (1, 4, 16, 64)):
        log("default / previous default (w1), single / b2b: " + ", ".join(
            f"B={b}: {get[('cupy_fp16_decode', b, 1)]['ms'] / get[('cupy_fp16_decode_w1', b, 1)]['ms']:.3f}/"
            f"{get[('cupy_fp16_decode', b, 1)]['ms_b2b'] / get[('cupy_fp16_decode_w1', b, 1)]['ms_b2b']:.3f}"
            for b in (1, 4, 16, 64)))
