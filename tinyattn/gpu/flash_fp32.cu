// FlashAttention-2 forward on CUDA cores, fp32 (chapter 07): the Numba kernel's design in CUDA C.
//
// Block = 8 x 16 threads, one per (64-row query tile, batch*head). Thread (tx, ty) owns query rows
// 4ty..4ty+3, the scores of keys tx + 8j (j < 4) of each 32-key tile, and output columns tx + 8c.
// Q (pre-scaled by scale*log2 e) sits in shared memory for the whole block; each K/V tile is
// staged in shared memory (K transposed); S and O live in registers. A row's 8 owners are 8
// consecutive lanes of one warp, so row max / row sum are warp shuffles (xor 1, 2, 4), not shared
// memory as in the Numba version. P goes through shared memory for O += P V.
// Layout: q, o (BH, Nq, D); k, v (BH, Nk, D) float32 contiguous; causal is bottom-right aligned.
// lse (BH, Nq) float32: natural log-sum-exp of each row's scaled scores = (m + log2 l) ln 2, -inf if
// the row sees no key (what the backward pass recomputes P from).
#include "ptx_utils.cuh"

namespace fa_f32 {

constexpr int TX = 8, TY = 16, RQ = 4, CK = 4;
constexpr int BQ = TY * RQ, BK = TX * CK, NT = TX * TY;
constexpr int KP = BK + 1;                       // padded row: column reads hit distinct banks

template <int D>
__device__ __forceinline__ void forward(const float* __restrict__ q, const float* __restrict__ k,
                                        const float* __restrict__ v, float* __restrict__ o, float* __restrict__ lse,
                                        int nq, int nk, float scale_log2, int causal) {
    constexpr int QP = D + 1, DC = D / TX;
    extern __shared__ float smem[];
    float* sQ = smem;                 // [BQ][QP]
    float* sKT = sQ + BQ * QP;        // [D][KP]   sKT[c][j] = K[k0 + j][c]
    float* sV = sKT + D * KP;         // [BK][D]
    float* sP = sV + BK * D;          // [BQ][KP]

    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * TX + tx;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BQ;
    const size_t bh = blockIdx.y;
    const float* Q = q + bh * nq * D;
    const float* K = k + bh * nk * D;
    const float* V = v + bh * nk * D;
    float* O = o + bh * nq * D;
    const int offset = nk - nq;

    for (int idx = tid; idx < BQ * D; idx += NT) {
        int r = idx / D, c = idx % D;
        sQ[r * QP + c] = (q0 + r < nq) ? Q[(size_t)(q0 + r) * D + c] * scale_log2 : 0.f;
    }
    int n_tiles = (nk + BK - 1) / BK;
    if (causal) {
        int last = min(q0 + BQ, nq) - 1 + offset;
        n_tiles = last < 0 ? 0 : min(n_tiles, last / BK + 1);
    }

    float acc[RQ][DC], m[RQ], l[RQ];
#pragma unroll
    for (int i = 0; i < RQ; ++i) {
        m[i] = TA_NEG_INF;
        l[i] = 0.f;
#pragma unroll
        for (int c = 0; c < DC; ++c) acc[i][c] = 0.f;
    }

    for (int t = 0; t < n_tiles; ++t) {
        const int k0 = t * BK;
        __syncthreads();                                   // previous tile fully used (and sQ written)
        for (int idx = tid; idx < BK * D; idx += NT) {
            int r = idx / D, c = idx % D;
            bool ok = k0 + r < nk;
            sKT[c * KP + r] = ok ? K[(size_t)(k0 + r) * D + c] : 0.f;
            sV[r * D + c] = ok ? V[(size_t)(k0 + r) * D + c] : 0.f;
        }
        __syncthreads();

        float s[RQ][CK];
#pragma unroll
        for (int i = 0; i < RQ; ++i)
#pragma unroll
            for (int j = 0; j < CK; ++j) s[i][j] = 0.f;
#pragma unroll 8
        for (int c = 0; c < D; ++c) {
            float qv[RQ], kv[CK];
#pragma unroll
            for (int i = 0; i < RQ; ++i) qv[i] = sQ[(ty * RQ + i) * QP + c];
#pragma unroll
            for (int j = 0; j < CK; ++j) kv[j] = sKT[c * KP + tx + TX * j];
#pragma unroll
            for (int i = 0; i < RQ; ++i)
#pragma unroll
                for (int j = 0; j < CK; ++j) s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
        }

#pragma unroll
        for (int i = 0; i < RQ; ++i) {
            const int qi = q0 + ty * RQ + i;
            float mx = m[i];
#pragma unroll
            for (int j = 0; j < CK; ++j) {
                int kj = k0 + tx + TX * j;
                if (kj >= nk || (causal && kj > qi + offset)) s[i][j] = TA_NEG_INF;
                mx = fmaxf(mx, s[i][j]);
            }
#pragma unroll
            for (int w = 1; w < TX; w <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, w));
            const float mu = (mx == TA_NEG_INF) ? 0.f : mx;           // fully masked so far: no NaN
            const float alpha = fast_exp2(m[i] - mu);
            m[i] = mx;
            float ps = 0.f;
#pragma unroll
            for (int j = 0; j < CK; ++j) {
                float p = fast_exp2(s[i][j] - mu);
                sP[(ty * RQ + i) * KP + tx + TX * j] = p;
                ps += p;
            }
#pragma unroll
            for (int w = 1; w < TX; w <<= 1) ps += __shfl_xor_sync(0xffffffffu, ps, w);
            l[i] = l[i] * alpha + ps;
#pragma unroll
            for (int c = 0; c < DC; ++c) acc[i][c] *= alpha;
        }
        __syncwarp();            // P of a row is written and read by the same 8 lanes of one warp

#pragma unroll 4
        for (int j = 0; j < BK; ++j) {
            float pv[RQ];
#pragma unroll
            for (int i = 0; i < RQ; ++i) pv[i] = sP[(ty * RQ + i) * KP + j];
#pragma unroll
            for (int c = 0; c < DC; ++c) {
                float vj = sV[j * D + tx + TX * c];
#pragma unroll
                for (int i = 0; i < RQ; ++i) acc[i][c] = fmaf(pv[i], vj, acc[i][c]);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < RQ; ++i) {
        const int qi = q0 + ty * RQ + i;
        if (qi < nq) {
            const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
#pragma unroll
            for (int c = 0; c < DC; ++c) O[(size_t)qi * D + tx + TX * c] = acc[i][c] * inv;
            if (tx == 0) lse[bh * nq + qi] = l[i] > 0.f ? (m[i] + log2f(l[i])) * TA_LN2 : TA_NEG_INF;
        }
    }
}

}  // namespace fa_f32

// dynamic shared memory: (BQ*(D+1) + D*(BK+1) + BK*D + BQ*(BK+1)) * 4 bytes (~45 KB at D=64, ~91 KB at D=128)
#define TA_FLASH_F32(NAME, D)                                                                       \
    extern "C" __global__ void __launch_bounds__(fa_f32::NT)                                        \
    NAME(const float* q, const float* k, const float* v, float* o, float* lse, int nq, int nk, float scale_log2, int causal) { \
        fa_f32::forward<D>(q, k, v, o, lse, nq, nk, scale_log2, causal);                                 \
    }

TA_FLASH_F32(flash_f32_d64, 64)
TA_FLASH_F32(flash_f32_d128, 128)
