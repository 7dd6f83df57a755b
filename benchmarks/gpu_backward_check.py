"""Correctness half of gpu_backward.py: float64 autograd reference, error measures, and one launch of our
backward (poisoned outputs, variant names with the "@<module>" / "+s<S>" suffixes) checked against it."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _gpu_path  # noqa: E402,F401  (repo root on sys.path, tinyattn.gpu importable)

import cupy as cp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from tinyattn.gpu import cupy_backward as cb  # noqa: E402
from tinyattn.gpu import cupy_flash  # noqa: E402

DEV = "cuda"
TDT = {"float16": torch.float16, "bfloat16": torch.bfloat16}
KIND = {"float16": "f16", "bfloat16": "bf16"}
IMPL = {"float16": "cupy_fp16_mma", "bfloat16": "cupy_bf16_mma"}
TOL = {"float16": 2e-2, "bfloat16": 6e-2}   # relative error bound of a gradient (fp16/bf16 inputs + rounding)
ALT_MODULES = {}     # tag -> CuPy module built with other -D flags (filled by gpu_backward.main)


def eff_split(variant, d, group, causal) -> int:
    """Blocks per GQA group that run_ours launches for this variant name ("+s<S>" or the library's auto choice)."""
    base, _, sp = (variant or cb.default_variant(d, group, causal)).partition("@")[0].partition("+s")
    return int(sp) if sp else cb.auto_gqa_split(group, causal, d, base)


def log(*a):
    print(*a, flush=True)


def as_cupy(t: torch.Tensor):
    if t.dtype == torch.bfloat16:
        return cp.from_dlpack(t.view(torch.int16)).view(cp.uint16)
    return cp.from_dlpack(t)


def reference(q, k, v, do, causal: bool):
    """float64 out, lse and (dq, dk, dv) by autograd; k, v (B, Hkv, Nk, d) repeated for GQA here only."""
    q, k, v, do = (x.double().detach().requires_grad_(True) for x in (q, k, v, do))
    grp = q.shape[1] // k.shape[1]
    kr, vr = k.repeat_interleave(grp, 1), v.repeat_interleave(grp, 1)
    s = q @ kr.transpose(-1, -2) / math.sqrt(q.shape[-1])
    nq, nk = s.shape[-2:]
    if causal:
        ok = torch.arange(nk, device=DEV)[None, :] <= torch.arange(nq, device=DEV)[:, None] + (nk - nq)
        s = s.masked_fill(~ok, float("-inf"))
    m = s.amax(-1, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(s - m)
    l_ = p.sum(-1, keepdim=True)
    lse = torch.where(l_ > 0, torch.log(l_) + m, torch.full_like(m, float("-inf")))[..., 0]
    o = (p / torch.where(l_ > 0, l_, torch.ones_like(l_))) @ vr
    dq, dk, dv = torch.autograd.grad(o, (q, k, v), do.detach())
    return o.detach(), lse.detach(), (dq, dk, dv)


def errs(got, ref) -> dict:
    got = got.double()
    if not torch.isfinite(got).all():
        return {"max_abs": None, "rel": None, "finite": False}
    return {"max_abs": (got - ref).abs().max().item(), "rel": ((got - ref).norm() / ref.norm().clamp_min(1e-300)).item(),
            "finite": True}


def run_ours(q, k, v, o, do, lse, causal, dtype, dq_mode, variant=None, dq_variant=None, poison=True):
    """Launch our backward on torch tensors (B, H, N, d); returns torch (dq, dk, dv) and the launcher."""
    B, H, nq, d = q.shape
    Hkv, nk = k.shape[1], k.shape[2]
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    if poison:
        for x in (dq, dk, dv):
            x.fill_(float("nan"))
    cq, ck, cv, co, cdo, cdq, cdk, cdv = (as_cupy(x.reshape(-1, x.shape[2], d)) for x in (q, k, v, o, do, dq, dk, dv))
    cl = cp.from_dlpack(lse.reshape(B * H, nq).contiguous())

    var, _, tag = (variant or "").partition("@")       # "<variant>@swzB2": built with B2's swizzle (A/B test)
    var, _, split = var.partition("+s")                # "<variant>+s<S>": GQA group split over S blocks

    def launch():
        saved = cb._module
        if tag:
            cb._module = lambda all_variants=False: ALT_MODULES[tag]
        try:
            cb.launch_backward(cq, ck, cv, co, cdo, cl, cdq, cdk, cdv, KIND[dtype], group=H // Hkv, is_causal=causal,
                               dq_mode=dq_mode, variant=var or None, dq_variant=dq_variant,
                               gqa_split=int(split) if split else None)
        finally:
            cb._module = saved
    launch()
    torch.cuda.synchronize()
    return (dq, dk, dv), launch


def check_case(gen, B, H, Hkv, nq, nk, d, causal, dtype, heads=None, with_torch=True, timed=False,
               variant=None, dq_variant=None):
    """Both dQ modes + torch flash on one input; heads limits the float64 reference to one kv group.
    For d in (64, 128) (or a timed size) our forward (GQA included) is checked and feeds the backward."""
    t = TDT[dtype]
    q = torch.randn(B, H, nq, d, device=DEV, generator=gen).to(t)
    k, v = (torch.randn(B, Hkv, nk, d, device=DEV, generator=gen).to(t) for _ in range(2))
    do = torch.randn(B, H, nq, d, device=DEV, generator=gen).to(t)
    grp = H // Hkv
    hs = slice(None) if heads is None else slice(0, grp)           # one kv head's group of query heads
    hk = slice(None) if heads is None else slice(0, 1)
    o_ref, lse_ref, grads_ref = reference(q[:, hs], k[:, hk], v[:, hk], do[:, hs], causal)
    rows = []
    if d not in cupy_flash.HEAD_DIMS:
        o_in, lse_in = o_ref.to(t), lse_ref.float()
    else:                                   # our own forward's o and lse (the real pipeline), GQA included
        o_in = torch.full_like(q, float("nan"))
        co = as_cupy(o_in.reshape(-1, nq, d))
        lse_c = cupy_flash.launch(*(as_cupy(x.reshape(-1, x.shape[2], d)) for x in (q, k, v)), co, KIND[dtype],
                                  is_causal=causal, group=grp)
        lse_in = torch.from_dlpack(lse_c).reshape(B, H, nq)
        torch.cuda.synchronize()
        fin = torch.isfinite(lse_ref)
        fo = errs(o_in[:, hs], o_ref)
        rows.append({"what": "forward", "impl": IMPL[dtype], "N": nq, "o": fo, "lse": errs(lse_in[:, hs][fin], lse_ref[fin]),
                     "ok": fo["finite"] and fo["rel"] < TOL[dtype] / 4 and bool((lse_in[:, hs][~fin] == float("-inf")).all())})
    for mode in ("atomic", "separate"):
        grads, _ = run_ours(q, k, v, o_in, do, lse_in, causal, dtype, mode, variant, dq_variant)
        rec = {"impl": IMPL[dtype], "dq_mode": mode, "variant": variant or cb.default_variant(d, H // Hkv, causal),
               "dq_variant": (dq_variant or cb.DEFAULT_DQ[d]) if mode == "separate" else None,
               "gqa_split": eff_split(variant, d, H // Hkv, causal)}
        for name, g, r in zip(("dq", "dk", "dv"), grads, grads_ref):
            rec[name] = errs(g[:, hs] if name == "dq" else g[:, hk], r)
        rows.append(rec)
    if with_torch and nq == nk and Hkv == H:
        qq, kk, vv = (x.detach().clone().requires_grad_(True) for x in (q, k, v))
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            out = TF.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)
        tg = torch.autograd.grad(out, (qq, kk, vv), do)
        rec = {"impl": "torch_sdpa_flash"}
        for name, g, r in zip(("dq", "dk", "dv"), tg, grads_ref):
            rec[name] = errs(g[:, hs] if name == "dq" else g[:, hk], r)
        rows.append(rec)
    base = {"dtype": dtype, "B": B, "H": H, "Hkv": Hkv, "Nq": nq, "Nk": nk, "d": d, "causal": causal, "timed_size": timed}
    out = []
    for r in rows:
        r = {**base, **r}
        if "dq" in r:
            r["what"] = "backward"
            r["ok"] = all(r[n]["finite"] and r[n]["rel"] < TOL[dtype] for n in ("dq", "dk", "dv"))
        out.append(r)
    return out


def fmt_check(c):
    if "dq" not in c:
        return (f"  fwd {c['dtype']} H{c['H']}/{c['Hkv']} N={c['N']} d={c['d']} c={int(c['causal'])} o rel {c['o']['rel']} "
                f"lse max {c['lse']['max_abs']} {'ok' if c['ok'] else 'FAIL'}")
    e = " ".join(f"{n} {c[n]['rel']:.1e}/{c[n]['max_abs']:.1e}" if c[n]["finite"] else f"{n} NaN" for n in ("dq", "dk", "dv"))
    return (f"  {c['impl']:16s} {c.get('dq_mode', ''):8s} {c['dtype']:8s} H{c['H']}/{c['Hkv']} {c['Nq']}x{c['Nk']} "
            f"d{c['d']} c{int(c['causal'])} {e} {'ok' if c.get('ok', True) else 'FAIL'}")
