"""Hardware counters (Nsight Compute) for three launches, to answer two questions of chapter 07
part 2 without guessing: how much of FlashAttention-2's K/V re-reads the L2 serves, and why the
paged decode kernel is slower than the contiguous one. Run under ncu on the device:

    ncu --clock-control none --kernel-name regex:"flash_mma|decode_split" \
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
        --metrics dram__bytes_read.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_sector_hit_rate.pct \
        python3 benchmarks/gpu_ncu_probe.py

Launches: the fp16 forward (N = 8192, d = 64, B = 2, H = 32, non-causal), then split-KV decoding at
B = 16, Lq = 1, context 32k, Hq 64 / Hkv 8, d = 128, contiguous and paged (block 16).
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _gpu_path  # noqa: E402,F401  (repo root on sys.path, tinyattn.gpu importable)

import cupy as cp  # noqa: E402

from gpu_decode import run_decode  # noqa: E402
from gpu_flash import make_fn  # noqa: E402

gen = torch.Generator(device="cuda")
gen.manual_seed(20261207)
q, k, v = (torch.randn(2, 32, 8192, 64, device="cuda", generator=gen, dtype=torch.float16) for _ in range(3))
run, _ = make_fn("cupy_fp16_mma", "float16", q, k, v, False)
run()
torch.cuda.synchronize()
del q, k, v
B, S = 16, 32768
kk, vv = (torch.randn(B, 8, S, 128, device="cuda", generator=gen, dtype=torch.float16) for _ in range(2))
qq = torch.randn(B, 64, 1, 128, device="cuda", generator=gen, dtype=torch.float16)
lens = torch.full((B,), S, device="cuda", dtype=torch.int32)
for bs in (None, 16):
    go, o, l, keep = run_decode(qq, kk, vv, lens, True, "float16", bs, gen)
    go()
    cp.cuda.Device().synchronize()
print("probe done")
