"""FP8 pieces of benchmarks/gpu_hopper.py (issue 14 step D): runners, and FlashAttention-3's incoherent
processing measured on inputs with outliers.

Incoherent processing: Q and K of a head are multiplied by the same orthogonal M = diag(signs) H_d /
sqrt(d) (tinyattn.gpu.fp8_rotation.incoherent_rotation) before quantising; Q K^T is unchanged, outliers
are spread over all channels. Errors are measured against float64 attention on the UNROTATED inputs.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from gpu_flash import DEV, as_cupy, log, reference  # noqa: E402  (imported after gpu_flash's setup)
from tinyattn.gpu import hopper, hopper_fp8
from tinyattn.gpu.fp8_rotation import incoherent_rotation

FP8_TOL = 0.1        # relative error accepted for e4m3 inputs (reported next to the fp16 kernel's error)


def make_run_fp8(q, k, v, causal, with_quant: bool):
    """(run, out) for the FP8 kernel on fp16 torch tensors (d = 128); with_quant times quantisation too."""
    B, H, nq, d = q.shape
    q3, k3, v3 = (as_cupy(x.reshape(B * H, x.shape[2], d)) for x in (q, k, v))
    o = torch.empty(B * H, nq, d, device=DEV, dtype=torch.float16)
    import cupy as cp

    co, cl = as_cupy(o), cp.empty((B * H, nq), cp.float32)
    qz = hopper_fp8.quantize(q3, k3, v3)
    if with_quant:
        def run():
            hopper_fp8.launch(hopper_fp8.quantize(q3, k3, v3), co, cl, is_causal=causal)
        return run, o
    return (lambda: hopper_fp8.launch(qz, co, cl, is_causal=causal)), o


def _inputs(kind: str, B: int, H: int, N: int, d: int, gen) -> tuple:
    """fp16 (q, k, v) (B, H, N, d): 'gauss' N(0, 1); 'fa3_outliers' N(0, 1) + N(0, 100) * Bernoulli(0.001)
    (FlashAttention-3's test distribution); 'outlier_channels' N(0, 1) with 4 fixed channels of q and k
    scaled by 20 (the channel outliers of trained LLMs' queries and keys)."""
    x = [torch.randn(B, H, N, d, device=DEV, generator=gen) for _ in range(3)]
    if kind == "fa3_outliers":
        for t in x:
            t += 10 * torch.randn(t.shape, device=DEV, generator=gen) * (torch.rand(t.shape, device=DEV, generator=gen) < 1e-3)
    elif kind == "outlier_channels":
        ch = torch.randperm(d, device=DEV, generator=gen)[:4]
        x[0][..., ch] *= 20
        x[1][..., ch] *= 20
    return tuple(t.half() for t in x)


def _err(o, ref) -> tuple[float, float]:
    o = o.double()
    return (torch.linalg.norm(o - ref) / torch.linalg.norm(ref)).item(), (o - ref).abs().max().item()


def incoherent(gen, seed: int, N: int = 4096, B: int = 1, H: int = 4, d: int = 128) -> list[dict]:
    """FP8 relative error with and without the rotation, next to the fp16 wgmma kernel and torch flash."""
    rows = []
    rng = np.random.default_rng(seed)
    for kind in ("gauss", "fa3_outliers", "outlier_channels"):
        q, k, v = _inputs(kind, B, H, N, d, gen)
        # one M per head, the same for q and k: (H, d, d)
        m = torch.from_numpy(np.stack([incoherent_rotation(d, rng) for _ in range(H)])).to(DEV)
        qr, kr = ((x.double() @ m).half() for x in (q, k))           # rotate in float64, store fp16
        for causal in (False, True):
            ref = reference(q, k, v, causal)
            rec = {"inputs": kind, "N": N, "B": B, "H": H, "d": d, "causal": causal}
            with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
                rec["torch_rel_err"], _ = _err(torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal), ref)
            o = hopper.flash_forward_wgmma(as_cupy(q), as_cupy(k), as_cupy(v), causal=causal)
            rec["fp16_rel_err"], _ = _err(torch.from_dlpack(o), ref)
            for name, (a, b) in (("fp8", (q, k)), ("fp8_rotated", (qr, kr))):
                run, out = make_run_fp8(a, b, v, causal, True)
                out.fill_(float("nan"))
                run()
                torch.cuda.synchronize()
                rec[name + "_rel_err"], rec[name + "_max_abs"] = _err(out.reshape(q.shape), ref)
            rows.append(rec)
            log(f"fp8 incoherent {kind:16s} causal={int(causal)}: torch fp16 {rec['torch_rel_err']:.1e}, wgmma fp16 "
                f"{rec['fp16_rel_err']:.1e}, fp8 {rec['fp8_rel_err']:.2e}, fp8 rotated {rec['fp8_rotated_rel_err']:.2e}")
        del q, k, v, qr, kr
    return rows


def ok_fp8(err: float) -> bool:
    return not math.isnan(err) and err < FP8_TOL
