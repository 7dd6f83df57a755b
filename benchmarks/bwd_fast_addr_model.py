"""Python model (no device): the precomputed-table shared addresses of bwd_dkdv_fast.cuh equal the shipped
kernel's swz() addresses for every lane, warp, step and stage (d = 64 w4m2q32x, d = 128 w8m1q64x, both
64-byte-row swizzles), the tile loader covers each chunk once, and the fragment-order dQ positions written by
the kernel are the ones the convert kernel reads. The formulas are transcribed by hand from the .cuh.

    python benchmarks/bwd_fast_addr_model.py
"""
def swz(W, row, col, half=1):
    x = (row & 7) if W % 64 == 0 else (((row >> 1) & 3) if half else (row & 3))
    return row * W + (((col >> 3) ^ x) << 3)

for half in (1, 0):
  for D, NW, MT, BQ in ((64, 4, 2, 32), (128, 8, 1, 64)):
    BKV = 16 * NW * MT; WM = BQ // 16; WN = NW // WM; DW = D // WN; ROW = 2 * D
    OV = BKV * D * 2; OQ = 2 * OV; SQ = BQ * D * 2; ODO = OQ + 2 * SQ; OS = ODO + 2 * SQ
    n = 0
    for warp in range(NW):
      wrow = warp * 16 * MT
      for lane in range(32):
        g, t4 = lane >> 2, lane & 3
        tQ = [2 * swz(D, (lane & 7) + ((lane >> 4) << 3), (2 * j + ((lane >> 3) & 1)) * 8, half) for j in range(4)]
        tK = [2 * swz(D, lane & 15, (2 * j + (lane >> 4)) * 8, half) for j in range(4)]
        aK = wrow * ROW
        for st in (0, 1):
          aQ = OQ + st * SQ
          # phase 1
          for kk in range(D // 16):
            ck = (kk >> 2) * 128
            for mt in range(MT):
              ref = 2 * swz(D, wrow + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8, half)
              assert aK + tK[kk & 3] + mt * 16 * ROW + ck == ref; n += 1
              assert aK + tK[kk & 3] + OV + mt * 16 * ROW + ck == OV + ref
            for nn in range(BQ // 16):
              row = nn * 16 + (lane & 7) + ((lane >> 4) << 3); col = kk * 16 + ((lane >> 3) & 1) * 8
              assert aQ + tQ[kk & 3] + nn * 16 * ROW + ck == aQ + 2 * swz(D, row, col, half); n += 1
              assert aQ + tQ[kk & 3] + 2 * SQ + nn * 16 * ROW + ck == ODO + st * SQ + 2 * swz(D, row, col, half)
          # phase 2
          for kk in range(BQ // 16):
            for nn in range(D // 16):
              row = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8; col = nn * 16 + (lane >> 4) * 8
              off = kk * 16 * ROW + (nn >> 2) * 128
              assert aQ + tK[nn & 3] + off == aQ + 2 * swz(D, row, col, half); n += 1
        # dS^T stores
        xs = (swz(BQ, g, 0, half) - g * BQ) >> 3
        aS = OS + (wrow + g) * BQ * 2 + 4 * t4
        for mt in range(MT):
          for kk in range(BQ // 16):
            for e in range(4):
              h = e >> 1
              r = wrow + mt * 16 + g + (e & 1) * 8; c = kk * 16 + (e >> 1) * 8
              got = aS + (((2 * kk + h) ^ xs) << 4) + (mt * 16 + (e & 1) * 8) * BQ * 2
              assert got == OS + 2 * (swz(BQ, r, c, half) + 2 * t4), (D, warp, lane, mt, kk, e); n += 1
        # dQ phase
        mr, c0 = (warp % WM) * 16, (warp // WM) * DW
        aA = OS + 2 * swz(BQ, (lane >> 4) * 8 + (lane & 7), mr + ((lane >> 3) & 1) * 8, half)
        tD = [2 * swz(D, lane & 15, c0 + nn * 16 + (lane >> 4) * 8, half) for nn in range(DW // 16)]
        for kk in range(BKV // 16):
          ref = OS + 2 * swz(BQ, kk * 16 + (lane >> 4) * 8 + (lane & 7), mr + ((lane >> 3) & 1) * 8, half)
          assert aA + kk * 16 * BQ * 2 == ref; n += 1
          for nn in range(DW // 16):
            ref = 2 * swz(D, kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c0 + nn * 16 + (lane >> 4) * 8, half)
            assert tD[nn] + kk * 16 * ROW == ref; n += 1
    # tile loader: chunk (row, c) of thread tid, j
    NT = NW * 32; CPR = D // 8; R = NT // CPR
    for rows in (BQ,):
      seen = set()
      for tid in range(NT):
        tr = tid // CPR; soff = 2 * swz(D, tr, (tid % CPR) * 8, half); goff = tr * D + (tid % CPR) * 8
        for j in range(rows // R):
          i = tid + j * NT; row, col = i // CPR, (i % CPR) * 8
          assert soff + j * R * D * 2 == 2 * swz(D, row, col, half) and goff + j * R * D == row * D + col
          seen.add((row, col))
      assert len(seen) == rows * CPR
    print(f"D={D} half={half}: {n} ldmatrix/sts addresses equal to the swz() ones")
# fragment-order dQ: kernel write position == convert read position for every element
D, nq = 64, 200; nq_pad = 256; BH = 2
pos = {}
for bh in range(BH):
  for q0 in range(0, nq_pad, 32):
    for mr in (0, 16):
      for c0 in (0, 32):
        for n in range(4):
          for lane in range(32):
            g, t4 = lane >> 2, lane & 3
            base = (((bh * nq_pad + q0 + mr) >> 4) * (D // 8) + c0 // 8) * 128 + lane * 4 + n * 128
            for e in range(4):
              pos[base + e] = (bh, q0 + mr + g + 8 * (e >> 1), c0 + n * 8 + 2 * t4 + (e & 1))
assert len(pos) == BH * nq_pad * D
for gid in range(BH * nq_pad * D // 4):
  blk, ln = gid >> 5, gid & 31; c8 = blk % (D // 8); rows = blk // (D // 8)
  bh = rows // (nq_pad // 16); r = (rows % (nq_pad // 16)) * 16 + (ln >> 2); col = c8 * 8 + 2 * (ln & 3)
  assert [pos[4 * gid + e] for e in range(4)] == [(bh, r, col), (bh, r, col + 1), (bh, r + 8, col), (bh, r + 8, col + 1)]
print("fragment-order dQ: kernel positions == convert positions")
