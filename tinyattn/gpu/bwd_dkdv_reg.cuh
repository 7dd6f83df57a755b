// dK/dV kernel with P^T and dS^T kept in registers (the B1/B2 layout; flash_mma_bwd.cu describes the math).
// Needs bwd_common.cuh first.
#pragma once
#include "bwd_common.cuh"

namespace fa_bwd {

// Template knobs: NW warps of MT 16-key m-tiles each (BKV = 16 NW MT keys per block); BQ queries per
// tile; KREG K and V fragments in registers for the whole loop; ATOMIC compute dQ here with fp32 atomics.
// With MT = 2 every Q / dO fragment read from shared memory feeds two mma instead of one.
template <int D, bool BF16, int NW, int MT, int BQ, bool KREG, bool ATOMIC>
__device__ __forceinline__ void dkdv(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,
                                     const u16* __restrict__ dout, const float* __restrict__ lse2,
                                     const float* __restrict__ delta, u16* __restrict__ dk, u16* __restrict__ dv,
                                     float* __restrict__ dqacc, int nq, int nk, float scale_log2, float scale,
                                     int causal, int group) {
    constexpr int NT = NW * 32, BKV = 16 * NW * MT;
    constexpr int WM = BQ / 16, WN = NW / WM, DW = D / WN;   // dQ tile split: WM row x WN column warps
    static_assert(!ATOMIC || (NW % WM == 0 && DW % 16 == 0), "dQ tile split");
    extern __shared__ __align__(128) unsigned char smem_raw[];
    u16* sK = reinterpret_cast<u16*>(smem_raw);
    u16* sV = sK + BKV * D;
    u16* sQ = sV + BKV * D;          // 2 stages
    u16* sdO = sQ + 2 * BQ * D;      // 2 stages
    u16* sdS = sdO + 2 * BQ * D;     // ATOMIC only: dS^T [BKV][BQ]
    float* sL = reinterpret_cast<float*>(sdS + (ATOMIC ? BKV * BQ : 0));   // 2 stages of lse2
    float* sDl = sL + 2 * BQ;                                              // 2 stages of delta

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int k0 = blockIdx.x * BKV;
    const size_t bkv = blockIdx.y;
    const int nq_pad = (nq + PAD - 1) / PAD * PAD;
    const int offset = nk - nq;
    const u16* K = k + bkv * nk * D;
    const u16* V = v + bkv * nk * D;

    // query tiles that see a key of this block: i + offset >= k0
    const int qt0 = causal ? max(0, k0 - offset) / BQ : 0;
    const int nqt = (nq + BQ - 1) / BQ;
    const int per_head = max(0, nqt - qt0);
    const int n_it = per_head * group;

    load_tile<D, BKV, NT>(sK, K, k0, nk, tid);
    load_tile<D, BKV, NT>(sV, V, k0, nk, tid);
    auto issue = [&](int it, int st) {
        const size_t bh = bkv * group + it / per_head;
        const int q0 = (qt0 + it % per_head) * BQ;
        load_tile<D, BQ, NT>(sQ + st * BQ * D, q + bh * nq * D, q0, nq, tid);
        load_tile<D, BQ, NT>(sdO + st * BQ * D, dout + bh * nq * D, q0, nq, tid);
        load_floats<BQ, NT>(sL + st * BQ, lse2 + bh * nq_pad + q0, tid);
        load_floats<BQ, NT>(sDl + st * BQ, delta + bh * nq_pad + q0, tid);
    };
    if (n_it > 0) issue(0, 0);
    cp_async_commit();

    float dka[MT][D / 8][4], dva[MT][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) dka[mt][n][e] = dva[mt][n][e] = 0.f;
    u32 kf[KREG ? MT : 1][KREG ? D / 16 : 1][4], vf[KREG ? MT : 1][KREG ? D / 16 : 1][4];
    const int wrow = warp * 16 * MT;     // this warp's keys in the block: wrow .. wrow + 16 MT - 1

    for (int it = 0; it < n_it; ++it) {
        cp_async_wait<0>();
        __syncthreads();             // stage it landed; everyone is done with stage it-1 and sdS
        if (it + 1 < n_it) issue(it + 1, (it + 1) & 1);
        cp_async_commit();
        if constexpr (KREG) {
            if (it == 0) {
#pragma unroll
                for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                    for (int kk = 0; kk < D / 16; ++kk) {
                        ldmatrix_x4(kf[mt][kk], smem_u32(sK + swz<D>(wrow + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
                        ldmatrix_x4(vf[mt][kk], smem_u32(sV + swz<D>(wrow + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
                    }
            }
        }
        const int st = it & 1;
        const u16* sQt = sQ + st * BQ * D;
        const u16* sdOt = sdO + st * BQ * D;
        const float* sLt = sL + st * BQ;
        const float* sDt = sDl + st * BQ;
        const size_t bh = bkv * group + it / per_head;
        const int q0 = (qt0 + it % per_head) * BQ;

        auto step = [&](auto mask_tag) {
            constexpr bool MASK = decltype(mask_tag)::value;
            float s[MT][BQ / 8][4], dp[MT][BQ / 8][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int n = 0; n < BQ / 8; ++n)
#pragma unroll
                    for (int e = 0; e < 4; ++e) s[mt][n][e] = dp[mt][n][e] = 0.f;
            // S^T = K Q^T and dP^T = V dO^T (16 keys x BQ queries); B operands = Q / dO rows
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                u32 ka[MT][4], va[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    if constexpr (KREG) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) { ka[mt][e] = kf[mt][kk][e]; va[mt][e] = vf[mt][kk][e]; }
                    } else {
                        ldmatrix_x4(ka[mt], smem_u32(sK + swz<D>(wrow + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
                        ldmatrix_x4(va[mt], smem_u32(sV + swz<D>(wrow + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
                    }
                }
#pragma unroll
                for (int nn = 0; nn < BQ / 16; ++nn) {
                    const int row = nn * 16 + (lane & 7) + ((lane >> 4) << 3);
                    const int col = kk * 16 + ((lane >> 3) & 1) * 8;
                    u32 b[4];
                    ldmatrix_x4(b, smem_u32(sQt + swz<D>(row, col)));
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<BF16>(s[mt][2 * nn], ka[mt], b[0], b[1]);
                        mma16816<BF16>(s[mt][2 * nn + 1], ka[mt], b[2], b[3]);
                    }
                    ldmatrix_x4(b, smem_u32(sdOt + swz<D>(row, col)));
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
            // dV += P^T dO and dK += dS^T Q; B = dO / Q with rows = queries (ldmatrix.trans)
#pragma unroll
            for (int kk = 0; kk < BQ / 16; ++kk) {
#pragma unroll
                for (int nn = 0; nn < D / 16; ++nn) {
                    const int row = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                    const int col = nn * 16 + (lane >> 4) * 8;
                    u32 b[4];
                    ldmatrix_x4_trans(b, smem_u32(sdOt + swz<D>(row, col)));
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<BF16>(dva[mt][2 * nn], pa[mt][kk], b[0], b[1]);
                        mma16816<BF16>(dva[mt][2 * nn + 1], pa[mt][kk], b[2], b[3]);
                    }
                    ldmatrix_x4_trans(b, smem_u32(sQt + swz<D>(row, col)));
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<BF16>(dka[mt][2 * nn], dsa[mt][kk], b[0], b[1]);
                        mma16816<BF16>(dka[mt][2 * nn + 1], dsa[mt][kk], b[2], b[3]);
                    }
                }
            }
            if constexpr (ATOMIC) {
                // dS^T -> shared [key][query]: fragment kk holds rows g, g+8, query cols kk*16 + 2 t4 (+8)
#pragma unroll
                for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                    for (int kk = 0; kk < BQ / 16; ++kk)
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int r = wrow + mt * 16 + g + (e & 1) * 8, c = kk * 16 + (e >> 1) * 8;
                            *reinterpret_cast<u32*>(sdS + swz<BQ>(r, c) + 2 * t4) = dsa[mt][kk][e];
                        }
            }
        };
        if ((causal && k0 + BKV - 1 > q0 + offset) || k0 + BKV > nk) step(BoolC<true>{});
        else step(BoolC<false>{});

        if constexpr (ATOMIC) {
            __syncthreads();         // all of dS^T is in shared memory
            // dQ_tile (BQ x D) += dS K: warp -> rows 16 (warp % WM) .., columns DW (warp / WM) ..
            const int mr = (warp % WM) * 16, c0 = (warp / WM) * DW;
            float dq[DW / 8][4];
#pragma unroll
            for (int n = 0; n < DW / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < BKV / 16; ++kk) {
                u32 a[4];
                ldmatrix_x4_trans(a, smem_u32(sdS + swz<BQ>(kk * 16 + (lane >> 4) * 8 + (lane & 7), mr + ((lane >> 3) & 1) * 8)));
#pragma unroll
                for (int nn = 0; nn < DW / 16; ++nn) {
                    u32 b[4];
                    ldmatrix_x4_trans(b, smem_u32(sK + swz<D>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c0 + nn * 16 + (lane >> 4) * 8)));
                    mma16816<BF16>(dq[2 * nn], a, b[0], b[1]);
                    mma16816<BF16>(dq[2 * nn + 1], a, b[2], b[3]);
                }
            }
            float* dQ = dqacc + (bh * nq_pad + q0 + mr) * D + c0;
#pragma unroll
            for (int n = 0; n < DW / 8; ++n) {
                red_add_v2(dQ + g * D + n * 8 + 2 * t4, dq[n][0], dq[n][1]);
                red_add_v2(dQ + (g + 8) * D + n * 8 + 2 * t4, dq[n][2], dq[n][3]);
            }
        }
    }
    cp_async_wait<0>();

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
