"""Shared-memory access model of the Numba fp32 forward (``tinyattn/gpu/numba_flash.py``), CPU only.

    python benchmarks/numba_smem_model.py          # table: shipped d = 64 / 128, measured shapes, candidates

For one K/V tile of one thread block, re-enact every shared-memory load and store the kernel issues
(same index expressions, thread layout tid = ty * TX + tx, padding from ``numba_flash.shared_layout``),
warp by warp, and count for each warp instruction its *wavefronts* (passes of the 32 banks x 4 bytes):

- 4-byte access: the warp is one phase; lanes reading the same word share it (broadcast); a phase
  costs max over banks of (distinct words in that bank). 8- / 16-byte accesses: 2 / 4 phases of
  16 / 8 lanes, each counted the same way ("phases" hypothesis, the classic rule; ``merged``: the
  whole warp at once, wavefronts = max(distinct 128-byte lines' worth of bytes, worst bank)).
- per thread and tile: FFMAs (S: RQ*CK*d, P V: RQ*DC*BK), shared words loaded, wavefronts, exps.

Occupancy on an H200 SM (65536 registers, 228 KB shared of which 227 KB per block + 1 KB reserved per
block, 64 warps, 32 blocks): registers per warp = 32 * ceil8(regs). Registers come from ptxas 13.0 on the
Numba PTX (cc 9.0) on the CPU machine: ``REGS`` (recompute: ``--ptxas``; needs numba and ptxas).
The b892a45 16-byte-load kernel (session 20 call 2, reverted) is modelled from its index expressions.
Writes nothing; NOTES.md "Session 20: nb128" holds the table and the prediction.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinyattn.gpu.numba_flash import NumbaConfig, shared_bytes, shared_layout  # noqa: E402

# ptxas 13.0 (sm_90) on Numba's PTX, compiled on the CPU machine; vec4 = b892a45's numbers (NOTES.md)
# keys (d, tx, ty, rq, ck, pad, sum_once)
REGS = {(64, 8, 16, 4, 8, 0, 0): 116, (64, 8, 16, 4, 8, 1, 0): 118, (128, 8, 16, 4, 4, 0, 0): 164,
        (128, 8, 16, 4, 4, 1, 0): 164, (128, 16, 16, 4, 4, 0, 0): 125, (128, 16, 16, 4, 4, 1, 0): 125,
        (128, 8, 16, 4, 8, 0, 0): 152, (128, 16, 8, 8, 4, 0, 0): 164, (64, 16, 8, 8, 4, 0, 0): 164,
        (128, 16, 16, 4, 4, 1, 1): 128, (128, 8, 16, 4, 4, 1, 1): 154, (64, 8, 16, 4, 8, 1, 1): 127,
        ("vec4", 64, 8, 16, 4, 8): 168, ("vec4", 64, 8, 16, 4, 4): 128, ("vec4", 128, 8, 16, 4, 4): 168}
# measured on the H200, N = 8192 non-causal, TFLOP/s (session 20 fwd, calls 1 and 2, interleaved)
MEASURED = {(64, 8, 16, 4, 8, 0, 0): 17.97, (128, 8, 16, 4, 4, 0, 0): 15.38, (128, 8, 16, 4, 8, 0, 0): 13.31,
            (128, 16, 8, 8, 4, 0, 0): 13.06, (128, 16, 16, 4, 4, 0, 0): 15.89, (64, 16, 8, 8, 4, 0, 0): 16.50,
            ("vec4", 64, 8, 16, 4, 8): 14.85, ("vec4", 64, 8, 16, 4, 4): 16.52, ("vec4", 128, 8, 16, 4, 4): 13.64}
BANKS = 32


def wavefronts(addrs: list[int | None], width: int, merged: bool = False) -> int:
    """Passes one warp instruction needs. addrs: 32 lanes' byte addresses (None = inactive lane), each
    access `width` (4, 8, 16) bytes, aligned. Phases of 32 / 16 / 8 lanes (or one merged phase)."""
    lanes = 32 if merged else 128 // width
    total = 0
    for p in range(0, 32, lanes):
        words_by_bank: dict[int, set] = defaultdict(set)
        for a in addrs[p:p + lanes]:
            if a is not None:
                for w in range(a // 4, a // 4 + width // 4):
                    words_by_bank[w % BANKS].add(w)
        if words_by_bank:
            worst = max(len(s) for s in words_by_bank.values())
            uniq = sum(len(s) for s in words_by_bank.values())
            total += max(worst, math.ceil(uniq / BANKS)) if merged else worst
    return total


class Counter:
    """Per-tile totals over all warps of one block: instructions, wavefronts, by site."""

    def __init__(self, nwarps: int):
        self.nwarps = nwarps
        self.instr: dict[str, int] = defaultdict(int)
        self.wf: dict[str, int] = defaultdict(int)
        self.wf_merged: dict[str, int] = defaultdict(int)
        self.words: dict[str, int] = defaultdict(int)

    def add(self, site: str, word_addrs: list[int | None], width: int = 4):
        byte = [None if a is None else 4 * a for a in word_addrs]
        self.instr[site] += 1
        self.wf[site] += wavefronts(byte, width)
        self.wf_merged[site] += wavefronts(byte, width, merged=True)
        self.words[site] += width // 4


def lanes(cfg: NumbaConfig, warp: int):
    return [((32 * warp + l) % cfg.tx, (32 * warp + l) // cfg.tx, 32 * warp + l) for l in range(32)]


def model_shipped(d: int, cfg: NumbaConfig) -> tuple[Counter, dict]:
    """Every shared access of one K/V tile of numba_flash's kernel (all warps), as the code writes them."""
    TX, TY, RQ, CK = cfg.tx, cfg.ty, cfg.rq, cfg.ck
    BQ, BK, DC, NT = TY * RQ, TX * CK, d // TX, TX * TY
    L = shared_layout(d, cfg)
    QP, KP, PS, MS = L["sQ"][1], L["sKT"][1], L["sP"][1], L["sMax"][1]
    oQ, oKT, oV, oMax, oSum = L["sQ"][0], L["sKT"][0], L["sV"][0], L["sMax"][0], L["sSum"][0]
    cnt = Counter(NT // 32)
    for w in range(NT // 32):
        ln = lanes(cfg, w)
        for it in range(-(-BK * d // NT)):                       # staging K^T and V (stores)
            idx = [tid + NT * it for _, _, tid in ln]
            rc = [(i // d, i % d) if i < BK * d else None for i in idx]
            cnt.add("st K^T", [None if x is None else oKT + x[1] * KP + x[0] for x in rc])
            cnt.add("st V", [None if x is None else oV + x[0] * d + x[1] for x in rc])
        for c in range(d):                                      # S = Q K^T
            for i in range(RQ):
                cnt.add("ld Q (S)", [oQ + (ty * RQ + i) * QP + c for tx, ty, _ in ln])
            for j in range(CK):
                cnt.add("ld K^T (S)", [oKT + c * KP + tx + TX * j for tx, ty, _ in ln])
        for i in range(RQ):                                     # partial row max, softmax, partial sums
            cnt.add("st max", [oMax + (ty * RQ + i) * MS + tx for tx, ty, _ in ln])
        for i in range(RQ):
            for x in range(TX):
                cnt.add("ld max", [oMax + (ty * RQ + i) * MS + x for tx, ty, _ in ln])
            for j in range(CK):
                cnt.add("st P", [oKT + (ty * RQ + i) * PS + tx + TX * j for tx, ty, _ in ln])
            if not cfg.sum_once:                                # sum_once: l summed after the last tile only
                cnt.add("st sum", [oSum + (ty * RQ + i) * MS + tx for tx, ty, _ in ln])
        for i in range(RQ if not cfg.sum_once else 0):
            for x in range(TX):
                cnt.add("ld sum", [oSum + (ty * RQ + i) * MS + x for tx, ty, _ in ln])
        for j in range(BK):                                     # O += P V
            for i in range(RQ):
                cnt.add("ld P (PV)", [oKT + (ty * RQ + i) * PS + j for tx, ty, _ in ln])
            for c in range(DC):
                cnt.add("ld V (PV)", [oV + j * d + tx + TX * c for tx, ty, _ in ln])
    per_thread = {"ffma_S": RQ * CK * d, "ffma_PV": RQ * DC * BK, "exp": RQ * CK + RQ, "barriers": 4,
                  "smem": shared_bytes(d, cfg), "regs": REGS.get((d, TX, TY, RQ, CK, cfg.pad, cfg.sum_once)), "NT": NT}
    return cnt, per_thread


def model_vec4(d: int, TX: int, TY: int, RQ: int, CK: int) -> tuple[Counter, dict]:
    """Inner loops only of b892a45 (16-byte loads; Q, K row-major with rows of d + 4 words, P and V^T
    rows of BK + 4): S takes 4 columns of d per step, P V 4 keys per step."""
    BQ, BK, DC, NT = TY * RQ, TX * CK, d // TX, TX * TY
    QS = KS = d + 4
    PS = VS = BK + 4
    oQ, oK = 0, BQ * QS                        # relative offsets: multiples of 4 words (16-byte aligned)
    oP, oVT = oK, oK + max(BK * KS, BQ * PS)   # P reuses K's space
    cnt = Counter(NT // 32)
    cfg = NumbaConfig(TX, TY, RQ, CK)
    for w in range(NT // 32):
        ln = lanes(cfg, w)
        for c in range(0, d, 4):
            for i in range(RQ):
                cnt.add("ld Q (S)", [oQ + (ty * RQ + i) * QS + c for tx, ty, _ in ln], 16)
            for j in range(CK):
                cnt.add("ld K (S)", [oK + (tx + TX * j) * KS + c for tx, ty, _ in ln], 16)
        for j in range(0, BK, 4):
            for i in range(RQ):
                cnt.add("ld P (PV)", [oP + (ty * RQ + i) * PS + j for tx, ty, _ in ln], 16)
            for c in range(DC):
                cnt.add("ld V^T (PV)", [oVT + (tx + TX * c) * VS + j for tx, ty, _ in ln], 16)
    smem = 4 * (BQ * QS + max(BK * KS, BQ * PS) + d * VS + 2 * BQ * TX)
    per_thread = {"ffma_S": RQ * CK * d, "ffma_PV": RQ * DC * BK, "exp": RQ * CK + RQ, "barriers": 4,
                  "smem": smem, "regs": REGS.get(("vec4", d, TX, TY, RQ, CK)), "NT": NT}
    return cnt, per_thread


def occupancy(regs: int | None, smem: int, nt: int) -> dict:
    """Blocks and warps per H200 SM from registers (per-warp allocation, 8-register granularity), shared
    memory (227 KB per block max, 228 KB per SM, 1 KB reserved per block), threads, warps."""
    wpb = nt // 32
    by_smem = 228 * 1024 // (smem + 1024) if smem <= 227 * 1024 else 0
    by_regs = (65536 // (32 * 8 * math.ceil(regs / 8))) // wpb if regs else 99
    blocks = min(by_smem, by_regs, 64 // wpb, 32)
    return {"blocks": blocks, "warps": blocks * wpb, "by_regs": by_regs, "by_smem": by_smem}


def summarize(name: str, cnt: Counter, pt: dict) -> dict:
    nw = cnt.nwarps
    ffma = pt["ffma_S"] + pt["ffma_PV"]                         # per thread = per warp instruction
    inner = [s for s in cnt.instr if "(S)" in s or "(PV)" in s]
    per = lambda dct, sites: sum(dct[s] for s in sites) / nw / ffma   # noqa: E731  per warp FFMA
    occ = occupancy(pt["regs"], pt["smem"], pt["NT"])
    return {"name": name, "ffma": ffma, "words_inner": per(cnt.words, inner), "ld_inner": per(cnt.instr, inner),
            "wf_inner": per(cnt.wf, inner), "wf_inner_merged": per(cnt.wf_merged, inner),
            "wf_S": sum(cnt.wf[s] for s in inner if "(S)" in s) / nw / pt["ffma_S"],
            "wf_PV": sum(cnt.wf[s] for s in inner if "(PV)" in s) / nw / pt["ffma_PV"],
            "wf_other": per(cnt.wf, [s for s in cnt.instr if s not in inner]),
            "wf_all": per(cnt.wf, list(cnt.instr)), "exp": pt["exp"] / ffma, "smem_kb": pt["smem"] / 1024,
            "regs": pt["regs"], **occ,
            "conflicts": {s: round(cnt.wf[s] / cnt.instr[s], 2) for s in cnt.instr if cnt.wf[s] > cnt.words[s]}}


def ptxas_regs(d: int, cfg: NumbaConfig) -> int:
    """Registers from ptxas for the Numba kernel's PTX (CPU only; needs numba and a ptxas on PATH)."""
    import re
    import subprocess
    import tempfile

    import numpy as np
    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack
    from numba import cuda, types
    from tinyattn.gpu.numba_flash import make_kernel
    a3, a2 = types.Array(types.float32, 3, "C"), types.Array(types.float32, 2, "C")
    sig = (a3, a3, a3, a3, a2, types.float32, types.int32, types.int32)
    ptx, _ = cuda.compile_ptx(make_kernel(d, cfg).py_func, sig, cc=(9, 0), fastmath=True)
    ptx = re.sub(r"^\.version \d+\.\d+", ".version 9.0", ptx, flags=re.M)   # older ptxas accept it
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
        f.write(ptx)
        f.flush()
        err = subprocess.run(["ptxas", "-arch=sm_90", "-v", "-o", "/dev/null", f.name],
                             capture_output=True, text=True).stderr
    return int(re.search(r"Used (\d+) registers", err).group(1))


# (d, NumbaConfig fields (tx, ty, rq, ck, max_regs, pad, sum_once), label)
SHIPPED = [(64, (8, 16, 4, 8, 0, 0, 0), "shipped d=64"), (128, (8, 16, 4, 4, 0, 0, 0), "shipped d=128")]
MEASURED_SHAPES = [(128, (8, 16, 4, 8, 0, 0, 0), "64x64 128thr"), (128, (16, 8, 8, 4, 0, 0, 0), "64x64 128thr"),
                   (128, (16, 16, 4, 4, 0, 0, 0), "64x64 256thr"), (64, (16, 8, 8, 4, 0, 0, 0), "64x64 128thr")]
CANDIDATES = [(128, (16, 16, 4, 4, 0, 1, 1), "cand A"), (128, (8, 16, 4, 4, 0, 1, 1), "cand B"),
              (128, (16, 16, 4, 4, 0, 1, 0), "A pad only"), (128, (8, 16, 4, 4, 0, 1, 0), "B pad only"),
              (64, (8, 16, 4, 8, 0, 1, 1), "control d=64"), (64, (8, 16, 4, 8, 0, 1, 0), "control d=64 pad")]
VEC4 = [(64, (8, 16, 4, 8)), (64, (8, 16, 4, 4)), (128, (8, 16, 4, 4))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ptxas", action="store_true", help="recompute registers with numba + ptxas here")
    args = ap.parse_args()
    rows = []
    for d, shape, label in SHIPPED + MEASURED_SHAPES + CANDIDATES:
        cfg = NumbaConfig(*shape)
        if args.ptxas:
            REGS[(d, *shape[:4], *shape[5:])] = ptxas_regs(d, cfg)
        cnt, pt = model_shipped(d, cfg)
        r = summarize(f"{label} {shape[:4]}{' pad' if shape[5] else ''}{' once' if shape[6] else ''}", cnt, pt)
        r["d"], r["measured"] = d, MEASURED.get((d, *shape[:4], *shape[5:]))
        rows.append(r)
    for d, shape in VEC4:
        cnt, pt = model_vec4(d, *shape)
        r = summarize(f"vec4 (b892a45) {shape}", cnt, pt)
        r["d"], r["measured"] = d, MEASURED.get(("vec4", d, *shape))
        rows.append(r)
    hdr = (f"{'kernel':38s} {'d':>3s} {'ld/F':>5s} {'wfS':>5s} {'wfPV':>5s} {'wfIn':>5s} {'wfIn*':>5s} "
           f"{'wfOth':>5s} {'wfAll':>5s} {'exp/F':>6s} {'KB':>5s} {'regs':>4s} {'blk':>3s} {'warps':>5s} {'TF/s':>5s}")
    print(hdr)
    for r in rows:
        print(f"{r['name']:38s} {r['d']:3d} {r['ld_inner']:5.3f} {r['wf_S']:5.3f} {r['wf_PV']:5.3f} "
              f"{r['wf_inner']:5.3f} {r['wf_inner_merged']:5.3f} {r['wf_other']:5.3f} {r['wf_all']:5.3f} "
              f"{r['exp']:6.4f} {r['smem_kb']:5.1f} {r['regs'] or '?':>4} {r['blocks']:3d} {r['warps']:5d} "
              f"{r['measured'] or '':>5}")
    print("\nper warp FFMA instruction: ld/F shared load instructions (inner loops), wfS / wfPV / wfIn wavefronts"
          " of the S loop, the P V loop, both ('phases' rule), wfIn* the same with the warp merged into one"
          " phase, wfOth staging + softmax + reductions (vec4 rows: inner loops only), wfAll everything;"
          " exp/F exponentials per FFMA; KB shared memory per block; blk / warps per SM (H200);"
          " TF/s measured N = 8192 non-causal (session 20).")
    print("bank conflicts (wavefronts per instruction per word > 1):")
    for r in rows:
        if r["conflicts"]:
            print(f"  {r['name']}: {r['conflicts']}")


if __name__ == "__main__":
    main()
