// FlashAttention-2 forward on tensor cores: fp16/bf16 inputs, fp32 accumulation (chapter 07).
//
// One thread block of 4 warps per (64-row query tile, batch*head); warp w owns query rows
// 16w..16w+15. Per K/V tile of 64 keys:
//   S = Q K^T     mma.sync m16n8k16: A = Q fragments (registers, loaded once by ldmatrix),
//                 B = K tile in shared memory (ldmatrix, rows = keys)
//   online softmax on the S accumulators in registers (row max over the 4 lanes of a quad)
//   O += P V      the S accumulator layout of two adjacent n-tiles IS the A-fragment layout of a
//                 16x16 tile, so P is re-packed to fp16/bf16 in registers (never touches memory);
//                 B = V tile (ldmatrix.trans, rows = keys)
// K/V tiles are double-buffered in shared memory with cp.async (tile t+1 loads while t computes).
// Shared tiles use an XOR swizzle of 16-byte chunks (chunk ^ (row & 7)) so ldmatrix is conflict-free.
// Layout: q, o (BH, Nq, D), k, v (BH, Nk, D), contiguous. Causal = bottom-right aligned
// (query i sees key j <= i + Nk - Nq); tiles above the diagonal are skipped, only tiles that cross
// it (or the ragged end) are masked element-wise.
#include "ptx_utils.cuh"

namespace fa_mma {

constexpr int BQ = 64;        // query rows per block (4 warps x 16)
constexpr int BK = 64;        // keys per tile
constexpr int NTHREADS = 128;

// element offset of (row, col) in a swizzled [rows][D] tile; col is a multiple of 8
template <int D>
__device__ __forceinline__ int swz(int row, int col) {
    return row * D + ((((col >> 3) ^ (row & 7))) << 3);
}

// rows [r0, r0 + ROWS) of a (n, D) matrix -> swizzled shared tile, rows >= n zero-filled
template <int D, int ROWS>
__device__ __forceinline__ void load_tile_async(u16* s, const u16* g, int r0, int n, int tid) {
    constexpr int CHUNKS = ROWS * D / 8;          // 16-byte chunks
#pragma unroll
    for (int c = tid; c < CHUNKS; c += NTHREADS) {
        int row = c / (D / 8), col = (c % (D / 8)) * 8;
        bool ok = r0 + row < n;
        const u16* src = g + (size_t)(ok ? r0 + row : 0) * D + col;
        cp_async16(smem_u32(s + swz<D>(row, col)), src, ok ? 16 : 0);
    }
}

template <int D, bool BF16>
__device__ __forceinline__ void forward(const u16* __restrict__ q, const u16* __restrict__ k,
                                        const u16* __restrict__ v, u16* __restrict__ o,
                                        int nq, int nk, float scale_log2, int causal) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    u16* sQ = reinterpret_cast<u16*>(smem_raw);
    u16* sK = sQ + BQ * D;          // 2 stages
    u16* sV = sK + 2 * BK * D;      // 2 stages

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;                 // mma fragment coordinates
    const int qb = gridDim.x - 1 - blockIdx.x;              // heavy (late) causal tiles start first
    const int q0 = qb * BQ;
    const size_t bh = blockIdx.y;
    const u16* Q = q + bh * nq * D;
    const u16* K = k + bh * nk * D;
    const u16* V = v + bh * nk * D;
    u16* O = o + bh * nq * D;
    const int offset = nk - nq;

    int n_tiles = (nk + BK - 1) / BK;
    if (causal) {
        int last = min(q0 + BQ, nq) - 1 + offset;            // last key the last row may see
        n_tiles = last < 0 ? 0 : min(n_tiles, last / BK + 1);
    }

    load_tile_async<D, BQ>(sQ, Q, q0, nq, tid);
    cp_async_commit();
    if (n_tiles > 0) {
        load_tile_async<D, BK>(sK, K, 0, nk, tid);
        load_tile_async<D, BK>(sV, V, 0, nk, tid);
    }
    cp_async_commit();
    cp_async_wait<1>();             // Q has landed (tile 0 may still be in flight)
    __syncthreads();

