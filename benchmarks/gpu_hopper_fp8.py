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


def make_run_fp8(q, k, v, causal, quant: str | None = None):
    """(run, out) for the FP8 kernel on fp16 torch tensors (d = 128). quant None: the kernel alone (inputs
    quantised once by the first, validated quantiser); "old" / "fused": run() quantises too, with
    hopper_fp8.quantize(fused=False / True)."""
    import cupy as cp

    B, H, nq, d = q.shape
    q3, k3, v3 = (as_cupy(x.reshape(B * H, x.shape[2], d)) for x in (q, k, v))
    o = torch.empty(B * H, nq, d, device=DEV, dtype=torch.float16)
    co, cl = as_cupy(o), cp.empty((B * H, nq), cp.float32)
    if quant is not None:
        def run():
            hopper_fp8.launch(hopper_fp8.quantize(q3, k3, v3, fused=quant == "fused"), co, cl, is_causal=causal)
        return run, o
    qz = hopper_fp8.quantize(q3, k3, v3, fused=False)
    return (lambda: hopper_fp8.launch(qz, co, cl, is_causal=causal)), o


QUANT_OF = {"fp8": None, "fp8+quant": "old", "fp8+fusedquant": "fused"}   # timed variant -> make_run_fp8's quant


def fused_equals_old(gen) -> list[dict]:
    """The fused quantiser (fp8_quant.cu) against the first one: every byte and scale must be equal."""
    import cupy as cp

    rows = []
    for BH, nq, nk in ((3, 1000, 1000), (2, 257, 300), (2, 400, 150), (1, 64, 200), (32, 8192, 8192)):
        q, k, v = (torch.randn(BH, n, 128, device=DEV, generator=gen, dtype=torch.float16) * 3 for n in (nq, nk, nk))
        a = hopper_fp8.quantize(*(as_cupy(x) for x in (q, k, v)), fused=False)
        b = hopper_fp8.quantize(*(as_cupy(x) for x in (q, k, v)), fused=True)
        diff = {key: int(cp.count_nonzero(a[key] != b[key])) if a[key].shape == b[key].shape else -1 for key in a}
        rows.append({"BH": BH, "Nq": nq, "Nk": nk, "mismatches": diff, "equal": not any(diff.values())})
        log(f"fused quantiser BH={BH} Nq={nq} Nk={nk}: mismatching elements {diff}")
    return rows


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
                run, out = make_run_fp8(a, b, v, causal, "old")
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


if __name__ == "__main__":      # run by gpu_hopper.py in a child process: a faulting kernel cannot poison its context
    import json
    import sys

    g = torch.Generator(device=DEV)
    g.manual_seed(int(sys.argv[1]))
    print(json.dumps(fused_equals_old(g)))
