// FlashAttention-2 forward on tensor cores: fp16/bf16 inputs, fp32 accumulation (chapter 07).
//
// One thread block of NW warps per (query tile, batch*head); each warp owns MT m-tiles of 16 query
// rows (the shipped defaults, DEFAULT_VARIANT in cupy_flash.py: 4 warps x 2 m-tiles = 128 rows per
// block, 64-key tiles; Q fragments in registers at d = 64, re-read from shared memory at d = 128).
// Per K/V tile of BK keys:
//   S = Q K^T     mma.sync m16n8k16: A = Q fragments (registers, loaded once by ldmatrix),
//                 B = K tile in shared memory (ldmatrix, rows = keys)
//   online softmax on the S accumulators in registers (row max over the 4 lanes of a quad)
//   O += P V      the S accumulator layout of two adjacent n-tiles IS the A-fragment layout of a
//                 16x16 tile, so P is re-packed to fp16/bf16 in registers (never touches memory);
//                 B = V tile (ldmatrix.trans, rows = keys)
// K/V tiles are double-buffered in shared memory with cp.async (tile t+1 loads while t computes).
// Shared tiles use an XOR swizzle of 16-byte chunks (chunk ^ (row & 7); D = 32, 96: chunk ^ ((row >> 1) & 3))
// so ldmatrix is conflict-free. Head dims 32, 64, 96, 128.
// Layout: q, o (BH, Nq, D), k, v (BH / group, Nk, D), contiguous (group > 1: GQA/MQA, no repeated K/V). Causal = bottom-right aligned
// (query i sees key j <= i + Nk - Nq); tiles above the diagonal are skipped, only tiles that cross
// it (or the ragged end) are masked element-wise. lse (BH, Nq) float32 gets each row's natural
// log-sum-exp (m * scale * log2 e + log2 l) * ln 2, -inf for a row that sees no key.
#include "ptx_utils.cuh"
#include "flash_mma_tiles.cuh"

