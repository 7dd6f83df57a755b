"""Split-KV decoding ("FlashDecoding") through CuPy: contiguous and paged K/V caches (chapter 07).

The CUDA C is ``flash_decode.cu``: a split kernel (one warp per chunk of keys, the G query heads of a
K/V head packed into one tile) writes partial results ``(O_p, lse_p)``, combined by chapter 06's
online-softmax merge ``lse = log sum_p exp(lse_p)``, ``O = sum_p exp(lse_p - lse) O_p``: either by a
second kernel, or (fused, ``flash_decode_merge.cuh``) by the last warp of each 16-row slab to finish,
found with an atomic counter: one launch. With one chunk per sequence nothing is merged.

Which split kernel (``default_coop``): at d = 128, Lq = 1, a contiguous cache and <= 16 packed rows the
default is the cooperative kernel (``flash_decode_coop.cuh``, session 21): the 4 warps of a block share
one chunk and each 128-key K/V tile of it (32 keys per warp), their online-softmax states merged at the
chunk's end. Measured on the H200 (NOTES.md, S21-1: 32k keys, GQA 8:1, fp16) it beat the one-warp kernel
back to back at B = 1 (0.98 vs 1.08 of torch's default) and did not lose at B = 4-64. Everywhere else
(paged caches, Lq > 1, more than 16 packed rows, d = 64: not measured or not supported) the default stays
the one-warp-per-chunk kernel ``w1`` (more than 16 packed rows: ``w4``, the block's warps sharing tiles,
16 rows each); ``coop=False`` keeps ``w1`` reachable.

The number of chunks follows the GPU, not only the length (``choose_chunk``): the work items
``B * Hkv * row groups * n_part`` (one warp group each) should fill ONE wave of resident items, so
``n_part = max(1, floor(slots / (B * Hkv * row groups)))`` with ``slots = SMs * resident blocks per SM *
items per block``. H200, contiguous, one-warp kernel: 132 * 1 * 4 = 528, so B = 1, 4, 16, 64 at 32k keys
and 8 K/V heads give n_part = 64, 16, 4, 1 (128 blocks on 132 SMs, no second, partial wave); cooperative
kernel (one item per block): 132 * 1 * 1 = 132, n_part = 16, 4, 1, 1 (128, 128, 128 and 512 blocks).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from .cupy_flash import HEAD_DIMS, LOG2E, _kind_of, _module

NW, BK = 4, 32                       # warps per block, keys per tile (flash_decode.cu)
MW = 8                               # warps per merge block (flash_decode.cu)
N_SM_DEFAULT = 132                   # SMs of an H100/H200 SXM (the device's own count is used when known)
SPLIT_WARPS = 4                      # warps per block when each warp owns a chunk (wpc = 1): 4 or 2
SPLIT_WARPS_PAGED = 2                # paged: 2-warp blocks, 3 per SM (run 7: B = 64 3.42 -> 2.20 ms)
MIN_CHUNK = 256                      # no chunk shorter than 8 tiles (short contexts: fewer partials to merge)
FUSE_MAX_PARTS = 8                   # fused merge (one launch) when n_part <= this: the slab's last warp
                                     # reads the other n_part - 1 partials alone (session 20)
SPLIT_STAGES = 2                     # cp.async stages with one warp per chunk and 4 warps: 2 or 3 (run 8:
                                     # 3 stages gained nothing, B = 64 -0-14%; session 20, one-wave rule: within
                                     # 1% at B = 1-64; kept as a checked variant)


# split-kernel instantiations of flash_decode.cu: (wpc, nwb, stages, keys per tile, coop) -> name suffix.
# The first four are the session-20 kernels ((1, 4, 2, 32) = w1 with <= 16 packed rows, (4, 4, 2, 32) above);
# the last three are session 20 (dec2) variants: 16-key tiles with 2 stages (80 KB of shared memory: 2 blocks
# per SM) or 4 stages (3 tiles in flight), sweep only; and c4 = coop, the block's 4 warps sharing 128-key
# tiles of one chunk (flash_decode_coop.cuh; contiguous cache, <= 16 packed rows), the default at d = 128
# and Lq = 1 since session 21 (COOP_DEFAULT_DIMS; shipped there, sweep only at d = 64).
SPLIT_KERNELS = {(1, NW, 2, BK, False): "w1", (1, 2, 2, BK, False): "w1n2", (1, NW, 3, BK, False): "w1s3",
                 (NW, NW, 2, BK, False): f"w{NW}", (1, NW, 2, 16, False): "w1k16", (1, NW, 4, 16, False): "w1k16s4",
                 (NW, NW, 2, 4 * BK, True): "c4"}
SWEEP_ONLY = frozenset(("w1k16", "w1k16s4"))         # built only with -DTA_FLASH_ALL_VARIANTS (cupy_flash._module)
COOP_DEFAULT_DIMS = (128,)                           # head dims where c4 is shipped and the default (session 21)
PER_SM_FALLBACK = {"w1": 1, "w1n2": 3, "w1s3": 1, f"w{NW}": 2, "w1k16": 2, "w1k16s4": 1, "c4": 1}   # H200, d = 128 (ptxas + smem)


def sweep_only(name: str, d: int) -> bool:
    """True if split kernel ``name`` at head dim d is built only with -DTA_FLASH_ALL_VARIANTS: the SWEEP_ONLY
    names, and c4 outside COOP_DEFAULT_DIMS."""
    return name in SWEEP_ONLY or (name == "c4" and d not in COOP_DEFAULT_DIMS)


def default_coop(d: int, lq: int, rows: int, paged: bool) -> bool:
    """The default split kernel is the cooperative one (c4) where it was measured faster (session 21, H200):
    head dim d in COOP_DEFAULT_DIMS, one new token (lq = 1), rows = G * Lq <= 16 packed query rows, a
    contiguous cache. Otherwise the one-warp kernel w1 (or w4 above 16 rows)."""
    return d in COOP_DEFAULT_DIMS and lq == 1 and rows <= 16 and not paged


def split_smem(d: int, wpc: int, nwb: int, stages: int, bk: int, coop: bool) -> int:
    """Dynamic shared memory (bytes) of a split kernel: Q tiles (16 x d fp16 per warp; one for coop) and
    ``stages`` K and V tiles of ``bk`` keys per warp group (per block for coop)."""
    q_rows = 16 if coop else nwb * 16
    kv_rows = 2 * stages * bk * (1 if coop else nwb // wpc)
    return (q_rows + kv_rows) * d * 2


@lru_cache(maxsize=None)
def _kernels(kind: str, d: int, wpc: int, nwb: int = NW, stages: int = 2, bk: int = BK, coop: bool = False):
    """wpc = warps per chunk: 1 (each warp its own chunk, <= 16 packed rows) or NW (the block's warps
    share one chunk's K/V tiles: 16 rows each when Lq > 1 or more than 16 query heads per K/V head; with
    coop, 32 keys each of 128-key tiles). nwb = warps per block (2 only with wpc = 1); stages = K/V tiles
    in flight + 1; bk = keys per tile. Only the combinations of SPLIT_KERNELS exist."""
    key = (wpc, nwb, stages, bk, bool(coop))
    if key not in SPLIT_KERNELS:
        raise ValueError(f"no split kernel with (warps per chunk, warps per block, stages, keys per tile, coop) = "
                         f"{key}; instantiated: {sorted(SPLIT_KERNELS)}")
    name = SPLIT_KERNELS[key]
    mod = _module("flash_decode.cu", all_variants=sweep_only(name, d))
    split = mod.get_function(f"decode_split_{kind}_d{d}_{name}")
    merge = mod.get_function(f"decode_merge_{kind}_d{d}")
    smem = split_smem(d, wpc, nwb, stages, bk, coop)
    if smem > 48 * 1024:
        split.max_dynamic_shared_size_bytes = smem
    return split, merge, smem


def choose_chunk(batch: int, hkv: int, row_groups: int, max_len: int, chunk: int | None = None,
                 wpc: int = 1, slots: int = N_SM_DEFAULT * 4, align: int = BK) -> int:
    """Keys per chunk (a multiple of ``align``, at least MIN_CHUNK) for a one-wave grid.

    slots: work items resident at once on the GPU (SMs * blocks per SM * items per block: warps per block
    / wpc, or 1 for the cooperative kernel, the default at d = 128 and Lq = 1).
    The items B * Hkv * row_groups * n_part take one slot each; n_part = max(1, slots // (B * Hkv *
    row_groups)) fills one wave without starting a second, partial one (a partial wave costs a whole
    chunk's time for a fraction of the work). wpc is kept for the call signature (slots already counts
    warp groups). align: BK (32, the default: chunks of whole tiles) or a divisor of it; align = 1 sizes
    the chunks so the items fill the slots as far as n_part allows (B = 1, 8 heads, 528 slots: 66 chunks
    of 497 keys, 132 blocks, instead of 64 of 512 on 128 SMs; contiguous cache only)."""
    if align <= 0 or BK % align:
        raise ValueError(f"align must be a positive divisor of {BK}, got {align}")
    if chunk is not None:
        if chunk <= 0 or chunk % align:
            raise ValueError(f"chunk must be a positive multiple of {align}, got {chunk}")
        return chunk
    n = max(1, slots // max(1, batch * hkv * row_groups))
    c = math.ceil(max(1, max_len) / n)
    return max(MIN_CHUNK, math.ceil(c / align) * align)


@lru_cache(maxsize=None)
def _slots(kind: str, d: int, wpc: int, nwb: int, stages: int, bk: int = BK, coop: bool = False) -> int:
    """Work items resident at once: SMs * blocks per SM (occupancy API) * items per block (nwb / wpc;
    1 for coop)."""
    from cupy.cuda import driver, runtime

    split, _, smem = _kernels(kind, d, wpc, nwb, stages, bk, coop)
    try:
        n_sm = runtime.getDeviceProperties(runtime.getDevice())["multiProcessorCount"]
        per_sm = driver.occupancyMaxActiveBlocksPerMultiprocessor(_fn_ptr(split), nwb * 32, smem)
    except Exception:  # noqa: BLE001  (older CuPy: the H200 values measured with ptxas + smem)
        n_sm, per_sm = N_SM_DEFAULT, PER_SM_FALLBACK[SPLIT_KERNELS[(wpc, nwb, stages, bk, bool(coop))]]
    return max(1, n_sm * max(1, per_sm) * items_per_block(wpc, nwb, coop))


def items_per_block(wpc: int, nwb: int, coop: bool = False) -> int:
    """Work items (b, K/V head, row group, chunk) per block: nwb / wpc warp groups, or 1 with coop."""
    return 1 if coop else nwb // wpc


def _fn_ptr(kern) -> int:
    """CUfunction handle of a CuPy RawKernel (for the driver calls)."""
    f = getattr(kern, "kernel", None) or getattr(kern, "_kernel")
    return int(f.ptr)


def _fast(kern, grid, block, smem, args):
    """Launch ``kern`` with its arguments packed once (cuLaunchKernel on a prebuilt parameter array):
    a decoding step repeats the same pointers and sizes, so the per-call cost is one driver call, not
    CuPy's argument conversion. Falls back to the ordinary CuPy call if the handle is not reachable."""
    import ctypes

    import cupy as cp
    import numpy as np

    try:
        from cupy.cuda import driver
        fptr = _fn_ptr(kern)
        vals = []
        for a in args:
            if isinstance(a, cp.ndarray):
                vals.append(ctypes.c_void_p(a.data.ptr))
            elif isinstance(a, np.int32):
                vals.append(ctypes.c_int32(int(a)))
            elif isinstance(a, np.float32):
                vals.append(ctypes.c_float(float(a)))
            else:
                raise TypeError(type(a))
        params = (ctypes.c_void_p * len(vals))(*(ctypes.addressof(v) for v in vals))
        pp, g, b = ctypes.addressof(params), tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block))

        def launch():
            driver.launchKernel(fptr, g[0], g[1], g[2], b[0], b[1], b[2], smem, cp.cuda.get_current_stream().ptr, pp, 0)
        launch.keep, launch.fast = (vals, params, args), True
        return launch
    except Exception:  # noqa: BLE001
        def launch():
            kern(grid, block, args, shared_mem=smem)
        launch.fast = False
        return launch


