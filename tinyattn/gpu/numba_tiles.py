"""Tile shapes of the Numba fp32 FlashAttention forward (chapter 07): ``NumbaConfig``, the default per
head dim, and the layout of the dynamic shared buffer (``numba_flash.make_kernel`` compiles one kernel
per (d, config)). CPU-only arithmetic: nothing here touches a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass

from ._jit import simulator_enabled


@dataclass(frozen=True)
class NumbaConfig:
    """Tile shape: TX*TY threads, BQ = TY*RQ query rows and BK = TX*CK keys per tile; d % TX == 0.
    max_regs: register cap per thread for the compiler (0: its choice; ignored by the simulator).
    pad: 0 = the shipped layout; 1 = bank-conflict-free rows for sP and sMax / sSum (``shared_layout``:
    the 32 // TX rows one warp writes start TX // RQ banks apart, so its 32 lanes hit 32 banks).
    sum_once: 0 = the row sums l are summed across the TX threads of a row every tile (shipped); 1 = each
    thread keeps the partial l of its own keys (l_t' = alpha l_t + its part of rowsum P, alpha is the
    same for the whole row) and they are summed once after the last tile.
    stage: 0 = each thread copies its K / V words of a tile one at a time (load, store, next); G > 0 = a
    full tile (all BK keys exist) is copied in groups of G K and G V words per thread: the group's global
    loads are issued back to back, then stored, so their latencies overlap instead of adding up.
    prefetch: 1 (with stage) = the first group of the next full tile is loaded into registers before the
    P V loop of this tile (the score registers are free by then) and stored after the tile's last barrier."""

    tx: int = 8
    ty: int = 16
    rq: int = 4
    ck: int = 4
    max_regs: int = 0
    pad: int = 0
    sum_once: int = 0
    stage: int = 0
    prefetch: int = 0

    @property
    def block_q(self) -> int:
        return self.ty * self.rq

    @property
    def block_k(self) -> int:
        return self.tx * self.ck


def default_config(d: int) -> NumbaConfig:
    """Tile shape for head dim d: tiny under the simulator; on a GPU (measured on the H200, NOTES.md
    session 21) d <= 64: 128 threads, 64 x 64 tiles, 4 blocks per SM; d <= 128: 512 threads, 128 x 128
    tiles, one block of 16 warps per SM (214 KB of shared memory), so each thread's scores and outputs
    are 4 x 8 register tiles; both copy K / V in groups of 8 loads (``stage``); larger d: 64 x 32 tiles."""
    if simulator_enabled():
        return NumbaConfig(tx=4, ty=4, rq=2, ck=2)
    # session 21 (N = 8192, interleaved runs S21-3..5): d = 64 23.8-24.0 TFLOP/s (session 20's shape without
    # stage / pad / sum_once: 17.9); d = 128 23.8 (session 20's 64 x 32 tiles: 15.4); max_regs = 128 keeps
    # 16 warps per SM (d = 64 needs 157 registers with stage and no cap)
    if d <= 64:
        return NumbaConfig(tx=8, ty=16, rq=4, ck=8, max_regs=128, pad=1, sum_once=1, stage=8)
    if d <= 128:
        return NumbaConfig(tx=16, ty=32, rq=4, ck=8, max_regs=128, pad=1, stage=8, prefetch=1)
    return NumbaConfig(tx=8, ty=16, rq=4, ck=4)


def shared_layout(d: int, cfg: NumbaConfig) -> dict[str, tuple[int, int]]:
    """Offsets into the dynamic shared buffer, in float32 words: name -> (first word, row stride).

    Tiles, in order: sQ (BQ, d+1), sKT (d, BK+1), sV (BK, d), sMax (BQ, MS), sSum (BQ, MS); sP
    (BQ, PS) lies in sKT's space (that region holds the larger of the two): P is written only after
    the barrier that follows the scores, when no thread reads K any more. The +1 word of padding per
    row puts the rows one warp reads in different banks. Shipped (pad=0): PS = BK+1, MS = TX; pad=1:
    PS = BK + w, MS = TX + w with w = max(1, TX // RQ) (RQ rows x w words = TX banks between the rows
    of consecutive ty, so a warp's P / max / sum stores are conflict-free; model:
    benchmarks/numba_smem_model.py). "end" holds the total size in words.
    """
    BQ, BK, TX = cfg.block_q, cfg.block_k, cfg.tx
    w = max(1, TX // cfg.rq) if cfg.pad else 0
    PS, MS = (BK + w if w else BK + 1), TX + w
    sizes = [("sQ", BQ, d + 1), ("sKT", max(d, -(-BQ * PS // (BK + 1))), BK + 1), ("sV", BK, d),
             ("sMax", BQ, MS), ("sSum", BQ, MS)]
    out, off = {}, 0
    for name, rows, stride in sizes:
        out[name] = (off, stride)
        off += rows * stride
    out["sP"] = (out["sKT"][0], PS)
    out["end"] = (off, 0)
    return out


def shared_bytes(d: int, cfg: NumbaConfig) -> int:
    """Dynamic shared memory of one block, bytes: 4 * (BQ(d+1) + max(d, BQ)(BK+1) + BK d + 2 BQ TX)."""
    return 4 * shared_layout(d, cfg)["end"][0]


def batched_staging(d: int, cfg: NumbaConfig) -> bool:
    """Whether ``stage = G > 0`` applies: every pass of the NT threads covers NT // d whole rows (NT % d == 0)
    and a tile is a whole number of groups (BK d % (NT G) == 0); otherwise the word loop is used."""
    nt = cfg.tx * cfg.ty
    return cfg.stage > 0 and nt % d == 0 and (cfg.block_k * d) % (nt * cfg.stage) == 0