namespace fa_mma {

template <bool B>
struct BoolC { static constexpr bool value = B; };

// Template knobs (benchmarks/NOTES.md records what each one measured):
//   NW    warps per block; MT  16-row m-tiles per warp  -> BQ = 16 * NW * MT query rows per block
//   BK    keys per K/V tile (32: fewer score registers, 128: fewer per-tile fixed costs)
//   STAGES K/V tiles in flight in shared memory (2: double buffering, 3: one more tile of lead)
//   RSKIP skip the O rescale on tiles where no row max of the warp changed (a warp vote)
//   QREG  keep this warp's Q fragments in registers for the whole loop (else re-read by ldmatrix)
//   EXP16 exponentiate two probabilities per SFU instruction (ex2.approx.{f16,bf16}x2) and take the
//         row sums l with one extra mma against a ones matrix (fp32 sums of exactly the P used in P V)
template <int D, bool BF16, int NW, int MT, int BK, bool QREG, bool EXP16, int STAGES, bool RSKIP, bool SPLITLD = false>
__device__ __forceinline__ void forward(const u16* __restrict__ q, const u16* __restrict__ k,
                                        const u16* __restrict__ v, u16* __restrict__ o, float* __restrict__ lse,
                                        int nq, int nk, float scale_log2, int causal, int group) {
    constexpr int NT = NW * 32, BQ = 16 * NW * MT;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    u16* sQ = reinterpret_cast<u16*>(smem_raw);
    u16* sK = sQ + BQ * D;          // STAGES tiles
    u16* sV = sK + STAGES * BK * D; // STAGES tiles

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;                 // mma fragment coordinates
    const int qb = gridDim.x - 1 - blockIdx.x;              // heavy (late) causal tiles start first
    const int q0 = qb * BQ;
    const size_t bh = blockIdx.y;
    const u16* Q = q + bh * nq * D;
    const u16* K = k + (bh / group) * nk * D;  // GQA: query head b*H + h reads kv head (b*H + h) / group
    const u16* V = v + (bh / group) * nk * D;
    u16* O = o + bh * nq * D;
    const int offset = nk - nq;

    int n_tiles = (nk + BK - 1) / BK;
    if (causal) {
        int last = min(q0 + BQ, nq) - 1 + offset;            // last key the last row may see
        n_tiles = last < 0 ? 0 : min(n_tiles, last / BK + 1);
    }

    load_tile_async<D, BQ, NT, SPLITLD>(sQ, Q, q0, nq, tid);
    cp_async_commit();
#pragma unroll
    for (int st = 0; st < STAGES - 1; ++st) {          // prologue: tiles 0 .. STAGES-2 in flight
        if (st < n_tiles) {
            load_tile_async<D, BK, NT, SPLITLD>(sK + st * BK * D, K, st * BK, nk, tid);
            load_tile_async<D, BK, NT, SPLITLD>(sV + st * BK * D, V, st * BK, nk, tid);
        }
        cp_async_commit();                              // (an empty group keeps the counting simple)
    }
    cp_async_wait<STAGES - 1>();    // Q has landed (K/V tiles may still be in flight)
    __syncthreads();

    // this warp's rows: m-tile mt covers rows (warp * MT + mt) * 16 .. +15 of the block
    u32 qf[QREG ? MT : 1][QREG ? D / 16 : 1][4];
    if constexpr (QREG) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk)
                ldmatrix_x4(qf[mt][kk], smem_u32(sQ + swz<D>((warp * MT + mt) * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
    }

    float acc[MT][D / 8][4];        // O accumulator: rows g, g+8 of each m-tile; cols 8n + 2*t4 (+1)
    float m[MT][2], l[MT][2];       // running max of raw scores; row sums (lane partials, or mma sums)
    float lacc[MT][4];              // EXP16: row sums from the ones-mma (every column holds the sum)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int n = 0; n < D / 8; ++n) acc[mt][n][0] = acc[mt][n][1] = acc[mt][n][2] = acc[mt][n][3] = 0.f;
        m[mt][0] = m[mt][1] = TA_NEG_INF;
        l[mt][0] = l[mt][1] = 0.f;
        lacc[mt][0] = lacc[mt][1] = lacc[mt][2] = lacc[mt][3] = 0.f;
    }
    const u32 ones = BF16 ? 0x3F803F80u : 0x3C003C00u;      // two packed 1.0s

    for (int t = 0; t < n_tiles; ++t) {
        cp_async_wait<STAGES - 2>();  // tile t has landed (newer tiles may still be in flight)
        __syncthreads();            // tile t visible to all; everyone is done with tile t-1's buffer
        if (t + STAGES - 1 < n_tiles) {
            const int st = (t + STAGES - 1) % STAGES, kt = (t + STAGES - 1) * BK;
            load_tile_async<D, BK, NT, SPLITLD>(sK + st * BK * D, K, kt, nk, tid);
            load_tile_async<D, BK, NT, SPLITLD>(sV + st * BK * D, V, kt, nk, tid);
        }
        cp_async_commit();
        const u16* sKt = sK + (t % STAGES) * BK * D;
        const u16* sVt = sV + (t % STAGES) * BK * D;
        const int k0 = t * BK;

        auto step = [&](auto mask_tag) {
            constexpr bool MASK = decltype(mask_tag)::value;
            // S = Q K^T  (16 x 64 per m-tile, 8 n-tiles of 8 keys); each K fragment feeds MT m-tiles
            float s[MT][BK / 8][4];
    #pragma unroll
            for (int mt = 0; mt < MT; ++mt)
    #pragma unroll
                for (int n = 0; n < BK / 8; ++n) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
    #pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                u32 qa[MT][4];
    #pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    if constexpr (QREG) {
    #pragma unroll
                        for (int e = 0; e < 4; ++e) qa[mt][e] = qf[mt][kk][e];
                    } else {
                        ldmatrix_x4(qa[mt], smem_u32(sQ + swz<D>((warp * MT + mt) * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8)));
                    }
                }
    #pragma unroll
                for (int nn = 0; nn < BK / 16; ++nn) {
                    u32 b[4];
                    int key = nn * 16 + (lane & 7) + ((lane >> 4) << 3);
                    int col = kk * 16 + ((lane >> 3) & 1) * 8;
                    ldmatrix_x4(b, smem_u32(sKt + swz<D>(key, col)));
    #pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<BF16>(s[mt][2 * nn], qa[mt], b[0], b[1]);
                        mma16816<BF16>(s[mt][2 * nn + 1], qa[mt], b[2], b[3]);
                    }
                }
            }

            u32 pa[MT][BK / 16][4];     // P as A fragments (16 keys each), packed fp16/bf16
    #pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                const int row0 = q0 + (warp * MT + mt) * 16 + g, row1 = row0 + 8;
                // element mask only on tiles that cross the diagonal or the ragged end (MASK = true)
                if constexpr (MASK) {
    #pragma unroll
                    for (int n = 0; n < BK / 8; ++n) {
    #pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            int col = k0 + n * 8 + 2 * t4 + (e & 1);
                            int row = (e < 2) ? row0 : row1;
                            if (col >= nk || (causal && col > row + offset)) s[mt][n][e] = TA_NEG_INF;
                        }
                    }
                }
                // online softmax: m' = max(m, rowmax S); P = 2^(S*c - m'*c) with c = scale*log2(e)
                float mx0 = m[mt][0], mx1 = m[mt][1];
    #pragma unroll
                for (int n = 0; n < BK / 8; ++n) {
                    mx0 = fmaxf(mx0, fmaxf(s[mt][n][0], s[mt][n][1]));
                    mx1 = fmaxf(mx1, fmaxf(s[mt][n][2], s[mt][n][3]));
                }
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
                const float mu0 = (mx0 == TA_NEG_INF) ? 0.f : mx0 * scale_log2;   // fully masked: no NaN
                const float mu1 = (mx1 == TA_NEG_INF) ? 0.f : mx1 * scale_log2;
                const float alpha0 = fast_exp2(m[mt][0] * scale_log2 - mu0);     // m = -inf -> 0
                const float alpha1 = fast_exp2(m[mt][1] * scale_log2 - mu1);
                m[mt][0] = mx0;
                m[mt][1] = mx1;
                if constexpr (EXP16) {
    #pragma unroll
                    for (int n = 0; n < BK / 8; ++n) {   // S accumulator layout of n-tiles 2kk, 2kk+1 = A layout
                        u32 p01 = fast_exp2_x2<BF16>(pack2<BF16>(fmaf(s[mt][n][0], scale_log2, -mu0), fmaf(s[mt][n][1], scale_log2, -mu0)));
                        u32 p23 = fast_exp2_x2<BF16>(pack2<BF16>(fmaf(s[mt][n][2], scale_log2, -mu1), fmaf(s[mt][n][3], scale_log2, -mu1)));
                        pa[mt][n >> 1][(n & 1) * 2 + 0] = p01;
                        pa[mt][n >> 1][(n & 1) * 2 + 1] = p23;
                    }
                    lacc[mt][0] *= alpha0; lacc[mt][1] *= alpha0;
                    lacc[mt][2] *= alpha1; lacc[mt][3] *= alpha1;
    #pragma unroll
                    for (int kk = 0; kk < BK / 16; ++kk) mma16816<BF16>(lacc[mt], pa[mt][kk], ones, ones);   // l += P 1
                } else {
                    float ps0 = 0.f, ps1 = 0.f;
    #pragma unroll
                    for (int n = 0; n < BK / 8; ++n) {
                        float p0 = fast_exp2(fmaf(s[mt][n][0], scale_log2, -mu0));
                        float p1 = fast_exp2(fmaf(s[mt][n][1], scale_log2, -mu0));
                        float p2 = fast_exp2(fmaf(s[mt][n][2], scale_log2, -mu1));
                        float p3 = fast_exp2(fmaf(s[mt][n][3], scale_log2, -mu1));
                        ps0 += p0 + p1;
                        ps1 += p2 + p3;
                        pa[mt][n >> 1][(n & 1) * 2 + 0] = pack2<BF16>(p0, p1);
                        pa[mt][n >> 1][(n & 1) * 2 + 1] = pack2<BF16>(p2, p3);
                    }
                    l[mt][0] = l[mt][0] * alpha0 + ps0;
                    l[mt][1] = l[mt][1] * alpha1 + ps1;
                }
                // RSKIP: rescale O only if some row of this warp got a new max (alpha == 1 exactly
                // otherwise; late tiles rarely change the max). Measured: 0% at d=64, -7% with 32-key
                // tiles at d=128, but it lets the 64-key d=128 kernel fit in 255 registers (NOTES.md step 4)
                if (!RSKIP || __any_sync(0xffffffffu, alpha0 != 1.f || alpha1 != 1.f)) {
#pragma unroll
                    for (int n = 0; n < D / 8; ++n) {
                        acc[mt][n][0] *= alpha0; acc[mt][n][1] *= alpha0;
                        acc[mt][n][2] *= alpha1; acc[mt][n][3] *= alpha1;
                    }
                }
            }

            // O += P V: P stays in registers; each V fragment (ldmatrix.trans) feeds MT m-tiles
    #pragma unroll
            for (int kk = 0; kk < BK / 16; ++kk) {
    #pragma unroll
                for (int nn = 0; nn < D / 16; ++nn) {
                    u32 b[4];
                    int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                    int col = nn * 16 + (lane >> 4) * 8;
                    ldmatrix_x4_trans(b, smem_u32(sVt + swz<D>(key, col)));
    #pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<BF16>(acc[mt][2 * nn], pa[mt][kk], b[0], b[1]);
                        mma16816<BF16>(acc[mt][2 * nn + 1], pa[mt][kk], b[2], b[3]);
                    }
                }
            }
        };
        if (k0 + BK > nk || (causal && k0 + BK - 1 > q0 + offset)) step(BoolC<true>{});
        else step(BoolC<false>{});
    }
    cp_async_wait<0>();

    // O = acc / l, once at the end; a row that saw no key gives 0
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        float l0, l1;
        if constexpr (EXP16) {
            l0 = lacc[mt][0];                   // the mma already summed over all keys and lanes
            l1 = lacc[mt][2];
        } else {                                // lane partials -> quad sums
            l0 = l[mt][0] + __shfl_xor_sync(0xffffffffu, l[mt][0], 1);
            l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
            l1 = l[mt][1] + __shfl_xor_sync(0xffffffffu, l[mt][1], 1);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        }
        const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f;
        const float inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
        const int row0 = q0 + (warp * MT + mt) * 16 + g, row1 = row0 + 8;
        if (t4 == 0) {          // lse = (m c + log2 l) ln 2 with c = scale log2 e; -inf if no key
            if (row0 < nq) lse[bh * nq + row0] = l0 > 0.f ? fmaf(m[mt][0], scale_log2, log2f(l0)) * TA_LN2 : TA_NEG_INF;
            if (row1 < nq) lse[bh * nq + row1] = l1 > 0.f ? fmaf(m[mt][1], scale_log2, log2f(l1)) * TA_LN2 : TA_NEG_INF;
        }
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            int col = n * 8 + 2 * t4;
            if (row0 < nq)
                *reinterpret_cast<u32*>(O + (size_t)row0 * D + col) = pack2<BF16>(acc[mt][n][0] * inv0, acc[mt][n][1] * inv0);
            if (row1 < nq)
                *reinterpret_cast<u32*>(O + (size_t)row1 * D + col) = pack2<BF16>(acc[mt][n][2] * inv1, acc[mt][n][3] * inv1);
        }
    }
}

}  // namespace fa_mma