def _check(q, k, v, seq_lens, dtype, paged: bool):
    import cupy as cp
    import numpy as np

    q, k, v = (cp.ascontiguousarray(cp.asarray(x)) for x in (q, k, v))
    kind = _kind_of(q, dtype)
    if kind == "f32":
        raise TypeError("decoding kernels take float16 (or uint16 bf16 bits with dtype='bfloat16'), got float32")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.ndim != 4 or k.ndim != 4 or k.shape != v.shape:
        raise ValueError(f"expected q (B, Hq, Lq, d) and k, v of equal 4-D shape, got q {q.shape}, "
                         f"k {k.shape}, v {v.shape}")
    B, hq, lq, d = q.shape
    hkv = k.shape[1]
    if d not in HEAD_DIMS or k.shape[3] != d:
        raise ValueError(f"head dim d must be one of {HEAD_DIMS} and equal in q and k, got q {q.shape}, k {k.shape}")
    if hkv == 0 or hq % hkv:
        raise ValueError(f"query heads Hq={hq} must be a multiple of K/V heads Hkv={hkv}")
    if not paged and k.shape[0] != B:
        raise ValueError(f"k_cache must be (B, Hkv, S, d) with B={B}, got {k.shape}")
    seq_lens = cp.ascontiguousarray(cp.asarray(seq_lens, dtype=np.int32))
    if seq_lens.shape != (B,):
        raise ValueError(f"seq_lens must have shape ({B},), got {seq_lens.shape}")
    return q, k, v, seq_lens, kind


