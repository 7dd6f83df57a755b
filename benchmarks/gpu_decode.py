"""Chapter 07 part 2 on one GPU (an H200 here): lse checks, the Numba backward, split-KV decoding,
and the naive baseline's per-kernel split. One script, one device call.

    python benchmarks/gpu_decode.py [--out DIR] [--seed S]

1. lse: every CuPy forward (fp32, fp16 mma, bf16 mma) with return_lse against a float64 reference
   (torch on upcast inputs), outputs NaN-poisoned; max-abs errors of out and lse recorded.
2. Numba fp32 backward (tinyattn.gpu.numba_backward) against float64 torch autograd; one timing.
3. Decoding: flash_decode (contiguous cache) and paged_flash_decode (block table, pools
   (n_blocks, Hkv, block_size, d)) checked against a float64 reference (GQA, ragged lengths, Lq 1..16,
   causal and not, d 64/128, fp16/bf16), then timed at context 32k, GQA 8:1 (Hq 64, Hkv 8, d 128),
   batch 1..64, Lq 1 and 16, with the outputs of the timed sizes checked too. Bandwidth = K/V bytes
   read / time, against the device copy bandwidth (bytes read + written) measured in the same run;
   torch SDPA (enable_gqa) at Lq = 1 on the same inputs.
4. Naive three-kernel baseline at N = 8192: each kernel timed alone (CuPy GEMM, softmax, CuPy GEMM)
   and the GEMMs through torch (cuBLAS) for comparison.
Writes OUT/gpu_decode_h200.json (OUT = $OUT or benchmarks/results) and prints a table last.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_path import ROOT  # noqa: E402  (repo root on sys.path, tinyattn.gpu importable)

import cupy as cp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from gpu_flash import as_cupy, event_ms, reference, time_ms, versions  # noqa: E402
from tinyattn.gpu import cupy_flash, decode  # noqa: E402
from tinyattn.gpu.naive import naive_attention_gpu  # noqa: E402

DEV = "cuda"
TD = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def log(*a):
    print(*a, flush=True)


def err(o: torch.Tensor, ref: torch.Tensor) -> dict:
    o = o.double()
    fin = torch.isfinite(ref)
    nan = bool(torch.isnan(o).any())
    d = (o - ref)[fin].abs()
    return {"max_abs": float(d.max()) if d.numel() else 0.0,
            "rel": float(torch.linalg.norm(d) / max(torch.linalg.norm(ref[fin]).item(), 1e-300)),
            "nan": nan, "inf_match": bool(torch.equal(torch.isinf(o), torch.isinf(ref)))}


def ref_lse(q, k, causal):
    q, k = q.double(), k.double()
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    nq, nk = s.shape[-2:]
    if causal:
        ok = torch.arange(nk, device=DEV)[None, :] <= torch.arange(nq, device=DEV)[:, None] + nk - nq
        s = s.masked_fill(~ok, float("-inf"))
    return torch.logsumexp(s, -1)


# ----------------------------------------------------------------------------- 1. lse
def check_lse(gen) -> list[dict]:
    rows = []
    for dtype, tol_o, tol_l in (("float32", 1e-4, 1e-4), ("float16", 5e-3, 5e-3), ("bfloat16", 3e-2, 3e-2)):
        for d in (64, 128):
            for causal in (False, True):
                for (B, H, nq, nk) in ((2, 3, 1000, 1000), (1, 2, 300, 1000), (1, 2, 1000, 300), (1, 4, 8192, 8192)):
                    q, k, v = (torch.randn(B, H, n, d, device=DEV, generator=gen).to(TD[dtype]) for n in (nq, nk, nk))
                    q3, k3, v3 = (x.reshape(B * H, x.shape[2], d) for x in (q, k, v))
                    o = torch.full_like(q3, float("nan"))
                    lse = torch.full((B * H, nq), float("nan"), device=DEV)
                    kind = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}[dtype]
                    cupy_flash.launch(*(as_cupy(x) for x in (q3, k3, v3, o)), kind, cp.from_dlpack(lse), is_causal=causal)
                    torch.cuda.synchronize()
                    eo = err(o.reshape(q.shape), reference(q, k, v, causal))
                    el = err(lse.reshape(B, H, nq), ref_lse(q, k, causal))
                    ok = eo["rel"] < tol_o and el["rel"] < tol_l and not eo["nan"] and not el["nan"] and el["inf_match"]
                    rows.append({"impl": f"cupy_{kind}", "dtype": dtype, "B": B, "H": H, "Nq": nq, "Nk": nk, "d": d,
                                 "causal": causal, "out": eo, "lse": el, "ok": ok})
        bad = [r for r in rows if r["dtype"] == dtype and not r["ok"]]
        worst = max(r["lse"]["max_abs"] for r in rows if r["dtype"] == dtype)
        log(f"lse {dtype:9s} worst lse max-abs {worst:.2e} {'OK' if not bad else 'FAIL ' + json.dumps(bad[0])}")
    return rows


# ----------------------------------------------------------------------------- 2. Numba backward
def numba_backward(gen) -> dict:
    from numba import cuda

    from tinyattn.gpu import numba_backward as nb, numba_flash

    out = {"checks": [], "timing": []}
    for d in (64, 128):
        for causal in (False, True):
            for (B, H, nq, nk) in ((1, 2, 300, 300), (1, 2, 200, 333)):
                q = torch.randn(B * H, nq, d, device=DEV, generator=gen)
                k, v = (torch.randn(B * H, nk, d, device=DEV, generator=gen) for _ in range(2))
                do = torch.randn(B * H, nq, d, device=DEV, generator=gen)
                o = torch.empty_like(q)
                lse = torch.empty(B * H, nq, device=DEV)
                grads = [torch.full_like(x, float("nan")) for x in (q, k, v)]
                delta = torch.empty(B * H, nq, device=DEV)
                ca = cuda.as_cuda_array
                numba_flash.launch(ca(q), ca(k), ca(v), ca(o), ca(lse), is_causal=causal)
                nb.launch_backward(*(ca(x) for x in (q, k, v, o, lse, do, *grads, delta)), is_causal=causal)
                torch.cuda.synchronize()
                qd, kd, vd = (x.double().requires_grad_() for x in (q, k, v))
                reference(qd, kd, vd, causal).backward(do.double())
                rec = {"B": B, "H": H, "Nq": nq, "Nk": nk, "d": d, "causal": causal}
                for name, g, r in zip(("dq", "dk", "dv"), grads, (qd.grad, kd.grad, vd.grad)):
                    rec[name] = err(g, r)
                rec["ok"] = all(rec[n]["rel"] < 1e-4 and not rec[n]["nan"] for n in ("dq", "dk", "dv"))
                out["checks"].append(rec)
    log(f"numba backward checks: {sum(c['ok'] for c in out['checks'])}/{len(out['checks'])} ok, worst rel "
        f"{max(c[n]['rel'] for c in out['checks'] for n in ('dq', 'dk', 'dv')):.2e}")
    for d in (64, 128):
        B, H, N = 2, 2048 // d // 2, 2048
        q, k, v, do = (torch.randn(B * H, N, d, device=DEV, generator=gen) for _ in range(4))
        o, lse, delta = torch.empty_like(q), torch.empty(B * H, N, device=DEV), torch.empty(B * H, N, device=DEV)
        grads = [torch.empty_like(x) for x in (q, k, v)]
        ca = cuda.as_cuda_array
        args = [ca(x) for x in (q, k, v, o, lse, do, *grads, delta)]
        numba_flash.launch(*args[:5])
        ms, t = time_ms(lambda: nb.launch_backward(*args), target_s=0.3, max_reps=20)
        flops = 2.5 * 4 * B * H * N * N * d
        out["timing"].append({"impl": "numba_fp32", "pass": "bwd", "dtype": "float32", "B": B, "H": H, "N": N, "d": d,
                              "causal": False, "ms": ms, "tflops": flops / ms / 1e9, "reps": len(t)})
        log(f"numba backward d={d} N={N}: {ms:.2f} ms {flops / ms / 1e9:.2f} TFLOP/s")
    return out


# ----------------------------------------------------------------------------- 3. decoding
def decode_reference(q, k, v, lens, causal):
    """float64 attention of q (B, Hq, Lq, d) against k, v (B, Hkv, S, d) with per-sequence lengths."""
    B, hq, lq, d = q.shape
    hkv, S = k.shape[1], k.shape[2]
    G = hq // hkv
    outs, lses = [], []
    for b in range(B):
        L = int(lens[b])
        qb = q[b].double().reshape(hkv, G * lq, d)                  # packed rows r = g * lq + i
        kb, vb = k[b, :, :L].double(), v[b, :, :L].double()
        s = qb @ kb.transpose(-1, -2) / math.sqrt(d)                 # (Hkv, G*Lq, L)
        t = torch.arange(L, device=DEV)[None, :]
        i = (torch.arange(G * lq, device=DEV) % lq)[:, None]
        ok = (t <= L - lq + i) if causal else torch.ones_like(t, dtype=torch.bool).expand(G * lq, L)
        s = s.masked_fill(~ok, float("-inf"))
        lse = torch.logsumexp(s, -1)
        p = torch.where(torch.isfinite(lse)[..., None], torch.exp(s - lse[..., None].nan_to_num(neginf=0)), torch.zeros_like(s))
        outs.append((p @ vb).reshape(hq, lq, d))
        lses.append(lse.reshape(hq, lq))
    return torch.stack(outs), torch.stack(lses)


def to_paged(k, v, bs, gen):
    """Pools (n_blocks, Hkv, bs, d) with the blocks of every sequence scattered by a random permutation."""
    B, hkv, S, d = k.shape
    nb = math.ceil(S / bs)
    pad = nb * bs - S
    if pad:
        k, v = (torch.nn.functional.pad(x, (0, 0, 0, pad)) for x in (k, v))
    perm = torch.randperm(B * nb, device=DEV, generator=gen)
    kp, vp = (torch.empty(B * nb, hkv, bs, d, device=DEV, dtype=k.dtype) for _ in range(2))
    kp[perm] = k.reshape(B, hkv, nb, bs, d).permute(0, 2, 1, 3, 4).reshape(B * nb, hkv, bs, d)
    vp[perm] = v.reshape(B, hkv, nb, bs, d).permute(0, 2, 1, 3, 4).reshape(B * nb, hkv, bs, d)
    return kp, vp, perm.reshape(B, nb).to(torch.int32)


def run_decode(q, k, v, lens, causal, dtype, paged_bs=None, gen=None, chunk=None, nwb=None, stages=None, **kw):
    """(go, out, lse, extra) launching our split-KV kernel on torch tensors (no checks in the timed path);
    kw go to decode.make_launch (fused, fast, slots)."""
    kind = "bf16" if dtype == "bfloat16" else "f16"
    cl = cp.from_dlpack(lens)
    if paged_bs:
        kp, vp, table = to_paged(k, v, paged_bs, gen)
        go, o, l = decode.make_launch(as_cupy(q), as_cupy(kp), as_cupy(vp), cp.from_dlpack(table), cl, kind, s_len=0,
                                      bs=paged_bs, max_blocks=table.shape[1], paged=True, is_causal=causal,
                                      scale=None, chunk=chunk, max_len=int(lens.max()), nwb=nwb, stages=stages, **kw)
        return go, o, l, (kp, vp, table)
    go, o, l = decode.make_launch(as_cupy(q), as_cupy(k), as_cupy(v), cp.zeros(1, cp.int32), cl, kind,
                                  s_len=k.shape[2], bs=1, max_blocks=1, paged=False, is_causal=causal, scale=None,
                                  chunk=chunk, max_len=int(lens.max()), nwb=nwb, stages=stages, **kw)
    return go, o, l, ()


def time_b2b(run, n: int = 20, rounds: int = 7) -> float:
    """Milliseconds per call with n calls queued back to back between two events (median of rounds):
    the GPU time of a call once the CPU launches ahead, as in a decoding loop (time_ms brackets ONE
    call, so the CPU launch latency of its first kernel is inside the bracket)."""
    run()
    torch.cuda.synchronize()
    ts = []
    for _ in range(rounds):
        ts.append(event_ms(run, n) / n)
    return sorted(ts)[len(ts) // 2]


def from_cupy(x, dtype):
    t = torch.from_dlpack(x)
    return t.view(torch.bfloat16) if dtype == "bfloat16" else t


# checked variants (make_launch arguments; {} = the library default). Session 20: fused merge forced with many
# partials (chunk 64), separate merge kernel, n_part = 1 (chunk 2048 >= S: direct write), CuPy's own launch path.
CHECK_VARIANTS = ({}, {"paged": 16}, {"paged": 48}, {"nwb": 2}, {"stages": 3}, {"paged": 48, "nwb": 4, "stages": 3},
                  {"fused": False}, {"fused": True, "chunk": 64}, {"paged": 16, "fused": True, "chunk": 64},
                  {"chunk": 2048}, {"fast": False},
                  # session 20 dec2 sweep variants (<= 16 packed rows only): 16-key tiles (2 / 4 stages, paged too),
                  # cooperative 128-key tiles (partial last tile: chunk 96 / 160; fused; one chunk), chunks of any
                  # length (tiles starting off the 32-key grid: chunk 97, 200)
                  {"bk": 16}, {"bk": 16, "stages": 4}, {"bk": 16, "paged": 16, "nwb": 4, "fused": True, "chunk": 64},
                  {"coop": True}, {"coop": True, "chunk": 96, "fused": False}, {"coop": True, "chunk": 160, "fused": True},
                  {"coop": True, "chunk": 2048}, {"chunk_align": 1}, {"chunk_align": 1, "chunk": 97, "fused": False},
                  {"chunk_align": 1, "chunk": 200, "fused": True},
                  # session 21: {} is the cooperative kernel at d = 128, Lq = 1; the previous default stays checked
                  {"coop": False}, {"coop": False, "fused": True, "chunk": 64})


def decode_checks(gen) -> list[dict]:
    rows = []
    tol = {"float16": 5e-3, "bfloat16": 3e-2}
    for dtype in ("float16", "bfloat16"):
        for d in (64, 128):
            for (B, hq, hkv, lq, S) in ((3, 8, 1, 1, 1000), (2, 16, 2, 4, 777), (2, 8, 8, 2, 300), (2, 64, 8, 16, 1500),
                                        (1, 4, 2, 3, 40)):
                for causal in (False, True):
                    for var in CHECK_VARIANTS:
                        paged_bs, nwb, stages = var.get("paged"), var.get("nwb"), var.get("stages")
                        kw = {x: var[x] for x in ("chunk", "fused", "fast", "bk", "coop", "chunk_align") if x in var}
                        if hq // hkv * lq > 16 and (nwb == 2 or stages in (3, 4) or "bk" in var or "coop" in var):
                            continue                 # these variants exist only when each warp owns a chunk
                        q = torch.randn(B, hq, lq, d, device=DEV, generator=gen).to(TD[dtype])
                        k, v = (torch.randn(B, hkv, S, d, device=DEV, generator=gen).to(TD[dtype]) for _ in range(2))
                        lens = torch.randint(1, S + 1, (B,), device=DEV, generator=gen, dtype=torch.int32)
                        lens[0] = S
                        if B > 1:
                            lens[-1] = min(lq - 1, S) if lq > 1 else 1       # rows that see no key / one key
                        go, o, l, _keep = run_decode(q, k, v, lens, causal, dtype, paged_bs, gen, nwb=nwb, stages=stages, **kw)
                        o.fill(float("nan")) if dtype == "float16" else o.fill(0xFFFF)
                        l.fill(float("nan"))
                        go()
                        torch.cuda.synchronize()
                        ro, rl = decode_reference(q, k, v, lens, causal)
                        eo, el = err(from_cupy(o, dtype), ro), err(torch.from_dlpack(l), rl)
                        ok = eo["rel"] < tol[dtype] and el["rel"] < tol[dtype] and not eo["nan"] and el["inf_match"]
                        rows.append({"dtype": dtype, "d": d, "B": B, "Hq": hq, "Hkv": hkv, "Lq": lq, "S": S, "causal": causal,
                                     "paged_block": paged_bs, "nwb": go.nwb, "stages": go.stages, "chunk": go.chunk,
                                     "n_part": go.n_part, "fused": go.fused, "fast": go.fast, "bk": go.bk,
                                     "coop": go.coop, "chunk_align": go.chunk_align,
                                     "out": eo, "lse": el, "ok": ok})
        bad = [r for r in rows if r["dtype"] == dtype and not r["ok"]]
        log(f"decode checks {dtype}: {len(rows) - len(bad)} ok of those so far; "
            + ("OK" if not bad else "FAIL " + json.dumps(bad[0])[:600]))
    return rows


def decode_timings(gen, copy_gbps, on_progress=None) -> list[dict]:
    rows = []
    S, hq, hkv, d, dtype = 32768, 64, 8, 128, "float16"
    for B in (1, 4, 16, 64):
        k, v = (torch.randn(B, hkv, S, d, device=DEV, generator=gen, dtype=torch.float16) for _ in range(2))
        lens = torch.full((B,), S, device=DEV, dtype=torch.int32)
        kv_bytes = 2 * B * hkv * S * d * 2
        for lq in (1, 16):
            q = torch.randn(B, hq, lq, d, device=DEV, generator=gen, dtype=torch.float16)
            ro, rl = decode_reference(q, k, v, lens, True)
            # (impl, paged block, chunk, warps per block, stages); None = the library default
            ours = [("cupy_fp16_decode", None, None, None, None), ("cupy_fp16_decode_paged16", 16, None, None, None)]
            if lq == 1:                                  # run 7/8 variants: 3 cp.async stages, block shape, chunk
                ours += [("cupy_fp16_decode_s3", None, None, 4, 3), ("cupy_fp16_decode_paged16_nwb4", 16, None, 4, 2),
                         ("cupy_fp16_decode_paged16_s3", 16, None, 4, 3)]
                if B <= 4:
                    ours += [("cupy_fp16_decode_chunk1024", None, 1024, None, None),
                             ("cupy_fp16_decode_s3_chunk1024", None, 1024, 4, 3)]
            for impl, pbs, chunk, nwb, stages in ours:
                rec = {"impl": impl, "pass": "decode", "dtype": dtype, "B": B, "H": hq, "Hkv": hkv, "N": S, "Lq": lq,
                       "d": d, "causal": True, "copy_gbps": copy_gbps}
                try:
                    go, o, l, keep = run_decode(q, k, v, lens, True, dtype, pbs, gen, chunk=chunk, nwb=nwb, stages=stages)
                    o.fill(float("nan"))
                    go()
                    torch.cuda.synchronize()
                    rec["out_err"], rec["lse_err"] = err(from_cupy(o, dtype), ro), err(torch.from_dlpack(l), rl)
                    rec["check_ok"] = rec["out_err"]["rel"] < 5e-3 and not rec["out_err"]["nan"]
                    rec["n_part"], rec["chunk"], rec["wpc"], rec["nwb"], rec["stages"] = go.n_part, go.chunk, go.wpc, go.nwb, go.stages
                    ms, t = time_ms(go)
                    rec.update(ms=ms, reps=len(t), gbps=kv_bytes / ms / 1e6,
                               tflops=4 * B * hq * lq * S * d / ms / 1e9, ms_b2b=time_b2b(go))
                    rec["gbps_b2b"] = kv_bytes / rec["ms_b2b"] / 1e6
                    del keep
                except Exception as e:  # noqa: BLE001
                    rec.update(ms=None, error=f"{type(e).__name__}: {e}"[:300])
                rows.append(rec)
                log(f"{impl:34s} B={B:3d} Lq={lq:2d} " + (f"{rec['ms']:8.4f} ms (b2b {rec['ms_b2b']:.4f}) {rec['gbps']:7.0f} GB/s "
                    f"({rec['gbps'] / copy_gbps:.2f} of copy) err {rec['out_err']['max_abs']:.1e}" if rec.get("ms") else rec.get("error", "")))
            if lq == 1:
                for impl, backend in (("torch_sdpa_default", None), ("torch_sdpa_flash", SDPBackend.FLASH_ATTENTION),
                                      ("torch_sdpa_efficient", SDPBackend.EFFICIENT_ATTENTION),
                                      ("torch_sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
                    rec = {"impl": impl, "pass": "decode", "dtype": dtype, "B": B, "H": hq, "Hkv": hkv, "N": S, "Lq": lq,
                           "d": d, "causal": False, "copy_gbps": copy_gbps}
                    box = {}

                    def run():
                        if backend is None:
                            box["o"] = TF.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                        else:
                            with sdpa_kernel(backend):
                                box["o"] = TF.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                    try:
                        run()
                        torch.cuda.synchronize()
                        rec["out_err"] = err(box["o"], ro)
                        ms, t = time_ms(run)
                        rec.update(ms=ms, reps=len(t), gbps=kv_bytes / ms / 1e6, tflops=4 * B * hq * S * d / ms / 1e9,
                                   ms_b2b=time_b2b(run))
                        rec["gbps_b2b"] = kv_bytes / rec["ms_b2b"] / 1e6
                    except Exception as e:  # noqa: BLE001
                        rec.update(ms=None, error=f"{type(e).__name__}: {e}"[:200])
                    rows.append(rec)
                    log(f"{impl:34s} B={B:3d} Lq=1  " + (f"{rec['ms']:8.4f} ms (b2b {rec['ms_b2b']:.4f}) {rec['gbps']:7.0f} GB/s"
                                                         if rec.get("ms") else rec.get("error", "")[:100]))
            del q
        del k, v
        torch.cuda.empty_cache()
        if on_progress:
            on_progress(rows)                     # partial file after each batch size
    return rows


# ----------------------------------------------------------------------------- 4. naive split, forward re-time
def naive_split(gen) -> list[dict]:
    rows = []
    from tinyattn.gpu.cupy_flash import _module
    for d in (64, 128):
        B, H, N = 2, 2048 // d, 8192
        q, k, v = (torch.randn(B, H, N, d, device=DEV, generator=gen, dtype=torch.float16) for _ in range(3))
        cq, ck, cv = (as_cupy(x) for x in (q, k, v))
        s = cp.matmul(cq, cp.swapaxes(ck, -1, -2))
        kern = _module("softmax_rows.cu").get_function("softmax_rows_f16")
        rows_n = B * H * N
        sc = np.float32(LOG2E_SCALE(d))
        parts = {
            "cupy_gemm_qk": lambda: cp.matmul(cq, cp.swapaxes(ck, -1, -2), out=s),
            "softmax_rows": lambda: kern((rows_n,), (256,), (s, np.int32(N), np.int32(N), sc, np.int32(0))),
            "cupy_gemm_pv": lambda: cp.matmul(s, cv),
            "torch_gemm_qk": lambda: torch.matmul(q, k.transpose(-1, -2)),
            "naive_gpu_fp16_total": lambda: naive_attention_gpu(cq, ck, cv),
        }
        ts = torch.from_dlpack(s)
        parts["torch_gemm_pv"] = lambda: torch.matmul(ts, v)

        def torch_total():            # the honest three-kernel baseline: cuBLAS tensor-core GEMMs + our softmax
            s_ = torch.matmul(q, k.transpose(-1, -2))
            kern((rows_n,), (256,), (cp.from_dlpack(s_), np.int32(N), np.int32(N), sc, np.int32(0)))
            return torch.matmul(s_, v)
        parts["naive_torch_gemm_total"] = torch_total
        o = torch_total()
        torch.cuda.synchronize()
        chk = err(o[:1, :2], reference(q[:1, :2], k[:1, :2], v[:1, :2], False))
        log(f"naive torch-GEMM baseline d={d} check (heads 0-1): {chk}")
        rows.append({"part": "naive_torch_gemm_total_check", "d": d, "err": chk})
        del o
        for name, fn in parts.items():
            ms, t = time_ms(fn, target_s=0.3, max_reps=20)
            flops = 2 * B * H * N * N * d if "gemm" in name else (4 * B * H * N * N * d if "total" in name else 0)
            rows.append({"part": name, "B": B, "H": H, "N": N, "d": d, "ms": ms, "tflops": flops / ms / 1e9 if flops else None,
                         "gbps_S": (2 * B * H * N * N * 2) / ms / 1e6 if name == "softmax_rows" else None})
            log(f"naive d={d} {name:22s} {ms:8.3f} ms" + (f" {flops / ms / 1e9:6.1f} TFLOP/s" if flops else ""))
        del s, ts
        torch.cuda.empty_cache()
    return rows


def LOG2E_SCALE(d):
    return cupy_flash.LOG2E / math.sqrt(d)


def forward_retime(gen) -> list[dict]:
    """cupy_fp16_mma (now writing lse) vs torch flash at N = 8192, interleaved: did lse cost anything?"""
    from gpu_flash import make_fn
    rows = []
    for d in (64, 128):
        B, H, N = 2, 2048 // d, 8192
        q, k, v = (torch.randn(B, H, N, d, device=DEV, generator=gen, dtype=torch.float16) for _ in range(3))
        for causal in (False, True):
            for impl in ("cupy_fp16_mma", "torch_sdpa_flash", "cupy_fp16_mma", "torch_sdpa_flash"):
                run, _ = make_fn(impl, "float16", q, k, v, causal)
                ms, t = time_ms(run)
                tf = 4 * B * H * N * N * d / (2 if causal else 1) / ms / 1e9
                rows.append({"impl": impl, "pass": "fwd", "dtype": "float16", "B": B, "H": H, "N": N, "d": d,
                             "causal": causal, "ms": ms, "tflops": tf})
                log(f"fwd {impl:18s} d={d} causal={int(causal)} {tf:6.1f} TFLOP/s")
    return rows


def paged_sweep(gen, copy_gbps) -> list[dict]:
    """Paged decode at Lq = 1 against the block size (same K/V, blocks scattered by a permutation),
    with the contiguous kernel timed in between: is the paged gap the loader or the scattered pieces?"""
    rows = []
    S, hq, hkv, d = 32768, 64, 8, 128
    for B in (16, 64):
        k, v = (torch.randn(B, hkv, S, d, device=DEV, generator=gen, dtype=torch.float16) for _ in range(2))
        q = torch.randn(B, hq, 1, d, device=DEV, generator=gen, dtype=torch.float16)
        lens = torch.full((B,), S, device=DEV, dtype=torch.int32)
        kv_bytes = 2 * B * hkv * S * d * 2
        for bs in (None, 16, 64, 256, 1024, None):
            go, o, l, keep = run_decode(q, k, v, lens, True, "float16", bs, gen)
            ms, t = time_ms(go)
            rows.append({"impl": "cupy_fp16_decode" + (f"_paged{bs}" if bs else ""), "pass": "decode", "B": B, "H": hq,
                         "Hkv": hkv, "N": S, "Lq": 1, "d": d, "block_size": bs, "ms": ms, "gbps": kv_bytes / ms / 1e6,
                         "copy_gbps": copy_gbps})
            log(f"paged sweep B={B} block={bs} {ms:.4f} ms {kv_bytes / ms / 1e6:.0f} GB/s")
            del keep
        del k, v
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "benchmarks" / "results")))
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--skip", default="", help="comma list of sections to skip: lse,bwd,decode,naive,fwd,sweep")
    ap.add_argument("--sweep", action="store_true", help="session 20: decode checks + interleaved Lq = 1 sweep only, "
                    "merged into the committed JSON (gpu_decode_sweep.py)")
    ap.add_argument("--key", default="session21", help="--sweep: 'session21' (default) times the shipped default "
                    "against the previous one (w1) and torch, stored under data['session21'] (notebook 07 and README "
                    "read it); 'session20' replaces the top-level results / decode_checks / session20 records (run "
                    "S2); any other key (dec2) stores its variants under data[KEY] = {results, decode_checks, meta}; "
                    "the committed records are kept")
    args = ap.parse_args()
    if args.sweep:
        from gpu_decode_sweep import main_sweep
        return main_sweep(args)
    skip = set(args.skip.split(","))
    gen = torch.Generator(device=DEV)
    gen.manual_seed(args.seed)
    props = torch.cuda.get_device_properties(0)
    meta = {"gpu": props.name, "sm_count": props.multi_processor_count, "seed": args.seed,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "versions": versions(),
            "timing": "CUDA events, median after warm-up", "bytes_formula": "decode gbps = 2*B*Hkv*N*d*2 bytes (K and V read once) / time",
            "flops_formula": "decode 4*B*H*Lq*N*d; backward 2.5 * 4*B*H*N^2*d"}
    log(json.dumps(meta))
    t0 = time.time()
    x = torch.randn(1 << 30, device=DEV)
    y = torch.empty_like(x)
    ms, _ = time_ms(lambda: y.copy_(x), target_s=0.3)
    meta["copy_gbps"] = 2 * x.numel() * 4 / ms / 1e6
    del x, y
    log(f"copy {meta['copy_gbps']:.0f} GB/s")
    sections = (("lse", "lse_checks", check_lse), ("bwd", "numba_backward", numba_backward),
                ("decode", "decode_checks", decode_checks), ("naive", "naive_split", naive_split),
                ("fwd", "forward_retime", forward_retime))
    path = Path(args.out) / "gpu_decode_h200.json"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for key, name, fn in sections:
        if key in skip:
            continue
        try:
            meta[name] = fn(gen)
        except Exception:  # noqa: BLE001
            meta[name + "_error"] = traceback.format_exc()[-2000:]
            log(meta[name + "_error"])
        path.write_text(json.dumps(meta, indent=1))
    if "sweep" not in skip:
        try:
            meta["paged_sweep"] = paged_sweep(gen, meta["copy_gbps"])
        except Exception:  # noqa: BLE001
            meta["paged_sweep_error"] = traceback.format_exc()[-2000:]
            log(meta["paged_sweep_error"])
    results = []
    if "decode" not in skip:
        try:
            results = decode_timings(gen, meta["copy_gbps"], on_progress=lambda rows: path.write_text(
                json.dumps({**meta, "results": rows, "partial": True}, indent=1)))
        except Exception:  # noqa: BLE001
            meta["decode_timings_error"] = traceback.format_exc()[-2000:]
            log(meta["decode_timings_error"])
    meta["wall_s"] = time.time() - t0
    path.write_text(json.dumps({**meta, "results": results}, indent=1))
    log(f"\nwrote {path} ({meta['wall_s']:.0f} s)")
    for r in results:
        if r.get("ms"):
            log(f"  {r['impl']:34s} B={r['B']:3d} Lq={r['Lq']:2d} {r['ms']:8.4f} ms (b2b {r.get('ms_b2b', 0):.4f}) "
                f"{r['gbps']:6.0f} GB/s = {r['gbps'] / meta['copy_gbps']:.2f} x copy")


if __name__ == "__main__":
    main()