// Kernels: flash_mma_<f16|bf16>_d<D>_<variant>; variant = w<NW>m<MT>k<BK>[q][e][r][l][s<STAGES>][_b<min blocks/SM>]
// (q: Q fragments in registers, e: EXP16, r: RSKIP, l: SPLITLD, the split loader, TA_FLASH_MMA_BOTH_L). Shared memory: Q tile (16*NW*MT rows) + STAGES K tiles +
// STAGES V tiles (BK rows each), D fp16 wide: (16*NW*MT + 2*STAGES*BK) * D * 2 bytes.
// cupy_flash.VARIANTS holds the same numbers for the launcher; tests check the two agree.
#define TA_FLASH_MMA_X(NAME, D, BF16, NW, MT, BK, QREG, EXP16, STAGES, MINB, RSKIP, SPLITLD)         \
    extern "C" __global__ void __launch_bounds__(NW * 32, MINB)                                      \
    NAME(const u16* q, const u16* k, const u16* v, u16* o, float* lse, int nq, int nk, float scale_log2, int causal, int group) { \
        fa_mma::forward<D, BF16, NW, MT, BK, QREG, EXP16, STAGES, RSKIP, SPLITLD>(q, k, v, o, lse, nq, nk, scale_log2, causal, group); \
    }
#define TA_FLASH_MMA(NAME, D, BF16, NW, MT, BK, QREG, EXP16, STAGES, MINB, RSKIP)                    \
    TA_FLASH_MMA_X(NAME, D, BF16, NW, MT, BK, QREG, EXP16, STAGES, MINB, RSKIP, false)

