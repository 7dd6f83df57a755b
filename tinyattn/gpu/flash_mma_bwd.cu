// FlashAttention-2 backward on tensor cores: fp16/bf16 inputs, fp32 accumulation (chapter 07 section 8).
//
// Given q, o, dO (BH, Nq, D), k, v (BHkv, Nk, D), lse (BH, Nq) from the forward, with P = exp(S - lse),
// S = Q K^T * scale:
//   pre:  delta_i = sum_d dO_id O_id;  lse2_i = lse_i * log2 e  (+inf for padded / key-less rows: P = 0)
//   dkdv: one block per (64 or 128 keys, kv head); each warp owns MT 16-key m-tiles (16 or 32 keys; the
//         shipped tiles: 4 warps x 32 keys at d = 64, 8 warps x 16 keys at d = 128). Loop over the query tiles of
//         every query head of the kv head's group (GQA: h_kv = h_q / group, no repeated K/V; the group's
//         dK/dV add up in registers, no atomics), per tile of BQ queries:
//           S^T  = K Q^T           A = K rows (ldmatrix), B = Q rows (ldmatrix)  16 x BQ per m-tile
//           P^T  = 2^(S^T c - lse2) c = scale log2 e; causal / ragged keys masked to 0
//           dV  += P^T dO          A = P^T straight from the accumulators, B = dO (ldmatrix.trans)
//           dP^T = V dO^T          A = V rows, B = dO rows
//           dS^T = P^T (dP^T - delta)
//           dK  += dS^T Q          B = Q (ldmatrix.trans); dK *= scale at the end
//         ATOMIC: dS^T also goes to shared memory; the block then computes dQ_tile += dS K (A = dS by
//         ldmatrix.trans of dS^T, B = K by ldmatrix.trans) and adds it into an fp32 dQ accumulator with
//         red.global.add.v2.f32; a convert kernel scales it and rounds to fp16/bf16.
//   dq:   (the "separate" choice) one block per (16*NW queries, head): loop over key tiles,
//         S = Q K^T, dP = dO V^T (recomputed), dS = P (dP - delta), dQ += dS K.
// Causal = bottom-right aligned (query i sees key j <= i + Nk - Nq): fully masked tiles are skipped,
// only tiles crossing the diagonal are masked element-wise. Tiles in shared memory are XOR-swizzled.
// lse2 / delta / the dQ accumulator are padded to a multiple of 128 rows (pad: +inf / 0 / unused).
#include "ptx_utils.cuh"

#define TA_POS_INF __int_as_float(0x7f800000)

