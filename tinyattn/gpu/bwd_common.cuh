// Shared pieces of the tensor-core FlashAttention-2 backward (flash_mma_bwd.cu): swizzle, tile loaders,
// the delta / lse2 pre-pass, the separate Q-outer dQ kernel and the dQ convert kernels (row-major, and the
// fragment order of bwd_dkdv_fast.cuh), red.v2 / red.v4 / 32-bit shared-store helpers.
#pragma once
#include "ptx_utils.cuh"

#define TA_POS_INF __int_as_float(0x7f800000)

namespace fa_bwd {

constexpr int PAD = 128;   // row padding of lse2, delta and the dQ accumulator

// Swizzle of 64- and 192-byte rows (W = 32, 96): 1 = XOR with (row >> 1) & 3 (Session 20), 0 = row & 3 (B1/B2).
// ldmatrix reads 8 rows x 16 bytes; with 64-byte rows two rows share a 128-byte bank line, so rows r and r + 4
// got the same banks under row & 3 (a 2-way conflict); (row >> 1) & 3 gives the 8 rows 8 distinct 16-byte slots.
#ifndef TA_BWD_SWZ_HALF
#define TA_BWD_SWZ_HALF 1
#endif

// element offset of (row, col) in a swizzled [rows][W] tile of 16-bit values; col is a multiple of 8.
// 16-byte chunks are XORed with row & 7 (W a multiple of 64) or with a 2-bit function of the row
// (W = 32, 96: the chunk stays in its row)
template <int W>
__device__ __forceinline__ int swz(int row, int col) {
    const int x = (W % 64 == 0) ? (row & 7) : (TA_BWD_SWZ_HALF ? (row >> 1) & 3 : row & 3);
    return row * W + (((col >> 3) ^ x) << 3);
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

__device__ __forceinline__ void sts32(u32 addr, u32 v) {
    asm volatile("st.shared.u32 [%0], %1;\n" :: "r"(addr), "r"(v) : "memory");
}

__device__ __forceinline__ void red_add_v4(float* addr, float a, float b, float c, float d) {
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" :: "l"(addr), "f"(a), "f"(b), "f"(c), "f"(d)
                 : "memory");
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

// dQ = scale * accumulator in fragment order (dkdv_fast with FRAG): thread = (16 x 8 block, lane), 4 floats
// -> rows 16 r16 + lane / 4 (+8), columns 8 c8 + 2 (lane % 4) (+1)
template <int D, bool BF16>
__device__ __forceinline__ void dq_convert_frag(const float* acc, u16* dq, int nq, int bh_count, float scale) {
    const int nq_pad = (nq + PAD - 1) / PAD * PAD;
    const size_t gid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (gid >= (size_t)bh_count * nq_pad * D / 4) return;
    const size_t blk = gid >> 5;
    const int ln = gid & 31, c8 = blk % (D / 8);
    const size_t rows = blk / (D / 8);                          // bh * nq_pad / 16 + r16
    const size_t bh = rows / (nq_pad / 16);
    const int r = (int)(rows % (nq_pad / 16)) * 16 + (ln >> 2), col = c8 * 8 + 2 * (ln & 3);
    const float4 a = *reinterpret_cast<const float4*>(acc + gid * 4);
    u16* out = dq + bh * nq * D + col;
    if (r < nq) *reinterpret_cast<u32*>(out + (size_t)r * D) = pack2<BF16>(a.x * scale, a.y * scale);
    if (r + 8 < nq) *reinterpret_cast<u32*>(out + (size_t)(r + 8) * D) = pack2<BF16>(a.z * scale, a.w * scale);
}

}  // namespace fa_bwd
