// FlashAttention forward for Hopper (sm_90a): wgmma tensor-core instructions (issue 14, chapter 07 section 9).
//
// Build: nvcc -std=c++17 -gencode=arch=compute_90a,code=sm_90a (wgmma and setmaxnreg exist only on the
// "a" target). hopper.py compiles it with nvcc and loads the cubin into CuPy.
//
// A warpgroup (4 consecutive warps, 128 threads) owns 64 query rows. Per K/V tile of BK keys:
//   S = Q K^T   wgmma m64nBKk16, both operands read from shared memory through matrix descriptors:
//               Q (64 x d) and K (BK x d) are "K-major" (the reduction index d runs along a row)
//   online softmax on the S accumulators in registers; the accumulator layout of wgmma is, warp by
//               warp, the mma.sync m16n8 layout (warp w of the group holds rows 16w..16w+15), so the
//               softmax code of flash_mma.cu carries over and P is re-packed to 16-bit in registers
//   O += P V    wgmma m64ndk16 with A = P from registers and B = V from shared memory, "MN-major"
//               (V is stored keys x d with d along the row: the descriptor's transpose bit reads it as
//               the d x keys operand, no ldmatrix.trans needed)
// Shared tiles are split into 64-column panels (128 bytes a row) in the 128-byte swizzle layout that
// the descriptors name (hopper_ptx.cuh explains the fields; notebook 07 section 9 draws them).
// Step A (flash_wg_a_*): K/V tiles loaded by every thread with cp.async, STAGES deep, __syncthreads.
// Steps B, C (flash_wg_b*_*, flash_wgmma_tma.cuh): a producer warpgroup issues TMA copies into a
//   STAGES-deep ring guarded by mbarriers (full: data landed, empty: consumers done); setmaxnreg gives
//   its registers to the consumers. Step D (flash_wg_fp8_d128, flash_wgmma_fp8.cuh): FP8 e4m3.
// Layout: q, o (BH, Nq, D), k, v (BH, Nk, D), contiguous. Causal = bottom-right aligned (query i sees
// key j <= i + Nk - Nq). lse (BH, Nq) float32: natural log-sum-exp, -inf for a row that sees no key.
#include "ptx_utils.cuh"
#include "hopper_ptx.cuh"
#include "flash_wgmma_common.cuh"