namespace fa_bwd {

constexpr int PAD = 128;   // row padding of lse2, delta and the dQ accumulator

// element offset of (row, col) in a swizzled [rows][W] tile of 16-bit values; col is a multiple of 8.
// 16-byte chunks are XORed with row & 7 (W a multiple of 64) or row & 3 (W = 32, 96: stays in the row)
template <int W>
__device__ __forceinline__ int swz(int row, int col) {
    constexpr int M = (W % 64 == 0) ? 7 : 3;
    return row * W + ((((col >> 3) ^ (row & M))) << 3);
}

// rows [r0, r0 + ROWS) of a (n, D) matrix -> swizzled shared tile; rows >= n zero-filled
template <int D, int ROWS, int NT>
__device__ __forceinline__ void load_tile(u16* s, const u16* g, int r0, int n, int tid) {
    constexpr int CPR = D / 8;
#pragma unroll
    for (int i = tid; i < ROWS * CPR; i += NT) {
        const int row = i / CPR, col = (i % CPR) * 8;
        const bool ok = r0 + row < n;
        cp_async16(smem_u32(s + swz<D>(row, col)), ok ? g + (size_t)(r0 + row) * D + col : g, ok ? 16 : 0);
    }
}

// ROWS floats (a multiple of 4) -> shared, unconditionally (the source is padded)
template <int ROWS, int NT>
__device__ __forceinline__ void load_floats(float* s, const float* g, int tid) {
    for (int i = tid; i < ROWS / 4; i += NT) cp_async16(smem_u32(s + 4 * i), g + 4 * i, 16);
}

__device__ __forceinline__ void red_add_v2(float* addr, float a, float b) {
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" :: "l"(addr), "f"(a), "f"(b) : "memory");
}

template <bool B>
struct BoolC { static constexpr bool value = B; };

// delta = rowsum(dO o O) and lse2 = lse log2 e for BH * nq_pad padded rows; 4 threads per row,
// each summing D/32 chunks of 8 values (16-byte loads), then a 4-lane shuffle reduction
template <int D, bool BF16>
__device__ __forceinline__ void pre(const u16* o, const u16* dout, const float* lse, float* delta,
                                    float* lse2, int nq, int nq_pad, int bh_count) {
    const int gtid = blockIdx.x * blockDim.x + threadIdx.x;
    const int prow = gtid >> 2, part = gtid & 3;             // padded row index
    const int bh = prow / nq_pad, i = prow % nq_pad;
    const bool valid = bh < bh_count;
    float acc = 0.f;
    if (valid && i < nq) {
#pragma unroll
        for (int c = part; c < D / 8; c += 4) {
            const size_t off = ((size_t)bh * nq + i) * D + c * 8;
            const uint4 a = *reinterpret_cast<const uint4*>(o + off);
            const uint4 b = *reinterpret_cast<const uint4*>(dout + off);
            const u32 aw[4] = {a.x, a.y, a.z, a.w}, bw[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                acc = fmaf(to_float<BF16>((u16)(aw[e] & 0xffff)), to_float<BF16>((u16)(bw[e] & 0xffff)), acc);
                acc = fmaf(to_float<BF16>((u16)(aw[e] >> 16)), to_float<BF16>((u16)(bw[e] >> 16)), acc);
            }
        }
    }
    acc += __shfl_xor_sync(0xffffffffu, acc, 1);
    acc += __shfl_xor_sync(0xffffffffu, acc, 2);
    if (valid && part == 0) {
        delta[prow] = acc;
        const float l = i < nq ? lse[(size_t)bh * nq + i] : TA_NEG_INF;
        lse2[prow] = (l == TA_NEG_INF) ? TA_POS_INF : l * 1.4426950408889634f;   // no key -> P = 0
    }
}

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

// dQ by a Q-outer loop (the "separate" choice): block = 16 NW query rows of one head, BK keys per tile
template <int D, bool BF16, int NW, int BK>
__device__ __forceinline__ void dq_kernel(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,
                                          const u16* __restrict__ dout, const float* __restrict__ lse2,
                                          const float* __restrict__ delta, u16* __restrict__ dq, int nq, int nk,
                                          float scale_log2, float scale, int causal, int group) {
    constexpr int NT = NW * 32, BQ = 16 * NW;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    u16* sQ = reinterpret_cast<u16*>(smem_raw);
    u16* sdO = sQ + BQ * D;
    u16* sK = sdO + BQ * D;          // 2 stages
    u16* sV = sK + 2 * BK * D;       // 2 stages
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BQ;        // heavy causal tiles first
    const size_t bh = blockIdx.y, bkv = bh / group;
    const int nq_pad = (nq + PAD - 1) / PAD * PAD;
    const int offset = nk - nq;
    const u16* K = k + bkv * nk * D;
    const u16* V = v + bkv * nk * D;
    int n_tiles = (nk + BK - 1) / BK;
    if (causal) {
        const int last = min(q0 + BQ, nq) - 1 + offset;
        n_tiles = last < 0 ? 0 : min(n_tiles, last / BK + 1);
    }
    load_tile<D, BQ, NT>(sQ, q + bh * nq * D, q0, nq, tid);
    load_tile<D, BQ, NT>(sdO, dout + bh * nq * D, q0, nq, tid);
    if (n_tiles > 0) {
        load_tile<D, BK, NT>(sK, K, 0, nk, tid);
        load_tile<D, BK, NT>(sV, V, 0, nk, tid);
    }
    cp_async_commit();
    const int row0 = q0 + warp * 16 + g, row1 = row0 + 8;
    const float l0 = lse2[bh * nq_pad + row0], l1 = lse2[bh * nq_pad + row1];
    const float d0 = delta[bh * nq_pad + row0], d1 = delta[bh * nq_pad + row1];
    float acc[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

    for (int t = 0; t < n_tiles; ++t) {
        cp_async_wait<0>();
        __syncthreads();
        if (t + 1 < n_tiles) {
            load_tile<D, BK, NT>(sK + ((t + 1) & 1) * BK * D, K, (t + 1) * BK, nk, tid);
            load_tile<D, BK, NT>(sV + ((t + 1) & 1) * BK * D, V, (t + 1) * BK, nk, tid);
        }
        cp_async_commit();
        const u16* sKt = sK + (t & 1) * BK * D;
        const u16* sVt = sV + (t & 1) * BK * D;
        const int kt0 = t * BK;
        auto step = [&](auto mask_tag) {
            constexpr bool MASK = decltype(mask_tag)::value;
            float s[BK / 8][4], dp[BK / 8][4];
#pragma unroll
            for (int n = 0; n < BK / 8; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                u32 qa[4], da[4];
                ldmatrix_x4(qa, smem_u32(sQ + swz<D>(warp * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
                ldmatrix_x4(da, smem_u32(sdO + swz<D>(warp * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
#pragma unroll
                for (int nn = 0; nn < BK / 16; ++nn) {
                    const int key = nn * 16 + (lane & 7) + ((lane >> 4) << 3);
                    const int col = kk * 16 + ((lane >> 3) & 1) * 8;
                    u32 b[4];
                    ldmatrix_x4(b, smem_u32(sKt + swz<D>(key, col)));
                    mma16816<BF16>(s[2 * nn], qa, b[0], b[1]);
                    mma16816<BF16>(s[2 * nn + 1], qa, b[2], b[3]);
                    ldmatrix_x4(b, smem_u32(sVt + swz<D>(key, col)));
                    mma16816<BF16>(dp[2 * nn], da, b[0], b[1]);
                    mma16816<BF16>(dp[2 * nn + 1], da, b[2], b[3]);
                }
            }
            u32 dsa[BK / 16][4];
#pragma unroll
            for (int n = 0; n < BK / 8; ++n) {
                float p[4];
                p[0] = fast_exp2(fmaf(s[n][0], scale_log2, -l0));
                p[1] = fast_exp2(fmaf(s[n][1], scale_log2, -l0));
                p[2] = fast_exp2(fmaf(s[n][2], scale_log2, -l1));
                p[3] = fast_exp2(fmaf(s[n][3], scale_log2, -l1));
                if constexpr (MASK) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int key = kt0 + n * 8 + 2 * t4 + (e & 1), row = (e < 2) ? row0 : row1;
                        if (key >= nk || (causal && key > row + offset)) p[e] = 0.f;
                    }
                }
                dsa[n >> 1][(n & 1) * 2 + 0] = pack2<BF16>(p[0] * (dp[n][0] - d0), p[1] * (dp[n][1] - d0));
                dsa[n >> 1][(n & 1) * 2 + 1] = pack2<BF16>(p[2] * (dp[n][2] - d1), p[3] * (dp[n][3] - d1));
            }
#pragma unroll
            for (int kk = 0; kk < BK / 16; ++kk) {
#pragma unroll
                for (int nn = 0; nn < D / 16; ++nn) {
                    u32 b[4];
                    ldmatrix_x4_trans(b, smem_u32(sKt + swz<D>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, nn * 16 + (lane >> 4) * 8)));
                    mma16816<BF16>(acc[2 * nn], dsa[kk], b[0], b[1]);
                    mma16816<BF16>(acc[2 * nn + 1], dsa[kk], b[2], b[3]);
                }
            }
        };
        if (kt0 + BK > nk || (causal && kt0 + BK - 1 > q0 + offset)) step(BoolC<true>{});
        else step(BoolC<false>{});
    }
    cp_async_wait<0>();
    u16* dQ = dq + bh * nq * D;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
        const int col = n * 8 + 2 * t4;
        if (row0 < nq) *reinterpret_cast<u32*>(dQ + (size_t)row0 * D + col) = pack2<BF16>(acc[n][0] * scale, acc[n][1] * scale);
        if (row1 < nq) *reinterpret_cast<u32*>(dQ + (size_t)row1 * D + col) = pack2<BF16>(acc[n][2] * scale, acc[n][3] * scale);
    }
}

// dQ = scale * accumulator, rounded to fp16/bf16; two elements per thread
template <int D, bool BF16>
__device__ __forceinline__ void dq_convert(const float* acc, u16* dq, int nq, int bh_count, float scale) {
    const size_t i2 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;        // pair index in dq
    if (i2 >= (size_t)bh_count * nq * D / 2) return;
    const size_t e = 2 * i2, row = e / D, col = e % D;
    const size_t bh = row / nq, i = row % nq;
    const int nq_pad = (nq + PAD - 1) / PAD * PAD;
    const float2 a = *reinterpret_cast<const float2*>(acc + (bh * nq_pad + i) * D + col);
    *reinterpret_cast<u32*>(dq + e) = pack2<BF16>(a.x * scale, a.y * scale);
}

}  // namespace fa_bwd

#define TA_BWD_ARGS_DKDV const u16* q, const u16* k, const u16* v, const u16* dout, const float* lse2, \
    const float* delta, u16* dk, u16* dv, float* dqacc, int nq, int nk, float scale_log2, float scale, int causal, int group

// Kernels (cupy_backward.py holds the launch table): fa_bwd_pre_<t>_d<D>, fa_bwd_dq_convert_<t>_d<D>,
// fa_bwd_dkdv_<t>_d<D>_w<NW>m<MT>q<BQ>[r]<a|s> (r: K/V fragments in registers; a: atomic dQ, s: no dQ),
// fa_bwd_dq_<t>_d<D>_w<NW>k<BK>
#define TA_BWD_COMMON(T, D, BF16)                                                                      \
    extern "C" __global__ void fa_bwd_pre_##T##_d##D(const u16* o, const u16* dout, const float* lse,   \
            float* delta, float* lse2, int nq, int nq_pad, int bh_count) {                            \
        fa_bwd::pre<D, BF16>(o, dout, lse, delta, lse2, nq, nq_pad, bh_count);                         \
    }                                                                                                 \
    extern "C" __global__ void fa_bwd_dq_convert_##T##_d##D(const float* acc, u16* dq, int nq, int bh_count, float scale) { \
        fa_bwd::dq_convert<D, BF16>(acc, dq, nq, bh_count, scale);                                     \
    }
#define TA_BWD_DKDV(T, D, BF16, NW, MT, BQ, KREG, ATOMIC, SUFFIX)                                          \
    extern "C" __global__ void __launch_bounds__(NW * 32) fa_bwd_dkdv_##T##_d##D##_##SUFFIX(TA_BWD_ARGS_DKDV) { \
        fa_bwd::dkdv<D, BF16, NW, MT, BQ, KREG, ATOMIC>(q, k, v, dout, lse2, delta, dk, dv, dqacc, nq, nk, scale_log2, scale, causal, group); \
    }
