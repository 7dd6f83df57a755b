// Row softmax for the naive three-kernel baseline (chapter 07): S = Q K^T (cuBLAS through CuPy),
// P = softmax(scale * S) with an optional causal mask (this kernel), O = P V (cuBLAS).
// One block of 256 threads per row; three passes over the row (max, sum, write), fp32 arithmetic,
// P written in place over S in the input's dtype. s: (rows, nk), row r is query r % nq.
#include "ptx_utils.cuh"

namespace sm_rows {

constexpr int NT = 256;

__device__ __forceinline__ float block_reduce(float x, bool is_max, float* red) {
    for (int w = 16; w > 0; w >>= 1) {
        float y = __shfl_xor_sync(0xffffffffu, x, w);
        x = is_max ? fmaxf(x, y) : x + y;
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();                                 // red may still be read by a previous reduction
    if (lane == 0) red[warp] = x;
    __syncthreads();
    x = red[0];
    for (int i = 1; i < NT / 32; ++i) x = is_max ? fmaxf(x, red[i]) : x + red[i];
    return x;
}

template <typename T, int KIND>   // KIND 0: float, 1: fp16 bits, 2: bf16 bits
__device__ __forceinline__ float load(const T* p) {
    if constexpr (KIND == 0) return *reinterpret_cast<const float*>(p);
    else return to_float<KIND == 2>(*reinterpret_cast<const u16*>(p));
}
template <typename T, int KIND>
__device__ __forceinline__ void store(T* p, float x) {
    if constexpr (KIND == 0) *reinterpret_cast<float*>(p) = x;
    else *reinterpret_cast<u16*>(p) = from_float<KIND == 2>(x);
}

template <typename T, int KIND>
__device__ void softmax_rows(T* s, int nq, int nk, float scale_log2, int causal) {
    __shared__ float red[NT / 32];
    const size_t r = blockIdx.x;
    const int i = (int)(r % nq);
    T* row = s + r * nk;
    // keys j < limit are allowed (causal: j <= i + nk - nq)
    const int limit = causal ? max(0, min(nk, i + nk - nq + 1)) : nk;
    float mx = TA_NEG_INF;
    for (int j = threadIdx.x; j < limit; j += NT) mx = fmaxf(mx, load<T, KIND>(row + j));
    mx = block_reduce(mx, true, red);
    const float mu = (mx == TA_NEG_INF) ? 0.f : mx * scale_log2;
    float sum = 0.f;
    for (int j = threadIdx.x; j < limit; j += NT) sum += fast_exp2(fmaf(load<T, KIND>(row + j), scale_log2, -mu));
    sum = block_reduce(sum, false, red);
    const float inv = sum > 0.f ? 1.f / sum : 0.f;    // a row with no allowed key gives 0
    for (int j = threadIdx.x; j < nk; j += NT) {
        float p = j < limit ? fast_exp2(fmaf(load<T, KIND>(row + j), scale_log2, -mu)) * inv : 0.f;
        store<T, KIND>(row + j, p);
    }
}

}  // namespace sm_rows

extern "C" __global__ void __launch_bounds__(256) softmax_rows_f32(float* s, int nq, int nk, float scale_log2, int causal) {
    sm_rows::softmax_rows<float, 0>(s, nq, nk, scale_log2, causal);
}
extern "C" __global__ void __launch_bounds__(256) softmax_rows_f16(u16* s, int nq, int nk, float scale_log2, int causal) {
    sm_rows::softmax_rows<u16, 1>(s, nq, nk, scale_log2, causal);
}
extern "C" __global__ void __launch_bounds__(256) softmax_rows_bf16(u16* s, int nq, int nk, float scale_log2, int causal) {
    sm_rows::softmax_rows<u16, 2>(s, nq, nk, scale_log2, causal);
}
