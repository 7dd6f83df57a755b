// Step D (issue 14): FP8 (e4m3) forward, d = 128, included at the end of flash_wgmma.cu.
//
// 8-bit wgmma reads both operands K-major (no transpose bit), so V is stored transposed: V^T (BH, 128,
// Npad) with the keys along the row. wgmma's 8-bit A fragment wants keys 4 t4 .. 4 t4 + 3 of a 32-key
// chunk in one register, while the S accumulator hands thread t4 the keys 2 t4, 2 t4 + 1, 8 + 2 t4,
// 9 + 2 t4 (n8 blocks 0, 1; +16 for blocks 2, 3). Instead of shuffling P between lanes, the quantiser
// writes V^T's keys in that order (fp8_key_slot), so P's fragments are packed from registers as they are.
// Scaling: Q per 128-row block (one scale per thread block of the attention kernel), K and V per head;
// x ~ scale * e4m3(x / scale), scale = amax / 448. P in [0, 1] is stored as e4m3(256 P) (more of it
// stays above e4m3's smallest subnormal 2^-9); O = acc * v_scale / (256 l).
#pragma once

namespace fa_wg {

// physical key (0..31 within a 32-key chunk) -> its column in V^T (the A fragment's k index)
__device__ __forceinline__ int fp8_key_slot(int p) {
    const int c = p & 15, rem = c & 7;
    return (p & ~15) + 4 * (rem >> 1) + 2 * (c >> 3) + (rem & 1);
}

__device__ __forceinline__ u32 cvt_e4m3x2(float lo, float hi) {    // low byte = lo
    unsigned short r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
}

// x (BH, n, 128) fp16 -> y fp8. mode 0 (Q): y (BH, n, 128), scale per 128-row block computed and
// written to scale_out[bh * gridDim.x + block]; mode 2 (K): y (BH, n, 128) with the scale head_scale[bh];
// mode 1 (V): y = V^T (BH, 128, npad) with key slots permuted, scale head_scale[bh]. One thread block of 256 threads per (128-row block, bh).
__device__ void fp8_quant(const u16* __restrict__ x, unsigned char* __restrict__ y, float* __restrict__ scale_out,
                          const float* __restrict__ head_scale, int n, int npad, int mode) {
    __shared__ float red[8];
    const int bh = blockIdx.y, r0 = blockIdx.x * 128, tid = threadIdx.x;
    const u16* X = x + (size_t)bh * n * 128;
    float scale;
    if (mode == 0) {
        float amax = 0.f;
        for (int i = tid; i < 128 * 64; i += 256) {           // pairs of columns
            const int r = r0 + i / 64, c = (i % 64) * 2;
            if (r < n) amax = fmaxf(amax, fmaxf(fabsf(to_float<false>(X[(size_t)r * 128 + c])),
                                                fabsf(to_float<false>(X[(size_t)r * 128 + c + 1]))));
        }
        for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        if ((tid & 31) == 0) red[tid >> 5] = amax;
        __syncthreads();
        amax = red[0];
        for (int w = 1; w < 8; ++w) amax = fmaxf(amax, red[w]);
        scale = amax > 0.f ? amax / 448.f : 1.f;
        if (tid == 0) scale_out[bh * gridDim.x + blockIdx.x] = scale;
    } else {
        scale = head_scale[bh];
    }
    const float inv = 1.f / scale;
    for (int i = tid; i < 128 * 64; i += 256) {
        const int r = r0 + i / 64, c = (i % 64) * 2;
        if (r >= n) continue;
        const u32 v2 = cvt_e4m3x2(to_float<false>(X[(size_t)r * 128 + c]) * inv, to_float<false>(X[(size_t)r * 128 + c + 1]) * inv);
        if (mode != 1) {
            *reinterpret_cast<unsigned short*>(y + ((size_t)bh * n + r) * 128 + c) = (unsigned short)v2;
        } else {
            const int slot = (r & ~31) + fp8_key_slot(r & 31);
            y[((size_t)bh * 128 + c) * npad + slot] = (unsigned char)(v2 & 0xff);
            y[((size_t)bh * 128 + c + 1) * npad + slot] = (unsigned char)(v2 >> 8);
        }
    }
}

// P (fp32, accumulator layout of a 64 x 128 tile) -> e4m3 A fragments of the four 32-key chunks
__device__ __forceinline__ void pack_p_fp8(const float (&s)[64], u32 (&pa)[4][4]) {
    constexpr float PS = 256.f;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        const float* b = s + 16 * kk;           // n8 blocks 4kk .. 4kk+3 start at 16kk, +4, +8, +12
        pa[kk][0] = cvt_e4m3x2(b[0] * PS, b[1] * PS) | (cvt_e4m3x2(b[4] * PS, b[5] * PS) << 16);
        pa[kk][1] = cvt_e4m3x2(b[2] * PS, b[3] * PS) | (cvt_e4m3x2(b[6] * PS, b[7] * PS) << 16);
        pa[kk][2] = cvt_e4m3x2(b[8] * PS, b[9] * PS) | (cvt_e4m3x2(b[12] * PS, b[13] * PS) << 16);
        pa[kk][3] = cvt_e4m3x2(b[10] * PS, b[11] * PS) | (cvt_e4m3x2(b[14] * PS, b[15] * PS) << 16);
    }
}

