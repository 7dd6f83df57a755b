"""Every default Numba forward config (d = 32, 64, 96, 128) on a real GPU against float64, at ragged sizes,
causal and not, Nq != Nk (what the simulator tests cannot show: the GPU tile shapes with their real
launch, 512-thread blocks and > 48 KB of dynamic shared memory included). Prints one line per case and
"ALL OK" or "FAIL"; writes nothing.

    PYTHONPATH=. python3 benchmarks/gpu_numba_check.py
"""
import numpy as np
np.row_stack = np.vstack
from tinyattn.gpu import numba_flash_attention
from tinyattn.gpu.numba_flash import default_config
rng = np.random.default_rng(21)
ok = True
for d in (32, 64, 96, 128):
    for nq, nk, c in ((257, 257, True), (300, 1000, False), (1000, 300, True), (777, 777, False)):
        q = rng.standard_normal((2, nq, d)).astype(np.float32); k, v = (rng.standard_normal((2, nk, d)).astype(np.float32) for _ in range(2))
        o, lse = numba_flash_attention(q, k, v, is_causal=c, return_lse=True)
        s = np.einsum("bid,bjd->bij", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(d)
        if c: s = np.where(np.arange(nk)[None, None, :] <= np.arange(nq)[None, :, None] + nk - nq, s, -np.inf)
        m = s.max(-1, keepdims=True); m = np.where(np.isfinite(m), m, 0); p = np.exp(s - m); l = p.sum(-1, keepdims=True)
        ref = np.where(l > 0, p @ v.astype(np.float64) / np.where(l > 0, l, 1), 0)
        err = np.abs(o - ref).max() / np.abs(ref).max(); good = err < 1e-5 and np.isfinite(o).all()
        ok &= good
        print(d, default_config(d), nq, nk, c, f"{err:.1e}", good)
print("ALL OK" if ok else "FAIL")
