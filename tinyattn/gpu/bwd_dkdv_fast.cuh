// dK/dV kernel of bwd_dkdv_reg.cuh (K/V fragments read from shared memory, P^T and dS^T in registers) with
// every shared-memory address in 32-bit form and precomputed per lane (Session 20, helper bwd2). Needs
// bwd_common.cuh first; variants w<NW>m<MT>q<BQ>x[f] in flash_mma_bwd.cu.
//
// Why: the register kernel forms each ldmatrix address as a 64-bit generic pointer and converts it
// (smem_u32 is an opaque cvta), so every ldmatrix costs ~5 integer instructions (NOTES.md, bwd2). Here, for
// tiles of D = 64 k columns (rows of >= 128 bytes, chunk XOR = row & 7), an ldmatrix of row r0 + (lane row),
// 16-byte chunk 2 kk + (lane half) reads byte address
//     base + tbl[kk & 3] + (kk >> 2) * 128 + r0 * 2W          (tbl[j] = 2 swz(lane row, (2 j + lane half) * 8))
// because the lane's row & 7 does not change with r0 (a multiple of 8) and (2 kk + h) ^ x = 8 (kk >> 2) +
// ((2 (kk & 3) + h) ^ x) for x < 8. The last two terms are compile-time constants (ldmatrix immediates).
// FRAG: the fp32 dQ accumulator is kept in mma-fragment order (16 x 8 blocks of 128 floats, lane-major) so
// a warp's red.global.add.v4.f32 covers 512 contiguous bytes (4 lines) instead of 8 rows x 32 bytes twice;
// fa_bwd_dq_convert_frag_* undoes the order.
// SPLIT (Session 21, sweep only, variant w8m1q64xfg): a GQA group's query heads are split over gridDim.z = S
// blocks, as in bwd_dkdv_smem.cuh; each block adds its partial dK (scaled), dV into fp32 accumulators dkacc,
// dvacc (BHkv, nk_pad, D) in the same fragment order with red.v4, rounded by fa_bwd_dq_convert_frag_* (scale 1).
#pragma once
#include "bwd_common.cuh"