namespace fa_wg {

// ---------------------------------------------------------------- step A: cp.async + wgmma
template <int D, bool BF16, int NWG, int BK, int STAGES>
__device__ __forceinline__ void forward_a(const u16* __restrict__ q, const u16* __restrict__ k,
                                          const u16* __restrict__ v, u16* __restrict__ o, float* __restrict__ lse,
                                          int nq, int nk, float scale_log2, int causal) {
    constexpr int NT = NWG * 128, BQ = 64 * NWG;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    u16* sQ = reinterpret_cast<u16*>(align1024(smem_raw));
    u16* sK = sQ + BQ * D;
    u16* sV = sK + STAGES * BK * D;

    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31, wq = (tid >> 5) & 3;
    const int g = lane >> 2, t4 = lane & 3;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BQ;       // heavy (late) causal tiles start first
    const size_t bh = blockIdx.y;
    const u16* K = k + bh * nk * D;
    const u16* V = v + bh * nk * D;
    const int offset = nk - nq, n_tiles = tiles_needed<BQ, BK>(q0, nq, nk, causal);

    load_tile_async<D, BQ, NT>(sQ, q + bh * nq * D, q0, nq, tid);
    cp_async_commit();
#pragma unroll
    for (int st = 0; st < STAGES - 1; ++st) {
        if (st < n_tiles) {
            load_tile_async<D, BK, NT>(sK + st * BK * D, K, st * BK, nk, tid);
            load_tile_async<D, BK, NT>(sV + st * BK * D, V, st * BK, nk, tid);
        }
        cp_async_commit();
    }
    float acc[D / 2], m[2] = {TA_NEG_INF, TA_NEG_INF}, l[2] = {0.f, 0.f};
#pragma unroll
    for (int i = 0; i < D / 2; ++i) acc[i] = 0.f;
    const int row0 = q0 + wg * 64 + wq * 16 + g;
    const u32 sq = smem_u32(sQ + wg * 64 * 64);

    for (int t = 0; t < n_tiles; ++t) {
        cp_async_wait<STAGES - 2>();   // Q and tile t landed (this thread's copies)
        fence_proxy_async();           // ... and are visible to the tensor cores' (async) proxy
        __syncthreads();               // everyone's copies; everyone done with tile t-1's buffer
        if (t + STAGES - 1 < n_tiles) {
            const int st = (t + STAGES - 1) % STAGES, kt = (t + STAGES - 1) * BK;
            load_tile_async<D, BK, NT>(sK + st * BK * D, K, kt, nk, tid);
            load_tile_async<D, BK, NT>(sV + st * BK * D, V, kt, nk, tid);
        }
        cp_async_commit();
        const u32 sk = smem_u32(sK + (t % STAGES) * BK * D), sv = smem_u32(sV + (t % STAGES) * BK * D);
        const int k0 = t * BK;
        float s[BK / 2];
        u32 pa[BK / 16][4];
        wgmma_fence();
        issue_qk<D, BQ, BK, BF16>(s, sq, sk);
        wgmma_commit();
        wgmma_wait<0>();
        reg_fence(s);
        float a0, a1;
        softmax_any<BK, BF16>(s, m, l, a0, a1, row0, q0, k0, nk, causal, offset, scale_log2, t4);
        pack_p<BK, BF16>(s, pa);
        rescale<D>(acc, a0, a1);
        wgmma_fence();
        issue_pv<D, BK, BF16>(acc, pa, sv);
        wgmma_commit();
        wgmma_wait<0>();
        reg_fence(acc);
    }
    cp_async_wait<0>();
    write_out<D, BF16>(acc, l, m, o + bh * nq * D, lse + bh * nq, row0, nq, scale_log2, t4);
}


// ---------------------------------------------------------------- layout self-test (one warpgroup)
// C1 (64 x 128) = A B^T with A (64 x 128), B (128 x 128) row-major: shared/shared, both K-major.
// C2 (64 x 128) = A W with W (128 x 128) row-major: A from registers, W MN-major (the P V case),
// descriptor LBO/SBO given at run time so one launch tells which assignment the hardware wants.
template <bool BF16>
__device__ void layout_test(const u16* A, const u16* B, const u16* W, float* C1, float* C2, int lbo, int sbo) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    u16* sA = reinterpret_cast<u16*>(align1024(smem_raw));
    u16* sB = sA + 64 * 128;
    u16* sW = sB + 128 * 128;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t4 = lane & 3;
    load_tile_async<128, 64, 128>(sA, A, 0, 64, tid);
    load_tile_async<128, 128, 128>(sB, B, 0, 128, tid);
    load_tile_async<128, 128, 128>(sW, W, 0, 128, tid);
    cp_async_commit();
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();
    float c[64];
    wgmma_fence();
    issue_qk<128, 64, 128, BF16>(c, smem_u32(sA), smem_u32(sB));
    wgmma_commit();
    wgmma_wait<0>();
    reg_fence(c);
    const int r0 = 16 * w + g;
    for (int i = 0; i < 16; ++i)
        for (int e = 0; e < 4; ++e) C1[(r0 + (e >> 1) * 8) * 128 + 8 * i + 2 * t4 + (e & 1)] = c[4 * i + e];
    u32 a[8][4];
    for (int kk = 0; kk < 8; ++kk)
        for (int j = 0; j < 4; ++j) {
            const int r = r0 + (j & 1) * 8, col = kk * 16 + (j >> 1) * 8 + 2 * t4;
            a[kk][j] = (u32)A[r * 128 + col] | ((u32)A[r * 128 + col + 1] << 16);
        }
    for (int i = 0; i < 64; ++i) c[i] = 0.f;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 8; ++kk)
        mma_rs<BF16, 128, 1>(c, a[kk], make_desc(smem_u32(sW) + kk * 16 * 128, lbo, sbo), 1);
    wgmma_commit();
    wgmma_wait<0>();
    reg_fence(c);
    for (int i = 0; i < 16; ++i)
        for (int e = 0; e < 4; ++e) C2[(r0 + (e >> 1) * 8) * 128 + 8 * i + 2 * t4 + (e & 1)] = c[4 * i + e];
}

}  // namespace fa_wg

