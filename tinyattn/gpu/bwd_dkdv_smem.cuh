// dK/dV kernel in FlashAttention-2's layout: P^T and dS^T pass through shared memory, so the warps that
// compute them (split over keys x queries) need not be the warps that accumulate dK/dV (split over keys x
// head dim). flash_mma_bwd.cu describes the math. One block of 8 warps per (128 keys, kv head); per tile of
// BQ queries (GQA: every query head of the kv head's group, as in bwd_dkdv_reg.cuh; with gridDim.z = S > 1
// the group's heads are split over S blocks, each adding its partial dK, dV into fp32 accumulators dkacc,
// dvacc (rows padded to PAD) with red.global.add, rounded by the dq_convert kernel):
//   phase 1  S^T = K Q^T, then dP^T = V dO^T, 128 keys x BQ queries: a warp owns 32 keys (warp % 4) x
//            BQ/2 queries (warp / 4), i.e. 2 x BQ/16 fragments; P^T = 2^(S^T c - lse2) (masked) and
//            dS^T = P^T (dP^T - delta) are rounded to fp16/bf16 into shared memory [key][query]
//   phase 2  dV += P^T dO, dK += dS^T Q: a warp owns 32 keys (warp % 4) x D/2 columns (warp / 4);
//            A = P^T / dS^T rows (ldmatrix), B = dO / Q rows = queries (ldmatrix.trans).
//            dK + dV: 2 x 2 m-tiles x D/16 n-tiles x 4 = D fp32 registers per thread (128 at D = 128,
//            the same as one 16-key m-tile x 128 columns, but each B fragment now feeds 2 mma)
//   phase 3  ATOMIC: dQ (BQ x D) += dS K: a warp owns 32 queries x D / (8 / (BQ / 32)) columns, added into the
//            fp32 accumulator with red.global.add.v2.f32
// Shared-memory traffic per warp and 64-query tile at D = 128: 152 ldmatrix_x4 (or equivalent stores) per
// 320 mma, against 184 for the register layout with 16 keys per warp; measured (benchmarks/NOTES.md, Session
// 20) it runs at the register layout's speed at D = 128 and slower at D = 64: both issue ~2x the instructions
// of FlashAttention-2's kernel for the same mma count. Shipped for causal GQA at D = 128, where the group
// split below pays (S = 4: 187 vs 141 TFLOP/s on GQA 8:1).
// Needs bwd_common.cuh (swizzle, loaders, red_add_v2, BoolC, PAD).
#pragma once
#include "bwd_common.cuh"

