// Tile helpers shared by every Hopper forward step (issue 14, chapter 07 section 9): the 128-byte
// swizzled panel layout, cp.async tile loads, the wgmma issue loops for S = Q K^T and O += P V, the
// online softmax on wgmma accumulators, the epilogue. Included by flash_wgmma.cu (namespace fa_wg).
#pragma once
#include "ptx_utils.cuh"
#include "hopper_ptx.cuh"

namespace fa_wg {

// element offset of (row, col) in a tile of R rows x D cols stored as D/64 panels of R x 64,
// each row 128 bytes with its 16-byte chunks XOR-swizzled by (row & 7): the 128B swizzle layout
template <int R>
__device__ __forceinline__ int pswz(int row, int col) {
    return (col >> 6) * R * 64 + row * 64 + ((((col >> 3) & 7) ^ (row & 7)) << 3);
}

// rows [r0, r0 + R) of a (n, D) matrix -> panelled swizzled tile; rows >= n zero-filled (cp.async)
template <int D, int R, int NT>
__device__ __forceinline__ void load_tile_async(u16* s, const u16* g, int r0, int n, int tid) {
    constexpr int CPR = D / 8, TOTAL = R * CPR;
    static_assert(TOTAL % NT == 0, "tile / thread shape");
#pragma unroll
    for (int i = 0; i < TOTAL / NT; ++i) {
        const int idx = tid + i * NT, row = idx / CPR, col = (idx % CPR) * 8;
        const bool ok = r0 + row < n;
        cp_async16(smem_u32(s + pswz<R>(row, col)), ok ? g + (size_t)(r0 + row) * D + col : g, ok ? 16 : 0);
    }
}

// d(64 x N) (+)= A B: shared-memory A (descriptor da), or register A (a[4]); TB = 1: B is MN-major
template <bool BF16, int N, int TB>
__device__ __forceinline__ void mma_ss(float (&d)[N / 2], u64 da, u64 db, int scale_d) {
    if constexpr (N == 64) wgmma_ss_n64<BF16, TB>(d, da, db, scale_d);
    else wgmma_ss_n128<BF16, TB>(d, da, db, scale_d);
}
template <bool BF16, int N, int TB>
__device__ __forceinline__ void mma_rs(float (&d)[N / 2], const u32 a[4], u64 db, int scale_d) {
    if constexpr (N == 64) wgmma_rs_n64<BF16, TB>(d, a, db, scale_d);
    else wgmma_rs_n128<BF16, TB>(d, a, db, scale_d);
}

// S(64 x BK) = Q_wg K^T: sq = shared address of this warpgroup's 64 Q rows in panel 0 (panels BQ*128
// bytes apart), sk = shared address of the K tile (panels BK*128 bytes apart). Issues D/16 wgmmas.
template <int D, int BQ, int BK, bool BF16>
__device__ __forceinline__ void issue_qk(float (&s)[BK / 2], u32 sq, u32 sk) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        const u32 off = (kk & 3) * 32;     // 16 elements = 32 bytes along the row
        const u64 da = make_desc(sq + (kk >> 2) * BQ * 128 + off, 16, 1024);
        const u64 db = make_desc(sk + (kk >> 2) * BK * 128 + off, 16, 1024);
        mma_ss<BF16, BK, 0>(s, da, db, kk > 0);            // kk = 0 overwrites (scale-d = 0)
    }
}

// O(64 x D) += P V: P as 16-bit A fragments pa[BK/16][4]; sv = shared address of the V tile.
// Keys kk*16 .. kk*16+15 start 16 rows * 128 bytes further; LBO = next 64-column panel of d.
template <int D, int BK, bool BF16>
__device__ __forceinline__ void issue_pv(float (&o)[D / 2], const u32 (&pa)[BK / 16][4], u32 sv) {
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk)
        mma_rs<BF16, D, 1>(o, pa[kk], make_desc(sv + kk * 16 * 128, BK * 128, 1024), 1);
}

template <bool B>
struct BoolC { static constexpr bool value = B; };