#define TA_BWD_DQ(T, D, BF16, NW, BK, SUFFIX)                                                          \
    extern "C" __global__ void __launch_bounds__(NW * 32) fa_bwd_dq_##T##_d##D##_##SUFFIX(const u16* q, const u16* k, \
            const u16* v, const u16* dout, const float* lse2, const float* delta, u16* dq, int nq, int nk, \
            float scale_log2, float scale, int causal, int group) {                                   \
        fa_bwd::dq_kernel<D, BF16, NW, BK>(q, k, v, dout, lse2, delta, dq, nq, nk, scale_log2, scale, causal, group); \
    }
#define TA_BWD_DKDV_BOTH(D, NW, MT, BQ, KREG, SUFFIX)                                               \
    TA_BWD_DKDV(f16, D, false, NW, MT, BQ, KREG, true, SUFFIX##a) TA_BWD_DKDV(bf16, D, true, NW, MT, BQ, KREG, true, SUFFIX##a) \
    TA_BWD_DKDV(f16, D, false, NW, MT, BQ, KREG, false, SUFFIX##s) TA_BWD_DKDV(bf16, D, true, NW, MT, BQ, KREG, false, SUFFIX##s)
#define TA_BWD_DQ_BOTH(D, NW, BK, SUFFIX) TA_BWD_DQ(f16, D, false, NW, BK, SUFFIX) TA_BWD_DQ(bf16, D, true, NW, BK, SUFFIX)

// cupy_backward.DKDV_VARIANTS / DQ_VARIANTS list the same (NW, MT, BQ, KREG) and (NW, BK); tests check they agree
TA_BWD_COMMON(f16, 32, false) TA_BWD_COMMON(bf16, 32, true)
TA_BWD_COMMON(f16, 64, false) TA_BWD_COMMON(bf16, 64, true)
TA_BWD_COMMON(f16, 96, false) TA_BWD_COMMON(bf16, 96, true)
TA_BWD_COMMON(f16, 128, false) TA_BWD_COMMON(bf16, 128, true)
TA_BWD_DKDV_BOTH(32, 4, 1, 64, true, w4m1q64r)
TA_BWD_DKDV_BOTH(64, 4, 2, 32, false, w4m2q32)
TA_BWD_DKDV_BOTH(96, 4, 1, 32, false, w4m1q32)
TA_BWD_DKDV_BOTH(128, 8, 1, 64, false, w8m1q64)
TA_BWD_DQ_BOTH(32, 4, 64, w4k64)
TA_BWD_DQ_BOTH(64, 4, 64, w4k64)
TA_BWD_DQ_BOTH(96, 4, 32, w4k32)
TA_BWD_DQ_BOTH(128, 4, 64, w4k64)
#ifdef TA_FLASH_ALL_VARIANTS
// the sweep (benchmarks/NOTES.md, runs B1-B2): step 0 = w4m1q64r (d 64) / w4m1q32 (d 128)
TA_BWD_DKDV_BOTH(64, 4, 1, 64, true, w4m1q64r)
TA_BWD_DKDV_BOTH(64, 8, 1, 64, true, w8m1q64r)
TA_BWD_DKDV_BOTH(64, 8, 2, 32, false, w8m2q32)
TA_BWD_DKDV_BOTH(128, 4, 1, 32, false, w4m1q32)
TA_BWD_DKDV_BOTH(128, 8, 1, 32, false, w8m1q32)
TA_BWD_DKDV_BOTH(128, 4, 1, 64, false, w4m1q64)
TA_BWD_DQ_BOTH(128, 4, 32, w4k32)
TA_BWD_DQ_BOTH(64, 8, 64, w8k64)
#endif