    u32 qf[D / 16][4];              // this warp's 16 x D slice of Q as A fragments
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
        ldmatrix_x4(qf[kk], smem_u32(sQ + swz<D>(warp * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));

    float acc[D / 8][4];            // O accumulator: rows g, g+8 of the warp; cols 8n + 2*t4 (+1)
#pragma unroll
    for (int n = 0; n < D / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
    float m0 = TA_NEG_INF, m1 = TA_NEG_INF;    // running max of raw scores, rows g and g+8
    float l0 = 0.f, l1 = 0.f;                  // this lane's partial row sums (reduced at the end)
    const int row0 = q0 + warp * 16 + g, row1 = row0 + 8;

    for (int t = 0; t < n_tiles; ++t) {
        cp_async_wait<0>();
        __syncthreads();            // tile t visible to all; everyone is done with tile t-1's buffer
        if (t + 1 < n_tiles) {
            load_tile_async<D, BK>(sK + ((t + 1) & 1) * BK * D, K, (t + 1) * BK, nk, tid);
            load_tile_async<D, BK>(sV + ((t + 1) & 1) * BK * D, V, (t + 1) * BK, nk, tid);
        }
        cp_async_commit();
        const u16* sKt = sK + (t & 1) * BK * D;
        const u16* sVt = sV + (t & 1) * BK * D;
        const int k0 = t * BK;

        // S = Q K^T  (16 x 64 per warp, 8 n-tiles of 8 keys)
        float s[BK / 8][4];
#pragma unroll
        for (int n = 0; n < BK / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
            for (int nn = 0; nn < BK / 16; ++nn) {
                u32 b[4];
                int key = nn * 16 + (lane & 7) + ((lane >> 4) << 3);
                int col = kk * 16 + ((lane >> 3) & 1) * 8;
                ldmatrix_x4(b, smem_u32(sKt + swz<D>(key, col)));
                mma16816<BF16>(s[2 * nn], qf[kk], b[0], b[1]);
                mma16816<BF16>(s[2 * nn + 1], qf[kk], b[2], b[3]);
            }
        }

        // mask only tiles that cross the diagonal or the ragged end
        if (k0 + BK > nk || (causal && k0 + BK - 1 > q0 + offset)) {
#pragma unroll
            for (int n = 0; n < BK / 8; ++n) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    int col = k0 + n * 8 + 2 * t4 + (e & 1);
                    int row = (e < 2) ? row0 : row1;
                    if (col >= nk || (causal && col > row + offset)) s[n][e] = TA_NEG_INF;
                }
            }
        }

        // online softmax: m' = max(m, rowmax S); P = 2^(S*c - m'*c) with c = scale*log2(e)
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int n = 0; n < BK / 8; ++n) {
            mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
            mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mu0 = (mx0 == TA_NEG_INF) ? 0.f : mx0 * scale_log2;   // fully masked: no NaN
        const float mu1 = (mx1 == TA_NEG_INF) ? 0.f : mx1 * scale_log2;
        const float alpha0 = fast_exp2(m0 * scale_log2 - mu0);           // m = -inf -> 0
        const float alpha1 = fast_exp2(m1 * scale_log2 - mu1);
        m0 = mx0;
        m1 = mx1;
        float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
        for (int n = 0; n < BK / 8; ++n) {
            s[n][0] = fast_exp2(fmaf(s[n][0], scale_log2, -mu0));
            s[n][1] = fast_exp2(fmaf(s[n][1], scale_log2, -mu0));
            s[n][2] = fast_exp2(fmaf(s[n][2], scale_log2, -mu1));
            s[n][3] = fast_exp2(fmaf(s[n][3], scale_log2, -mu1));
            ps0 += s[n][0] + s[n][1];
            ps1 += s[n][2] + s[n][3];
        }
        l0 = l0 * alpha0 + ps0;
        l1 = l1 * alpha1 + ps1;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            acc[n][0] *= alpha0; acc[n][1] *= alpha0;
            acc[n][2] *= alpha1; acc[n][3] *= alpha1;
        }

        // O += P V: P stays in registers, re-packed as A fragments of 16 keys each
#pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk) {
            u32 a[4];
            a[0] = pack2<BF16>(s[2 * kk][0], s[2 * kk][1]);
            a[1] = pack2<BF16>(s[2 * kk][2], s[2 * kk][3]);
            a[2] = pack2<BF16>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            a[3] = pack2<BF16>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int nn = 0; nn < D / 16; ++nn) {
                u32 b[4];
                int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                int col = nn * 16 + (lane >> 4) * 8;
                ldmatrix_x4_trans(b, smem_u32(sVt + swz<D>(key, col)));
                mma16816<BF16>(acc[2 * nn], a, b[0], b[1]);
                mma16816<BF16>(acc[2 * nn + 1], a, b[2], b[3]);
            }
        }
    }
    cp_async_wait<0>();

    // O = acc / l, l summed over the quad once at the end; a row that saw no key gives 0
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f;
    const float inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
        int col = n * 8 + 2 * t4;
        if (row0 < nq)
            *reinterpret_cast<u32*>(O + (size_t)row0 * D + col) = pack2<BF16>(acc[n][0] * inv0, acc[n][1] * inv0);
        if (row1 < nq)
            *reinterpret_cast<u32*>(O + (size_t)row1 * D + col) = pack2<BF16>(acc[n][2] * inv1, acc[n][3] * inv1);
    }
}

}  // namespace fa_mma

// shared memory: Q tile + 2 K tiles + 2 V tiles = (64 + 4*64) * D * 2 bytes (40 KB at D=64, 80 KB at D=128)
#define TA_FLASH_MMA(NAME, D, BF16)                                                                  \
    extern "C" __global__ void __launch_bounds__(fa_mma::NTHREADS)                                   \
    NAME(const u16* q, const u16* k, const u16* v, u16* o, int nq, int nk, float scale_log2, int causal) { \
        fa_mma::forward<D, BF16>(q, k, v, o, nq, nk, scale_log2, causal);                            \
    }

TA_FLASH_MMA(flash_mma_f16_d64, 64, false)
TA_FLASH_MMA(flash_mma_f16_d128, 128, false)
TA_FLASH_MMA(flash_mma_bf16_d64, 64, true)
TA_FLASH_MMA(flash_mma_bf16_d128, 128, true)