namespace fa_bwd {

template <int D, bool BF16, int BQ, bool ATOMIC, bool SPLIT>
__device__ __forceinline__ void dkdv_smem(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,
                                          const u16* __restrict__ dout, const float* __restrict__ lse2,
                                          const float* __restrict__ delta, u16* __restrict__ dk, u16* __restrict__ dv,
                                          float* __restrict__ dqacc, int nq, int nk, float scale_log2, float scale,
                                          int causal, int group, float* __restrict__ dkacc, float* __restrict__ dvacc) {
    constexpr int NT = 256, BKV = 128;
    constexpr int QW = BQ / 2, DH = D / 2;                       // phase 1 queries, phase 2 columns per warp
    constexpr int WM3 = BQ / 32, DW3 = D / (8 / WM3);            // phase 3: 32 rows x DW3 columns per warp
    static_assert(BQ % 32 == 0 && DH % 16 == 0 && DW3 % 16 == 0, "tile split");
    extern __shared__ __align__(128) unsigned char smem_raw[];
    u16* sK = reinterpret_cast<u16*>(smem_raw);
    u16* sV = sK + BKV * D;
    u16* sQ = sV + BKV * D;          // 2 stages
    u16* sdO = sQ + 2 * BQ * D;      // 2 stages
    u16* sP = sdO + 2 * BQ * D;      // P^T [BKV][BQ]
    u16* sdS = sP + BKV * BQ;        // dS^T [BKV][BQ]
    float* sL = reinterpret_cast<float*>(sdS + BKV * BQ);   // 2 stages of lse2
    float* sDl = sL + 2 * BQ;                                // 2 stages of delta

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int kw = (warp & 3) * 32, qw = (warp >> 2) * QW, cw = (warp >> 2) * DH;
    const int k0 = blockIdx.x * BKV;
    const size_t bkv = blockIdx.y;
    const int nq_pad = (nq + PAD - 1) / PAD * PAD;
    const int offset = nk - nq;
    const u16* K = k + bkv * nk * D;
    const u16* V = v + bkv * nk * D;
    const int qt0 = causal ? max(0, k0 - offset) / BQ : 0;   // query tiles that see a key of this block
    const int nqt = (nq + BQ - 1) / BQ;
    const int per_head = max(0, nqt - qt0);
    const int gsz = SPLIT ? group / gridDim.z : group;          // this block's query heads of the group:
    const size_t bh0 = bkv * group + (SPLIT ? blockIdx.z * gsz : 0);   // bh0 .. bh0 + gsz - 1
    const int n_it = per_head * gsz;

    load_tile<D, BKV, NT>(sK, K, k0, nk, tid);
    load_tile<D, BKV, NT>(sV, V, k0, nk, tid);
    auto issue = [&](int it, int st) {
        const size_t bh = bh0 + it / per_head;
        const int q0 = (qt0 + it % per_head) * BQ;
        load_tile<D, BQ, NT>(sQ + st * BQ * D, q + bh * nq * D, q0, nq, tid);
        load_tile<D, BQ, NT>(sdO + st * BQ * D, dout + bh * nq * D, q0, nq, tid);
        load_floats<BQ, NT>(sL + st * BQ, lse2 + bh * nq_pad + q0, tid);
        load_floats<BQ, NT>(sDl + st * BQ, delta + bh * nq_pad + q0, tid);
    };
    if (n_it > 0) issue(0, 0);
    cp_async_commit();

    float dka[2][DH / 8][4], dva[2][DH / 8][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int n = 0; n < DH / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) dka[mt][n][e] = dva[mt][n][e] = 0.f;

    for (int it = 0; it < n_it; ++it) {
        cp_async_wait<0>();
        __syncthreads();             // stage it landed; everyone is done with stage it-1, sP and sdS
        if (it + 1 < n_it) issue(it + 1, (it + 1) & 1);
        cp_async_commit();
        const int st = it & 1;
        const u16* sQt = sQ + st * BQ * D;
        const u16* sdOt = sdO + st * BQ * D;
        const float* sLt = sL + st * BQ;
        const float* sDt = sDl + st * BQ;
        const size_t bh = bh0 + it / per_head;
        const int q0 = (qt0 + it % per_head) * BQ;

        // acc[mt] (32 keys kw.. x QW queries qw..) += A[kw + 16 mt.., :] B[qw.., :]^T over D; A = K or V, B = Q or dO
        auto gemm_t = [&](float (&acc)[2][QW / 8][4], const u16* sA, const u16* sB) {
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                for (int n = 0; n < QW / 8; ++n)
#pragma unroll
                    for (int e = 0; e < 4; ++e) acc[mt][n][e] = 0.f;
#pragma unroll 2
            for (int kk = 0; kk < D / 16; ++kk) {      // unroll 2, not 8: full unrolling hoists loads and spills
                u32 a[2][4];
#pragma unroll
                for (int mt = 0; mt < 2; ++mt)
                    ldmatrix_x4(a[mt], smem_u32(sA + swz<D>(kw + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
#pragma unroll
                for (int nn = 0; nn < QW / 16; ++nn) {
                    u32 b[4];
                    ldmatrix_x4(b, smem_u32(sB + swz<D>(qw + nn * 16 + (lane & 7) + ((lane >> 4) << 3),
                                                        kk * 16 + ((lane >> 3) & 1) * 8)));
#pragma unroll
                    for (int mt = 0; mt < 2; ++mt) {
                        mma16816<BF16>(acc[mt][2 * nn], a[mt], b[0], b[1]);
                        mma16816<BF16>(acc[mt][2 * nn + 1], a[mt], b[2], b[3]);
                    }
                }
            }
        };
        // accumulator element (mt, n, e) = (key row kw + 16 mt + g + 8 (e >> 1), query col qw + 8 n + 2 t4 + (e & 1))
        auto store_t = [&](u16* sX, int mt, int n, float x0, float x1, float x2, float x3) {
            const int r = kw + mt * 16 + g, c = qw + n * 8;
            *reinterpret_cast<u32*>(sX + swz<BQ>(r, c) + 2 * t4) = pack2<BF16>(x0, x1);
            *reinterpret_cast<u32*>(sX + swz<BQ>(r + 8, c) + 2 * t4) = pack2<BF16>(x2, x3);
        };
        auto phase1 = [&](auto mask_tag) {
            constexpr bool MASK = decltype(mask_tag)::value;
            {
                float s[2][QW / 8][4];
                gemm_t(s, sK, sQt);
                // P^T = 2^(S^T c - lse2[query]), rounded into shared memory
#pragma unroll
                for (int mt = 0; mt < 2; ++mt) {
                    const int key0 = k0 + kw + mt * 16 + g;
#pragma unroll
                    for (int n = 0; n < QW / 8; ++n) {
                        const int c = qw + n * 8 + 2 * t4;
                        const float2 l2 = *reinterpret_cast<const float2*>(sLt + c);
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            s[mt][n][e] = fast_exp2(fmaf(s[mt][n][e], scale_log2, (e & 1) ? -l2.y : -l2.x));
                            if constexpr (MASK) {
                                const int key = key0 + (e >> 1) * 8, qi = q0 + c + (e & 1);
                                if (key >= nk || (causal && key > qi + offset)) s[mt][n][e] = 0.f;
                            }
                        }
                        store_t(sP, mt, n, s[mt][n][0], s[mt][n][1], s[mt][n][2], s[mt][n][3]);
                    }
                }
            }
            float dp[2][QW / 8][4];
            gemm_t(dp, sV, sdOt);
            // dS^T = P^T (dP^T - delta[query]); P^T read back (this thread's own stores: no barrier needed),
            // so its fp32 copy need not stay live through the dP GEMM
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                for (int n = 0; n < QW / 8; ++n) {
                    const int r = kw + mt * 16 + g, c = qw + n * 8;
                    const u32 p01 = *reinterpret_cast<const u32*>(sP + swz<BQ>(r, c) + 2 * t4);
                    const u32 p23 = *reinterpret_cast<const u32*>(sP + swz<BQ>(r + 8, c) + 2 * t4);
                    const float2 dl = *reinterpret_cast<const float2*>(sDt + c + 2 * t4);
                    store_t(sdS, mt, n, to_float<BF16>((u16)(p01 & 0xffff)) * (dp[mt][n][0] - dl.x),
                            to_float<BF16>((u16)(p01 >> 16)) * (dp[mt][n][1] - dl.y),
                            to_float<BF16>((u16)(p23 & 0xffff)) * (dp[mt][n][2] - dl.x),
                            to_float<BF16>((u16)(p23 >> 16)) * (dp[mt][n][3] - dl.y));
                }
        };
        if ((causal && k0 + BKV - 1 > q0 + offset) || k0 + BKV > nk) phase1(BoolC<true>{});
        else phase1(BoolC<false>{});
        __syncthreads();             // all of P^T and dS^T are in shared memory

        // phase 2: dV += P^T dO, dK += dS^T Q over the BQ queries; B = dO / Q with rows = queries (ldmatrix.trans)
#pragma unroll
        for (int kk = 0; kk < BQ / 16; ++kk) {
            u32 pa[2][4], sa[2][4];
#pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
                ldmatrix_x4(pa[mt], smem_u32(sP + swz<BQ>(kw + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
                ldmatrix_x4(sa[mt], smem_u32(sdS + swz<BQ>(kw + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
            }
#pragma unroll
            for (int nn = 0; nn < DH / 16; ++nn) {
                const int row = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                const int col = cw + nn * 16 + (lane >> 4) * 8;
                u32 b[4];
                ldmatrix_x4_trans(b, smem_u32(sdOt + swz<D>(row, col)));
#pragma unroll
                for (int mt = 0; mt < 2; ++mt) {
                    mma16816<BF16>(dva[mt][2 * nn], pa[mt], b[0], b[1]);
                    mma16816<BF16>(dva[mt][2 * nn + 1], pa[mt], b[2], b[3]);
                }
                ldmatrix_x4_trans(b, smem_u32(sQt + swz<D>(row, col)));
#pragma unroll
                for (int mt = 0; mt < 2; ++mt) {
                    mma16816<BF16>(dka[mt][2 * nn], sa[mt], b[0], b[1]);
                    mma16816<BF16>(dka[mt][2 * nn + 1], sa[mt], b[2], b[3]);
                }
            }
        }
        if constexpr (ATOMIC) {
            // phase 3: dQ_tile (BQ x D) += dS K; A = dS by ldmatrix.trans of dS^T, B = K by ldmatrix.trans
            const int mr = (warp % WM3) * 32, c0 = (warp / WM3) * DW3;
            float dq[2][DW3 / 8][4];
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                for (int n = 0; n < DW3 / 8; ++n) dq[mt][n][0] = dq[mt][n][1] = dq[mt][n][2] = dq[mt][n][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < BKV / 16; ++kk) {
                u32 a[2][4];
#pragma unroll
                for (int mt = 0; mt < 2; ++mt)
                    ldmatrix_x4_trans(a[mt], smem_u32(sdS + swz<BQ>(kk * 16 + (lane >> 4) * 8 + (lane & 7),
                                                                    mr + mt * 16 + ((lane >> 3) & 1) * 8)));
#pragma unroll
                for (int nn = 0; nn < DW3 / 16; ++nn) {
                    u32 b[4];
                    ldmatrix_x4_trans(b, smem_u32(sK + swz<D>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8,
                                                              c0 + nn * 16 + (lane >> 4) * 8)));
#pragma unroll
                    for (int mt = 0; mt < 2; ++mt) {
                        mma16816<BF16>(dq[mt][2 * nn], a[mt], b[0], b[1]);
                        mma16816<BF16>(dq[mt][2 * nn + 1], a[mt], b[2], b[3]);
                    }
                }
            }
            float* dQ = dqacc + (bh * nq_pad + q0 + mr) * D + c0;
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                for (int n = 0; n < DW3 / 8; ++n) {
                    red_add_v2(dQ + (mt * 16 + g) * D + n * 8 + 2 * t4, dq[mt][n][0], dq[mt][n][1]);
                    red_add_v2(dQ + (mt * 16 + g + 8) * D + n * 8 + 2 * t4, dq[mt][n][2], dq[mt][n][3]);
                }
        }
    }
    cp_async_wait<0>();

    // dK = scale dS^T Q, dV = P^T dO: rows k0 + kw + 16 mt + g (+8), columns cw + 8 n + 2 t4
    u16* dK = dk + bkv * nk * D;
    u16* dV = dv + bkv * nk * D;
    const int nk_pad = (nk + PAD - 1) / PAD * PAD;
    float* aK = dkacc + bkv * nk_pad * D;
    float* aV = dvacc + bkv * nk_pad * D;
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
        const int r0 = k0 + kw + mt * 16 + g, r1 = r0 + 8;
#pragma unroll
        for (int n = 0; n < DH / 8; ++n) {
            const int col = cw + n * 8 + 2 * t4;
            if constexpr (SPLIT) {   // partial sums of a split group (rows < nk_pad: always in the buffer)
                red_add_v2(aK + (size_t)r0 * D + col, dka[mt][n][0] * scale, dka[mt][n][1] * scale);
                red_add_v2(aV + (size_t)r0 * D + col, dva[mt][n][0], dva[mt][n][1]);
                red_add_v2(aK + (size_t)r1 * D + col, dka[mt][n][2] * scale, dka[mt][n][3] * scale);
                red_add_v2(aV + (size_t)r1 * D + col, dva[mt][n][2], dva[mt][n][3]);
                continue;
            }
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