// The step-B pipeline (TMA producer warpgroup, two consumer warpgroups of 64 rows, 128-key tiles,
// 2 stages) on fp8 tiles: every tile is 128 rows x 128 bytes = one 128B-swizzled panel.
// tmaps: Q8 (BH, nq, 128), K8 (BH, nk, 128), V^T8 (BH, 128, npad) as uint8 tensor maps.
__device__ __forceinline__ void forward_fp8(const unsigned char* __restrict__ tmaps, const float* __restrict__ qscale,
                                            const float* __restrict__ kscale, const float* __restrict__ vscale,
                                            u16* __restrict__ o, float* __restrict__ lse, int nq, int nk,
                                            float scale_log2, int causal) {
    constexpr int BQ = 128, BK = 128, STAGES = 2, TILE = 128 * 128;   // bytes per tile
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char* sQ = align1024(smem_raw);
    unsigned char* sK = sQ + TILE;
    unsigned char* sV = sK + STAGES * TILE;
    u64* bars = reinterpret_cast<u64*>(sV + STAGES * TILE);
    u64* barQ = bars;
    u64* fullK = bars + 1;
    u64* fullV = fullK + STAGES;
    u64* emptyK = fullV + STAGES;
    u64* emptyV = emptyK + STAGES;
    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31, wq = (tid >> 5) & 3;
    const int qblk = gridDim.x - 1 - blockIdx.x, q0 = qblk * BQ, bh = blockIdx.y;
    const int offset = nk - nq, n_tiles = tiles_needed<BQ, BK>(q0, nq, nk, causal);
    const void* tmQ = tmaps;
    const void* tmK = tmaps + 128;
    const void* tmV = tmaps + 256;
    if (tid == 0) {
        mbar_init(barQ, 1);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(&fullK[s], 1); mbar_init(&fullV[s], 1);
            mbar_init(&emptyK[s], 8); mbar_init(&emptyV[s], 8);
        }
        mbar_fence_init();
    }
    __syncthreads();
    if (wg == 0) {
        setmaxnreg_dec<24>();
        if (tid == 0) {
            mbar_expect_tx(barQ, TILE);
            tma_load_3d(sQ, tmQ, barQ, 0, q0, bh);
            for (int t = 0; t < n_tiles; ++t) {
                const int s = t % STAGES, ph = (t / STAGES) & 1;
                mbar_wait(&emptyK[s], ph ^ 1);
                mbar_expect_tx(&fullK[s], TILE);
                tma_load_3d(sK + s * TILE, tmK, &fullK[s], 0, t * BK, bh);
                mbar_wait(&emptyV[s], ph ^ 1);
                mbar_expect_tx(&fullV[s], TILE);
                tma_load_3d(sV + s * TILE, tmV, &fullV[s], t * BK, 0, bh);   // keys t*BK.., all 128 d rows
            }
        }
    } else {
        setmaxnreg_inc<240>();
        const int c = wg - 1, g = lane >> 2, t4 = lane & 3;
        const int row0 = q0 + c * 64 + wq * 16 + g;
        const u32 sq = smem_u32(sQ + c * 64 * 128);
        // scores in log2 units: c = scale * log2(e) * q_scale * k_scale (constant within the block)
        const float cl2 = scale_log2 * qscale[bh * gridDim.x + qblk] * kscale[bh];
        float acc[64], m[2] = {TA_NEG_INF, TA_NEG_INF}, l[2] = {0.f, 0.f};
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] = 0.f;
        mbar_wait(barQ, 0);
        for (int t = 0; t < n_tiles; ++t) {
            const int s_ = t % STAGES, ph = (t / STAGES) & 1;
            float s[64];
            u32 pa[4][4];
            mbar_wait(&fullK[s_], ph);
            const u32 sk = smem_u32(sK + s_ * TILE), sv = smem_u32(sV + s_ * TILE);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < 4; ++kk)           // 32 fp8 = 32 bytes per k-step, as 16 fp16 before
                wgmma_fp8_ss_n128(s, make_desc(sq + kk * 32, 16, 1024), make_desc(sk + kk * 32, 16, 1024), kk > 0);
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence(s);
            if (lane == 0) mbar_arrive(&emptyK[s_]);
            float a0, a1;
            softmax_any<BK, false>(s, m, l, a0, a1, row0, q0, t * BK, nk, causal, offset, cl2, t4);
            pack_p_fp8(s, pa);
            rescale<128>(acc, a0, a1);
            mbar_wait(&fullV[s_], ph);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < 4; ++kk)           // B = V^T tile: 128 d rows x 128 key slots, K-major
                wgmma_fp8_rs_n128(acc, pa[kk], make_desc(sv + kk * 32, 16, 1024), 1);
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence(acc);
            if (lane == 0) mbar_arrive(&emptyV[s_]);
        }
        const float vs = vscale[bh] * (1.f / 256.f);
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] *= vs;
        write_out<128, false>(acc, l, m, o + (size_t)bh * nq * 128, lse + (size_t)bh * nq, row0, nq, cl2, t4);
    }
}

}  // namespace fa_wg

extern "C" __global__ void __launch_bounds__(256)
fp8_quant_f16(const u16* x, unsigned char* y, float* scale_out, const float* head_scale, int n, int npad, int mode) {
    fa_wg::fp8_quant(x, y, scale_out, head_scale, n, npad, mode);
}

// shared bytes: Q + 2 K + 2 V^T tiles of 16 KB + 2048 (alignment slack + mbarriers)
extern "C" __global__ void __launch_bounds__(384, 1)
flash_wg_fp8_d128(const unsigned char* tmaps, const float* qscale, const float* kscale, const float* vscale,
                  u16* o, float* lse, int nq, int nk, float scale_log2, int causal) {
    fa_wg::forward_fp8(tmaps, qscale, kscale, vscale, o, lse, nq, nk, scale_log2, causal);
}