namespace fa_bwd {

// rows [r0, r0 + ROWS) of an (n, D) matrix -> swizzled tile at shared byte address s; rows >= n zero-filled.
// Thread tid copies chunk tid % (D/8) of rows tid / (D/8) + j R (R = NT / (D/8), a multiple of 8: the
// swizzle XOR is the same for every j, so one shared offset and one global offset per thread)
template <int D, int ROWS, int NT>
struct TileLoader {
    static constexpr int CPR = D / 8, R = NT / CPR, J = ROWS / R;
    static_assert(D % 64 == 0 && NT % CPR == 0 && R % 8 == 0 && ROWS % R == 0, "TileLoader shape");
    int tr, goff;
    u32 soff;
    __device__ __forceinline__ explicit TileLoader(int tid) {
        tr = tid / CPR;
        goff = tr * D + (tid % CPR) * 8;
        soff = 2 * swz<D>(tr, (tid % CPR) * 8);
    }
    __device__ __forceinline__ void load(u32 s, const u16* g, int r0, int n) const {
        const u16* src = g + (size_t)r0 * D + goff;
#pragma unroll
        for (int j = 0; j < J; ++j) {
            const bool ok = r0 + tr + j * R < n;
            cp_async16(s + soff + j * R * D * 2, ok ? src + j * R * D : g, ok ? 16 : 0);
        }
    }
};

template <int D, bool BF16, int NW, int MT, int BQ, bool ATOMIC, bool FRAG, bool SPLIT = false>
__device__ __forceinline__ void dkdv_fast(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,
                                          const u16* __restrict__ dout, const float* __restrict__ lse2,
                                          const float* __restrict__ delta, u16* __restrict__ dk, u16* __restrict__ dv,
                                          float* __restrict__ dqacc, int nq, int nk, float scale_log2, float scale,
                                          int causal, int group, float* __restrict__ dkacc = nullptr,
                                          float* __restrict__ dvacc = nullptr) {
    constexpr int NT = NW * 32, BKV = 16 * NW * MT;
    constexpr int WM = BQ / 16, WN = NW / WM, DW = D / WN;   // dQ tile split: WM row x WN column warps
    static_assert(D % 64 == 0 && (BQ == 32 || BQ == 64), "tables assume rows of >= 128 bytes");
    static_assert(!ATOMIC || (NW % WM == 0 && DW % 16 == 0 && DW <= 64), "dQ tile split");
    // shared byte offsets: K, V [BKV][D]; 2 stages of Q, dO [BQ][D]; dS^T [BKV][BQ]; 2 stages of lse2, delta
    constexpr u32 OV = BKV * D * 2, OQ = 2 * OV, SQ = BQ * D * 2, ODO = OQ + 2 * SQ, OS = ODO + 2 * SQ;
    constexpr u32 OL = OS + (ATOMIC ? BKV * BQ * 2 : 0), ODL = OL + 2 * BQ * 4;
    constexpr u32 ROW = D * 2;                                 // bytes per K / Q row
    extern __shared__ __align__(128) unsigned char smem_raw[];
    u16* sK = reinterpret_cast<u16*>(smem_raw);
    const float* sL = reinterpret_cast<const float*>(smem_raw + OL);
    const float* sDl = reinterpret_cast<const float*>(smem_raw + ODL);
    const u32 sb = smem_u32(smem_raw);

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int k0 = blockIdx.x * BKV;
    const size_t bkv = blockIdx.y;
    const int nq_pad = (nq + PAD - 1) / PAD * PAD;
    const int offset = nk - nq;
    const u16* K = k + bkv * nk * D;
    const u16* V = v + bkv * nk * D;
    const int qt0 = causal ? max(0, k0 - offset) / BQ : 0;
    const int nqt = (nq + BQ - 1) / BQ;
    const int per_head = max(0, nqt - qt0);
    // SPLIT: this block's gsz query heads of the group, bh0 .. bh0 + gsz - 1 (written so that without SPLIT
    // the expressions are those of the shipped kernels: their SASS is unchanged, NOTES.md Session 21: gqa)
    const int gsz = SPLIT ? group / (int)gridDim.z : 1;
    const size_t bh0 = SPLIT ? bkv * group + blockIdx.z * gsz : 0;
    const int n_it = per_head * (SPLIT ? gsz : group);
    const int wrow = warp * 16 * MT;

    // per-lane tables (header comment): tQ for B = Q / dO rows (ldmatrix), tK for A = K / V rows and for
    // B = Q / dO by ldmatrix.trans (both: row = lane & 15, chunk half = lane >> 4)
    u32 tQ[4], tK[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        tQ[j] = 2 * swz<D>((lane & 7) + ((lane >> 4) << 3), (2 * j + ((lane >> 3) & 1)) * 8);
        tK[j] = 2 * swz<D>(lane & 15, (2 * j + (lane >> 4)) * 8);
    }
    const u32 aK = sb + wrow * ROW;                            // this warp's K rows

    const TileLoader<D, BQ, NT> ld(tid);
    load_tile<D, BKV, NT>(sK, K, k0, nk, tid);
    load_tile<D, BKV, NT>(sK + BKV * D, V, k0, nk, tid);
    // iteration it = (query head hi of the group) * per_head + (query tile ti - qt0), tracked without division
    auto issue = [&](int hi, int ti, int st) {
        const size_t bh = (SPLIT ? bh0 : bkv * group) + hi;
        const int q0 = ti * BQ;
        ld.load(sb + OQ + st * SQ, q + bh * nq * D, q0, nq);
        ld.load(sb + ODO + st * SQ, dout + bh * nq * D, q0, nq);
        if (tid < BQ / 4) {
            cp_async16(sb + OL + st * BQ * 4 + 16 * tid, lse2 + bh * nq_pad + q0 + 4 * tid, 16);
            cp_async16(sb + ODL + st * BQ * 4 + 16 * tid, delta + bh * nq_pad + q0 + 4 * tid, 16);
        }
    };
    if (n_it > 0) issue(0, qt0, 0);
    cp_async_commit();
    int hi = 0, ti = qt0;                                      // this iteration's head and query tile

    float dka[MT][D / 8][4], dva[MT][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) dka[mt][n][e] = dva[mt][n][e] = 0.f;

    for (int it = 0; it < n_it; ++it) {
        cp_async_wait<0>();
        __syncthreads();             // stage it landed; everyone is done with stage it-1 and dS^T
        const int hn = ti + 1 == nqt ? hi + 1 : hi, tn = ti + 1 == nqt ? qt0 : ti + 1;
        if (it + 1 < n_it) issue(hn, tn, (it + 1) & 1);
        cp_async_commit();
        const int st = it & 1;
        const u32 aQ = sb + OQ + st * SQ;                     // Q of this stage; dO at + 2 SQ
        const float* sLt = sL + st * BQ;
        const float* sDt = sDl + st * BQ;
        const size_t bh = (SPLIT ? bh0 : bkv * group) + hi;
        const int q0 = ti * BQ;

        auto step = [&](auto mask_tag) {
            constexpr bool MASK = decltype(mask_tag)::value;
            float s[MT][BQ / 8][4], dp[MT][BQ / 8][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int n = 0; n < BQ / 8; ++n)
#pragma unroll
                    for (int e = 0; e < 4; ++e) s[mt][n][e] = dp[mt][n][e] = 0.f;
            // S^T = K Q^T and dP^T = V dO^T (16 keys x BQ queries per m-tile)
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                const u32 ck = (kk >> 2) * 128;
                u32 ka[MT][4], va[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    ldmatrix_x4(ka[mt], aK + tK[kk & 3] + (mt * 16 * ROW + ck));
                    ldmatrix_x4(va[mt], aK + tK[kk & 3] + (OV + mt * 16 * ROW + ck));
                }
#pragma unroll
                for (int nn = 0; nn < BQ / 16; ++nn) {
                    u32 b[4];
                    ldmatrix_x4(b, aQ + tQ[kk & 3] + (nn * 16 * ROW + ck));
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<BF16>(s[mt][2 * nn], ka[mt], b[0], b[1]);
                        mma16816<BF16>(s[mt][2 * nn + 1], ka[mt], b[2], b[3]);
                    }
                    ldmatrix_x4(b, aQ + tQ[kk & 3] + (2 * SQ + nn * 16 * ROW + ck));
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<BF16>(dp[mt][2 * nn], va[mt], b[0], b[1]);
                        mma16816<BF16>(dp[mt][2 * nn + 1], va[mt], b[2], b[3]);
                    }
                }
            }
            // P^T = 2^(S^T c - lse2[query]); dS^T = P^T (dP^T - delta[query]); both packed as A fragments
            u32 pa[MT][BQ / 16][4], dsa[MT][BQ / 16][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                const int key0 = k0 + wrow + mt * 16 + g, key1 = key0 + 8;
#pragma unroll
                for (int n = 0; n < BQ / 8; ++n) {
                    const int c = n * 8 + 2 * t4;
                    const float2 l2 = *reinterpret_cast<const float2*>(sLt + c);
                    const float2 dl = *reinterpret_cast<const float2*>(sDt + c);
                    float p[4];
                    p[0] = fast_exp2(fmaf(s[mt][n][0], scale_log2, -l2.x));
                    p[1] = fast_exp2(fmaf(s[mt][n][1], scale_log2, -l2.y));
                    p[2] = fast_exp2(fmaf(s[mt][n][2], scale_log2, -l2.x));
                    p[3] = fast_exp2(fmaf(s[mt][n][3], scale_log2, -l2.y));
                    if constexpr (MASK) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int key = (e < 2) ? key0 : key1, qi = q0 + c + (e & 1);
                            if (key >= nk || (causal && key > qi + offset)) p[e] = 0.f;
                        }
                    }
                    pa[mt][n >> 1][(n & 1) * 2 + 0] = pack2<BF16>(p[0], p[1]);
                    pa[mt][n >> 1][(n & 1) * 2 + 1] = pack2<BF16>(p[2], p[3]);
                    dsa[mt][n >> 1][(n & 1) * 2 + 0] = pack2<BF16>(p[0] * (dp[mt][n][0] - dl.x), p[1] * (dp[mt][n][1] - dl.y));
                    dsa[mt][n >> 1][(n & 1) * 2 + 1] = pack2<BF16>(p[2] * (dp[mt][n][2] - dl.x), p[3] * (dp[mt][n][3] - dl.y));
                }
            }
            // dV += P^T dO and dK += dS^T Q; B = dO / Q rows kk*16 + (lane & 15) by ldmatrix.trans