def _run(*args, return_lse: bool = False, **kw):
    go, out, lse = make_launch(*args, **kw)
    if out.size:
        go()
    return (out, lse) if return_lse else out


def make_launch(q, k, v, table, seq_lens, kind, *, s_len, bs, max_blocks, paged, is_causal, scale, chunk,
                max_len, nwb: int | None = None, stages: int | None = None, fused: bool | None = None,
                fast: bool = True, slots: int | None = None, bk: int | None = None, coop: bool | None = None,
                chunk_align: int = BK):
    """Checked-argument-free launcher: returns ``(go, out, lse)``; ``go()`` enqueues the split kernel
    (and the merge kernel unless fused) writing into the preallocated ``out`` and ``lse``.
    fused None: fused when n_part <= FUSE_MAX_PARTS; fast: prepacked driver launches (``_fast``);
    slots: override the resident work items of the chunk rule (benchmark sweeps). coop: None = the
    default (``default_coop``: the cooperative kernel at d = 128, Lq = 1, contiguous, <= 16 packed rows,
    unless nwb, stages, bk or chunk_align name a one-warp variant); True = the block's 4 warps share
    128-key tiles of one chunk (contiguous, <= 16 packed rows); False = the one-warp kernel (w1, the
    session-20 default). Sweep variants (session 20 dec2): bk = 16 (16-key tiles, with stages 2 or 4),
    chunk_align < 32 (chunks of any length: every SM gets work; contiguous only)."""
    import cupy as cp
    import numpy as np

    B, hq, lq, d = q.shape
    hkv = k.shape[1]
    rows = hq // hkv * lq                                   # packed rows per K/V head
    if coop is None:                                        # the default kernel, unless a one-warp variant is named
        coop = (default_coop(d, lq, rows, paged) and nwb is None and stages is None and bk is None
                and chunk_align == BK)
    if coop and (rows > 16 or paged):
        raise ValueError(f"coop needs <= 16 packed rows (G * Lq, got {rows}) and a contiguous cache (paged={paged})")
    if chunk_align != BK and paged:
        raise ValueError(f"chunk_align {chunk_align} needs a contiguous cache (paged tiles start at multiples of {BK})")
    wpc = 1 if rows <= 16 and not coop else NW
    rg = math.ceil(rows / (16 * wpc)) if not coop else 1     # row groups, each re-reading the chunk
    nwb = ((SPLIT_WARPS_PAGED if paged else SPLIT_WARPS) if wpc == 1 else NW) if nwb is None else nwb
    stages = (SPLIT_STAGES if wpc == 1 and nwb == NW else 2) if stages is None else stages
    bk = (4 * BK if coop else BK) if bk is None else bk
    split, merge, smem = _kernels(kind, d, wpc, nwb, stages, bk, coop)
    if chunk is None:
        slots = _slots(kind, d, wpc, nwb, stages, bk, coop) if slots is None else slots
    chunk = choose_chunk(B, hkv, rg, max_len, chunk, wpc, slots or 1, align=chunk_align)
    n_part = max(1, math.ceil(max_len / chunk))
    fused = n_part <= FUSE_MAX_PARTS if fused is None else bool(fused)
    part_o = cp.empty((B, hq, lq, n_part if not fused or n_part > 1 else 0, d), cp.float32)
    part_lse = cp.empty((B, hq, lq, n_part if not fused or n_part > 1 else 0), cp.float32)
    cnt = cp.zeros(max(1, B * hkv * rg * wpc), cp.int32)    # fused: per 16-row slab, left at 0 by each launch
    out = cp.empty_like(q)
    lse = cp.empty((B, hq, lq), cp.float32)
    sc = (1.0 / math.sqrt(d)) if scale is None else float(scale)
    items = B * hkv * rg * n_part                           # (b, h, row group, chunk), one warp group each
    grid = (max(1, math.ceil(items / items_per_block(wpc, nwb, coop))), 1, 1)
    bs_shift = bs.bit_length() - 1 if bs & (bs - 1) == 0 else -1     # power-of-two block: shifts
    args = (q, k, v, table, seq_lens, part_o, part_lse, np.int32(hq), np.int32(hkv), np.int32(lq),
            np.int32(s_len), np.int32(bs), np.int32(bs_shift), np.int32(max_blocks), np.int32(chunk), np.int32(n_part),
            np.float32(sc * LOG2E), np.int32(bool(is_causal)), np.int32(paged), np.int32(rg), np.int32(B),
            np.int32(fused), out, lse, cnt)
    margs = (part_o, part_lse, out, lse, np.int32(n_part))
    if fast:
        calls = [_fast(split, grid, (nwb * 32,), smem, args)]
        if not fused:
            calls.append(_fast(merge, (B * hq * lq,), (MW * 32,), 0, margs))
    else:
        calls = [lambda: split(grid, (nwb * 32,), args, shared_mem=smem)]
        if not fused:
            calls.append(lambda: merge((B * hq * lq,), (MW * 32,), margs))
    if len(calls) == 1:
        go = calls[0]
    else:
        c0, c1 = calls

        def go():
            c0()
            c1()
    go.n_part, go.chunk, go.wpc, go.nwb, go.stages, go.fused = n_part, chunk, wpc, nwb, stages, fused
    go.fast, go.slots, go.refs = all(getattr(c, "fast", False) for c in calls), slots, (args, margs, calls)
    go.bk, go.coop, go.chunk_align, go.grid = bk, bool(coop), chunk_align, grid[0]
    return go, out, lse


