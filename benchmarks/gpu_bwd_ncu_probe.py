"""Hardware counters (Nsight Compute) for the backward's dK/dV kernels next to torch's FlashAttention-2
backward, to see why our d = 128 backward stays at ~0.75x (benchmarks/NOTES.md, Session 20). Run on the
device under ncu (one launch of each; output kept in results/gpu_bwd_ncu_h200.txt):

    ncu --clock-control none --kernel-name regex:"fa_bwd_dkdv|flash_bwd_dq_dk_dv" \
        --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
        --metrics l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,\
l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum,smsp__inst_executed.sum,\
smsp__inst_executed_pipe_tensor.sum,lts__t_requests_op_red.sum,launch__registers_per_thread \
        python3 benchmarks/gpu_bwd_ncu_probe.py

Launches, fp16, N = 8192, B = 2, H = 2048 / d, non-causal: ours (atomic dQ) with the d = 128 tiles
w8q64p (FA2 layout, shipped) and w8m1q64 (register layout), the d = 64 tiles w4m2q32, and torch's
flash backward at d = 128 and d = 64.
"""
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as TF
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _gpu_path  # noqa: E402,F401  (repo root on sys.path, tinyattn.gpu importable)

import cupy as cp  # noqa: E402

from tinyattn.gpu import cupy_backward as cb  # noqa: E402

gen = torch.Generator(device="cuda")
gen.manual_seed(20262003)
for d, variants in ((128, ("w8q64p", "w8m1q64")), (64, ("w4m2q32",))):
    B, H, N = 2, 2048 // d, 8192
    q, k, v, do = (torch.randn(B, H, N, d, device="cuda", generator=gen, dtype=torch.float16) for _ in range(4))
    qq, kk, vv = (x.clone().requires_grad_(True) for x in (q, k, v))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        out = TF.scaled_dot_product_attention(qq, kk, vv)
    torch.autograd.grad(out, (qq, kk, vv), do)          # torch flash backward: one launch
    lse = torch.full((B, H, N), math.log(N), device="cuda")   # any finite lse: the counters do not need P right
    o = out.detach()
    for var in variants:
        dq, dk, dv = (torch.empty_like(x) for x in (q, k, v))
        args = [cp.from_dlpack(x.reshape(B * H, N, d)) for x in (q, k, v, o, do)]
        outs = [cp.from_dlpack(x.reshape(B * H, N, d)) for x in (dq, dk, dv)]
        cb.launch_backward(*args[:5], cp.from_dlpack(lse.reshape(B * H, N)), *outs, "f16", variant=var)
    torch.cuda.synchronize()
print("done")