#define TA_FLASH_MMA_BOTH(D, NW, MT, BK, QREG, EXP16, STAGES, MINB, RSKIP, SUFFIX)                   \
    TA_FLASH_MMA(flash_mma_f16_d##D##_##SUFFIX, D, false, NW, MT, BK, QREG, EXP16, STAGES, MINB, RSKIP) \
    TA_FLASH_MMA(flash_mma_bf16_d##D##_##SUFFIX, D, true, NW, MT, BK, QREG, EXP16, STAGES, MINB, RSKIP)
// 'l' variants (session 21, sweep only): the split constant-trip loader of flash_mma_tiles.cuh (D = 96)
#define TA_FLASH_MMA_BOTH_L(D, NW, MT, BK, QREG, EXP16, STAGES, MINB, RSKIP, SUFFIX)                 \
    TA_FLASH_MMA_X(flash_mma_f16_d##D##_##SUFFIX, D, false, NW, MT, BK, QREG, EXP16, STAGES, MINB, RSKIP, true) \
    TA_FLASH_MMA_X(flash_mma_bf16_d##D##_##SUFFIX, D, true, NW, MT, BK, QREG, EXP16, STAGES, MINB, RSKIP, true)

// The defaults (cupy_flash.DEFAULT_VARIANT), fastest on the H200 (benchmarks/NOTES.md):
TA_FLASH_MMA_BOTH(64, 4, 2, 64, true, false, 2, 1, false, w4m2k64q)
TA_FLASH_MMA_BOTH(128, 4, 2, 64, false, true, 2, 1, true, w4m2k64er)
// d = 32 and 96 (session 20): at 32 the d = 64 shape with and without EXP16; at 96 the d = 128 shape
// with 64- or 32-key tiles (Q in registers spills at d = 96: 255 registers + 108 bytes)
TA_FLASH_MMA_BOTH(32, 4, 2, 64, true, false, 2, 1, false, w4m2k64q)
TA_FLASH_MMA_BOTH(32, 4, 2, 64, true, true, 2, 1, false, w4m2k64qe)
TA_FLASH_MMA_BOTH(96, 4, 2, 32, false, true, 2, 1, true, w4m2k32er)
TA_FLASH_MMA_BOTH(96, 4, 2, 64, false, true, 2, 1, true, w4m2k64er)

// d = 256 (session 21): one m-tile per warp (the O accumulator alone is 128 fp32 registers per thread
// per m-tile; w4m2 spills 3 KB), Q re-read from shared memory. Built with -DTA_FLASH_D256 (or with all
// variants) and checked on CPU by nvcc; not yet run on a GPU, so not offered by cupy_flash_attention.
#if defined(TA_FLASH_D256) || defined(TA_FLASH_ALL_VARIANTS)
TA_FLASH_MMA_BOTH(256, 4, 1, 32, false, true, 2, 1, true, w4m1k32er)
TA_FLASH_MMA_BOTH(256, 4, 1, 64, false, true, 2, 1, true, w4m1k64er)
TA_FLASH_MMA_BOTH(256, 8, 1, 32, false, true, 2, 1, true, w8m1k32er)
#endif

// d = 96 candidates (session 21, NOTES.md "Session 21: d96"; compile-checked, not yet run on a GPU): built
// with -DTA_FLASH_D96 (a small module for the benchmark) or with all variants. 'l': the split constant-trip
// loader of flash_mma_tiles.cuh (-14% loop instructions), on the shipped shape with and without the rescale
// skip; Q in registers with 32-key tiles (252 registers); Q in registers, one m-tile per warp, 3 blocks
// (12 warps) per SM (__launch_bounds__(128, 3): 162 registers)
#if defined(TA_FLASH_D96) || defined(TA_FLASH_ALL_VARIANTS)
TA_FLASH_MMA_BOTH_L(96, 4, 2, 64, false, true, 2, 1, true, w4m2k64erl)
TA_FLASH_MMA_BOTH_L(96, 4, 2, 64, false, true, 2, 1, false, w4m2k64el)
TA_FLASH_MMA_BOTH_L(96, 4, 2, 32, true, true, 2, 1, false, w4m2k32qel)
TA_FLASH_MMA_BOTH_L(96, 4, 1, 64, true, true, 2, 3, false, w4m1k64qel_b3)
#endif

// The optimisation history, compiled only with -DTA_FLASH_ALL_VARIANTS (the benchmark's sweep):
#ifdef TA_FLASH_ALL_VARIANTS
// step 1 (v1): 64 query rows, 4 warps x 16 rows
TA_FLASH_MMA_BOTH(64, 4, 1, 64, true, false, 2, 1, false, w4m1k64q)
TA_FLASH_MMA_BOTH(128, 4, 1, 64, true, false, 2, 1, false, w4m1k64q)
// step 2c: 128 rows per block as 8 warps x 16 rows (step 2b, 2 m-tiles per warp, is the default above)
TA_FLASH_MMA_BOTH(64, 8, 1, 64, true, false, 2, 1, false, w8m1k64q)
TA_FLASH_MMA_BOTH(128, 8, 1, 64, true, false, 2, 1, false, w8m1k64q)
// step 2d: EXP16 (two exponentials per SFU instruction, row sums by a ones-mma)
TA_FLASH_MMA_BOTH(64, 4, 2, 64, true, true, 2, 1, false, w4m2k64qe)
TA_FLASH_MMA_BOTH(128, 8, 1, 64, true, true, 2, 1, false, w8m1k64qe)
// steps 2e, 2f: a third K/V stage; 256-row blocks (8 warps x 2 m-tiles); 128-key tiles
TA_FLASH_MMA_BOTH(64, 4, 2, 64, true, false, 3, 1, false, w4m2k64qs3)
TA_FLASH_MMA_BOTH(64, 8, 2, 64, true, false, 2, 1, false, w8m2k64q)
TA_FLASH_MMA_BOTH(64, 4, 1, 128, true, false, 2, 1, false, w4m1k128q)
TA_FLASH_MMA_BOTH(128, 8, 1, 64, true, false, 3, 1, false, w8m1k64qs3)
TA_FLASH_MMA_BOTH(128, 4, 2, 32, false, true, 3, 1, false, w4m2k32es3)
TA_FLASH_MMA_BOTH(128, 8, 2, 32, false, true, 2, 1, false, w8m2k32e)
// step 2b at d=128 (the default before step 4: 64-key tiles and 2 m-tiles, see the defaults above)
TA_FLASH_MMA_BOTH(128, 4, 2, 32, false, true, 2, 1, false, w4m2k32e)
// step 4: the rescale skip (RSKIP) on the shipped kernels' tile shapes
TA_FLASH_MMA_BOTH(64, 4, 2, 64, true, false, 2, 1, true, w4m2k64qr)
TA_FLASH_MMA_BOTH(128, 4, 2, 32, false, true, 2, 1, true, w4m2k32er)
#endif