def flash_decode(q: Any, k_cache: Any, v_cache: Any, seq_lens: Any, *, is_causal: bool = True,
                 scale: float | None = None, dtype: str | None = None, chunk: int | None = None,
                 return_lse: bool = False, coop: bool | None = None):
    """Attention of Lq new tokens against a contiguous K/V cache, split over the keys.

    q: (B, Hq, Lq, d); k_cache, v_cache: (B, Hkv, S, d), Hq a multiple of Hkv (GQA/MQA, no repeat);
    seq_lens: (B,) ints <= S, the valid cache length of each sequence (the new tokens included).
    float16, or uint16 bf16 bits with ``dtype="bfloat16"``; d in (64, 128). Query i of the Lq new
    tokens sees keys t <= seq_len - Lq + i (``is_causal``) or all t < seq_len. Returns out like q
    (and lse (B, Hq, Lq) float32 with ``return_lse``); a row that sees no key gives 0 and -inf.
    coop: None = the default split kernel (cooperative at d = 128, Lq = 1, G <= 16; see the module
    docstring), False = one warp per chunk (the session-20 default), True = cooperative (G * Lq <= 16).
    """
    import cupy as cp

    q, k, v, seq_lens, kind = _check(q, k_cache, v_cache, seq_lens, dtype, paged=False)
    s_len = k.shape[2]
    max_len = int(seq_lens.max()) if seq_lens.size else 0
    if max_len > s_len or (seq_lens.size and int(seq_lens.min()) < 0):
        raise ValueError(f"seq_lens must lie in [0, S={s_len}], got max {max_len}")
    dummy = cp.zeros(1, cp.int32)
    return _run(q, k, v, dummy, seq_lens, kind, s_len=s_len, bs=1, max_blocks=1, paged=False,
                is_causal=is_causal, scale=scale, chunk=chunk, max_len=max_len, return_lse=return_lse, coop=coop)