#include "flash_wgmma_tma.cuh"

extern "C" __global__ void __launch_bounds__(128, 1)
wg_layout_test_f16(const u16* A, const u16* B, const u16* W, float* C1, float* C2, int lbo, int sbo) {
    fa_wg::layout_test<false>(A, B, W, C1, C2, lbo, sbo);
}

// step A kernels: flash_wg_a_<f16|bf16>_d<D>_w<NWG>k<BK>s<STAGES>; shared bytes
// (64 NWG + 2 STAGES BK) D 2 + 1024 (alignment slack); hopper.py holds the same table
#define TA_WG_A(NAME, D, BF16, NWG, BK, STAGES)                                                        \
    extern "C" __global__ void __launch_bounds__(NWG * 128, 1)                                        \
    NAME(const u16* q, const u16* k, const u16* v, u16* o, float* lse, int nq, int nk, float scale_log2, int causal) { \
        fa_wg::forward_a<D, BF16, NWG, BK, STAGES>(q, k, v, o, lse, nq, nk, scale_log2, causal);         \
    }
#define TA_WG_A_BOTH(D, NWG, BK, STAGES)                                                                 \
    TA_WG_A(flash_wg_a_f16_d##D##_w##NWG##k##BK##s##STAGES, D, false, NWG, BK, STAGES)                  \
    TA_WG_A(flash_wg_a_bf16_d##D##_w##NWG##k##BK##s##STAGES, D, true, NWG, BK, STAGES)

TA_WG_A_BOTH(64, 2, 128, 2)
TA_WG_A_BOTH(128, 2, 128, 2)
TA_WG_A_BOTH(64, 1, 128, 2)
TA_WG_A_BOTH(128, 1, 128, 2)

// steps B/C kernels: flash_wg_<b|bo|bop>_<f16|bf16>_d<D>_w<NWG>k<BK>s<STAGES>; 128 (NWG + 1) threads;
// shared bytes (64 NWG + 2 STAGES BK) D 2 + 2048 (alignment slack + mbarriers)
#define TA_WG_B(NAME, D, BF16, NWG, BK, STAGES, OVL, PP)                                               \
    extern "C" __global__ void __launch_bounds__((NWG + 1) * 128, 1)                                  \
    NAME(const unsigned char* tmaps, u16* o, float* lse, int nq, int nk, float scale_log2, int causal) { \
        fa_wg::forward_b<D, BF16, NWG, BK, STAGES, OVL, PP>(tmaps, o, lse, nq, nk, scale_log2, causal);  \
    }
#define TA_WG_B_BOTH(STEP, D, NWG, BK, STAGES, OVL, PP)                                                   \
    TA_WG_B(flash_wg_##STEP##_f16_d##D##_w##NWG##k##BK##s##STAGES, D, false, NWG, BK, STAGES, OVL, PP)   \
    TA_WG_B(flash_wg_##STEP##_bf16_d##D##_w##NWG##k##BK##s##STAGES, D, true, NWG, BK, STAGES, OVL, PP)

TA_WG_B_BOTH(b, 64, 2, 128, 2, false, false)
TA_WG_B_BOTH(b, 128, 2, 128, 2, false, false)
TA_WG_B_BOTH(bo, 64, 2, 128, 2, true, false)
TA_WG_B_BOTH(bo, 128, 2, 128, 2, true, false)
TA_WG_B_BOTH(bop, 64, 2, 128, 2, true, true)
TA_WG_B_BOTH(bop, 128, 2, 128, 2, true, true)
TA_WG_B_BOTH(bop, 128, 2, 64, 2, true, true)
TA_WG_B_BOTH(bop, 64, 2, 128, 3, true, true)
TA_WG_B_BOTH(b, 64, 3, 128, 2, false, false)

// step D: FP8 (e4m3) forward, d = 128 (flash_wg_fp8_d128) and its quantiser (fp8_quant_f16)
#include "flash_wgmma_fp8.cuh"