#pragma unroll
            for (int kk = 0; kk < BQ / 16; ++kk) {
#pragma unroll
                for (int nn = 0; nn < D / 16; ++nn) {
                    const u32 off = kk * 16 * ROW + (nn >> 2) * 128;
                    u32 b[4];
                    ldmatrix_x4_trans(b, aQ + tK[nn & 3] + (2 * SQ + off));
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<BF16>(dva[mt][2 * nn], pa[mt][kk], b[0], b[1]);
                        mma16816<BF16>(dva[mt][2 * nn + 1], pa[mt][kk], b[2], b[3]);
                    }
                    ldmatrix_x4_trans(b, aQ + tK[nn & 3] + off);
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<BF16>(dka[mt][2 * nn], dsa[mt][kk], b[0], b[1]);
                        mma16816<BF16>(dka[mt][2 * nn + 1], dsa[mt][kk], b[2], b[3]);
                    }
                }
            }
            if constexpr (ATOMIC) {
                // dS^T -> shared [key][query]: rows wrow + 16 mt + g (+8), query chunk 2 kk (+1), XOR xs
                const int xs = (swz<BQ>(g, 0) - g * BQ) >> 3;
                const u32 aS = sb + OS + (wrow + g) * BQ * 2 + 4 * t4;
#pragma unroll
                for (int kk = 0; kk < BQ / 16; ++kk)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const u32 a = aS + (((2 * kk + h) ^ xs) << 4);
#pragma unroll
                        for (int mt = 0; mt < MT; ++mt) {
                            sts32(a + mt * 16 * BQ * 2, dsa[mt][kk][2 * h]);
                            sts32(a + (mt * 16 + 8) * BQ * 2, dsa[mt][kk][2 * h + 1]);
                        }
                    }
            }
        };
        if ((causal && k0 + BKV - 1 > q0 + offset) || k0 + BKV > nk) step(BoolC<true>{});
        else step(BoolC<false>{});

        if constexpr (ATOMIC) {
            __syncthreads();         // all of dS^T is in shared memory
            // dQ_tile (BQ x D) += dS K: warp -> rows 16 (warp % WM) .., columns DW (warp / WM) ..
            const int mr = (warp % WM) * 16, c0 = (warp / WM) * DW;
            const u32 aA = sb + OS + 2 * swz<BQ>((lane >> 4) * 8 + (lane & 7), mr + ((lane >> 3) & 1) * 8);
            u32 tD[DW / 16];
#pragma unroll
            for (int nn = 0; nn < DW / 16; ++nn) tD[nn] = sb + 2 * swz<D>(lane & 15, c0 + nn * 16 + (lane >> 4) * 8);
            float dq[DW / 8][4];
#pragma unroll
            for (int n = 0; n < DW / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < BKV / 16; ++kk) {
                u32 a[4];
                ldmatrix_x4_trans(a, aA + kk * 16 * BQ * 2);
#pragma unroll
                for (int nn = 0; nn < DW / 16; ++nn) {
                    u32 b[4];
                    ldmatrix_x4_trans(b, tD[nn] + kk * 16 * ROW);
                    mma16816<BF16>(dq[2 * nn], a, b[0], b[1]);
                    mma16816<BF16>(dq[2 * nn + 1], a, b[2], b[3]);
                }
            }
            if constexpr (FRAG) {    // block (row block r16, column block c8) at ((bh nq_pad/16 + r16) D/8 + c8) 128
                float* dQ = dqacc + (((bh * nq_pad + q0 + mr) >> 4) * (D / 8) + c0 / 8) * 128 + lane * 4;
#pragma unroll
                for (int n = 0; n < DW / 8; ++n) red_add_v4(dQ + n * 128, dq[n][0], dq[n][1], dq[n][2], dq[n][3]);
            } else {
                float* dQ = dqacc + (bh * nq_pad + q0 + mr) * D + c0;
#pragma unroll
                for (int n = 0; n < DW / 8; ++n) {
                    red_add_v2(dQ + g * D + n * 8 + 2 * t4, dq[n][0], dq[n][1]);
                    red_add_v2(dQ + (g + 8) * D + n * 8 + 2 * t4, dq[n][2], dq[n][3]);
                }
            }
        }
        hi = hn;
        ti = tn;
    }
    cp_async_wait<0>();

    if constexpr (SPLIT) {   // partial sums in fragment order: block (r16, n) at ((bkv nk_pad/16 + r16) D/8 + n) 128
        const int nk_pad = (nk + PAD - 1) / PAD * PAD;        // rows < nk_pad: always in the buffer
        const size_t f0 = ((bkv * nk_pad + k0 + wrow) >> 4) * (D / 8) * 128 + lane * 4;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int n = 0; n < D / 8; ++n) {
                const size_t f = f0 + (mt * (D / 8) + n) * 128;
                red_add_v4(dkacc + f, dka[mt][n][0] * scale, dka[mt][n][1] * scale, dka[mt][n][2] * scale, dka[mt][n][3] * scale);
                red_add_v4(dvacc + f, dva[mt][n][0], dva[mt][n][1], dva[mt][n][2], dva[mt][n][3]);
            }
        return;
    }
    // dK = scale dS^T Q, dV = P^T dO: rows k0 + wrow + 16 mt + g (+8)
    u16* dK = dk + bkv * nk * D;
    u16* dV = dv + bkv * nk * D;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        const int r0 = k0 + wrow + mt * 16 + g, r1 = r0 + 8;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            const int col = n * 8 + 2 * t4;
            if (r0 < nk) {
                *reinterpret_cast<u32*>(dK + (size_t)r0 * D + col) = pack2<BF16>(dka[mt][n][0] * scale, dka[mt][n][1] * scale);
                *reinterpret_cast<u32*>(dV + (size_t)r0 * D + col) = pack2<BF16>(dva[mt][n][0], dva[mt][n][1]);
            }
            if (r1 < nk) {
                *reinterpret_cast<u32*>(dK + (size_t)r1 * D + col) = pack2<BF16>(dka[mt][n][2] * scale, dka[mt][n][3] * scale);
                *reinterpret_cast<u32*>(dV + (size_t)r1 * D + col) = pack2<BF16>(dva[mt][n][2], dva[mt][n][3]);
            }
        }
    }
}

}  // namespace fa_bwd