def paged_flash_decode(q: Any, k_pool: Any, v_pool: Any, block_tables: Any, seq_lens: Any, *,
                       is_causal: bool = True, scale: float | None = None, dtype: str | None = None,
                       chunk: int | None = None, return_lse: bool = False):
    """:func:`flash_decode` reading K/V through a block table (chapter 09's paged layout).

    k_pool, v_pool: (n_blocks, Hkv, block_size, d); block_tables: (B, max_blocks) int, key t of
    sequence b is row t % block_size of pool block block_tables[b, t // block_size]; every entry must
    be a valid block index (pad unused entries with 0, not -1); seq_lens: (B,) <= max_blocks *
    block_size. A power-of-two block_size is faster (shifts instead of divisions). Other arguments
    as :func:`flash_decode`.
    """
    import cupy as cp
    import numpy as np

    q, k, v, seq_lens, kind = _check(q, k_pool, v_pool, seq_lens, dtype, paged=True)
    table = cp.ascontiguousarray(cp.asarray(block_tables, dtype=np.int32))
    B, bs = q.shape[0], k.shape[2]
    if table.ndim != 2 or table.shape[0] != B:
        raise ValueError(f"block_tables must be (B={B}, max_blocks), got {table.shape}")
    max_len = int(seq_lens.max()) if seq_lens.size else 0
    if max_len > table.shape[1] * bs or (seq_lens.size and int(seq_lens.min()) < 0):
        raise ValueError(f"seq_lens must lie in [0, max_blocks * block_size = {table.shape[1] * bs}], got max {max_len}")
    if table.size and (int(table.min()) < 0 or int(table.max()) >= k.shape[0]):
        raise ValueError(f"block_tables entries must lie in [0, n_blocks={k.shape[0]})")
    return _run(q, k, v, table, seq_lens, kind, s_len=0, bs=bs, max_blocks=table.shape[1], paged=True,
                is_causal=is_causal, scale=scale, chunk=chunk, max_len=max_len, return_lse=return_lse)