// Online softmax of one S tile (the flash_mma.cu algorithm on the wgmma accumulator layout):
// s[4i + e]: n8 block i, e = 0,1 -> row g, cols 8i + 2 t4 + e; e = 2,3 -> row g + 8.
// Masks (MASK) keys >= nk and, when causal, keys > row + offset; updates m, l; rescales o by
// returns alpha = 2^(c (m_old - m_new)) (the caller rescales O); overwrites s with P = 2^(c s - c m)
// in fp32 (pack_p then converts it to the 16-bit A fragments of the P V wgmma).
template <int BK, bool BF16, bool MASK>
__device__ __forceinline__ void softmax_tile(float (&s)[BK / 2], float (&m)[2], float (&l)[2],
                                             float& alpha0, float& alpha1, int row0, int k0, int nk,
                                             int causal, int offset, float scale_log2, int t4) {
    // masked scores read as -inf; s itself is never written (it is a wgmma accumulator: writing it
    // while another wgmma is in flight makes ptxas serialise the wgmmas, warning C7513)
    auto sv = [&](int i, int e) {
        if constexpr (MASK) {
            const int col = k0 + i * 8 + 2 * t4 + (e & 1), row = row0 + (e >> 1) * 8;
            if (col >= nk || (causal && col > row + offset)) return TA_NEG_INF;
        }
        return s[4 * i + e];
    };
    float mx0 = m[0], mx1 = m[1];
#pragma unroll
    for (int i = 0; i < BK / 8; ++i) {
        mx0 = fmaxf(mx0, fmaxf(sv(i, 0), sv(i, 1)));
        mx1 = fmaxf(mx1, fmaxf(sv(i, 2), sv(i, 3)));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float mu0 = (mx0 == TA_NEG_INF) ? 0.f : mx0 * scale_log2;     // fully masked so far: no NaN
    const float mu1 = (mx1 == TA_NEG_INF) ? 0.f : mx1 * scale_log2;
    alpha0 = fast_exp2(m[0] * scale_log2 - mu0);                          // m = -inf -> 0
    alpha1 = fast_exp2(m[1] * scale_log2 - mu1);
    m[0] = mx0;
    m[1] = mx1;
    float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
    for (int i = 0; i < BK / 8; ++i) {
        const float p0 = fast_exp2(fmaf(sv(i, 0), scale_log2, -mu0));
        const float p1 = fast_exp2(fmaf(sv(i, 1), scale_log2, -mu0));
        const float p2 = fast_exp2(fmaf(sv(i, 2), scale_log2, -mu1));
        const float p3 = fast_exp2(fmaf(sv(i, 3), scale_log2, -mu1));
        ps0 += p0 + p1;
        ps1 += p2 + p3;
        s[4 * i] = p0; s[4 * i + 1] = p1; s[4 * i + 2] = p2; s[4 * i + 3] = p3;   // P in place (fp32)
    }
    l[0] = l[0] * alpha0 + ps0;
    l[1] = l[1] * alpha1 + ps1;
}

// P (fp32, accumulator layout) -> 16-bit A fragments: n8 blocks 2kk, 2kk+1 form fragment kk
template <int BK, bool BF16>
__device__ __forceinline__ void pack_p(const float (&s)[BK / 2], u32 (&pa)[BK / 16][4]) {
#pragma unroll
    for (int i = 0; i < BK / 8; ++i) {
        pa[i >> 1][(i & 1) * 2 + 0] = pack2<BF16>(s[4 * i], s[4 * i + 1]);
        pa[i >> 1][(i & 1) * 2 + 1] = pack2<BF16>(s[4 * i + 2], s[4 * i + 3]);
    }
}

template <int D>
__device__ __forceinline__ void rescale(float (&o)[D / 2], float alpha0, float alpha1) {
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
        o[4 * i] *= alpha0; o[4 * i + 1] *= alpha0;
        o[4 * i + 2] *= alpha1; o[4 * i + 3] *= alpha1;
    }
}

// softmax of tile k0 with the element mask only where the tile crosses the diagonal or the ragged end
template <int BK, bool BF16>
__device__ __forceinline__ void softmax_any(float (&s)[BK / 2], float (&m)[2], float (&l)[2],
                                            float& a0, float& a1, int row0, int q0, int k0, int nk, int causal,
                                            int offset, float scale_log2, int t4) {
    if (k0 + BK > nk || (causal && k0 + BK - 1 > q0 + offset))
        softmax_tile<BK, BF16, true>(s, m, l, a0, a1, row0, k0, nk, causal, offset, scale_log2, t4);
    else
        softmax_tile<BK, BF16, false>(s, m, l, a0, a1, row0, k0, nk, causal, offset, scale_log2, t4);
}

// O = acc / l, lse; rows row0 and row0 + 8 of this lane (block-local rows already offset by q0)
template <int D, bool BF16>
__device__ __forceinline__ void write_out(const float (&o)[D / 2], float (&l)[2], const float (&m)[2], u16* O,
                                          float* lse_bh, int row0, int nq, float scale_log2, int t4) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    }
    const float inv0 = l[0] > 0.f ? 1.f / l[0] : 0.f, inv1 = l[1] > 0.f ? 1.f / l[1] : 0.f;
    const int row1 = row0 + 8;
    if (t4 == 0) {          // lse = (m c + log2 l) ln 2 with c = scale log2 e; -inf if no key
        if (row0 < nq) lse_bh[row0] = l[0] > 0.f ? fmaf(m[0], scale_log2, log2f(l[0])) * TA_LN2 : TA_NEG_INF;
        if (row1 < nq) lse_bh[row1] = l[1] > 0.f ? fmaf(m[1], scale_log2, log2f(l[1])) * TA_LN2 : TA_NEG_INF;
    }
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
        const int col = i * 8 + 2 * t4;
        if (row0 < nq) *reinterpret_cast<u32*>(O + (size_t)row0 * D + col) = pack2<BF16>(o[4 * i] * inv0, o[4 * i + 1] * inv0);
        if (row1 < nq) *reinterpret_cast<u32*>(O + (size_t)row1 * D + col) = pack2<BF16>(o[4 * i + 2] * inv1, o[4 * i + 3] * inv1);
    }
}

// number of K/V tiles block q0..q0+BQ-1 needs (causal: up to the last key its last row sees)
template <int BQ, int BK>
__device__ __forceinline__ int tiles_needed(int q0, int nq, int nk, int causal) {
    int n = (nk + BK - 1) / BK;
    if (causal) {
        const int last = min(q0 + BQ, nq) - 1 + nk - nq;
        n = last < 0 ? 0 : min(n, last / BK + 1);
    }
    return n;
}

__device__ __forceinline__ unsigned char* align1024(unsigned char* p) {
    const u32 a = smem_u32(p);
    return p + (((a + 1023u) & ~1023u) - a);      // swizzle atoms must start 1024-byte aligned
}

}  // namespace fa_wg
