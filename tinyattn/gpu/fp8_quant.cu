// Fused FP8 (e4m3) quantiser for the Hopper FP8 forward (tinyattn/gpu/hopper_fp8.py, issue 14 step D).
//
// Writes exactly what fa_wg::fp8_quant of flash_wgmma_fp8.cuh writes (same scales, same bytes), faster:
// - fp8_amax_kv: one pass over K and V (BH, n, 128) fp16 -> per-head amax, 16-byte loads, block
//   reduction, then atomicMax on the float's bits (non-negative floats order like unsigned ints).
// - fp8_quant_q / _k: one 128-row block per thread block, 16-byte loads (8 halves), 8-byte stores.
//   Q computes its block's amax itself (scale per 128-row block = one attention thread block).
// - fp8_quant_vt: V^T (BH, 128, npad) with key slots permuted (fp8_key_slot): the 128 x 128 block is
//   quantised into shared memory transposed, then written out as 16-byte row segments (coalesced), where
//   the old kernel stored single bytes with a stride of npad.
// x ~ scale * e4m3(x / scale), scale = amax / 448 (1 if amax = 0). Built by NVRTC for sm_90 (needs sm_89+
// for cvt.e4m3x2). 256 threads per block.
typedef unsigned int u32;
typedef unsigned short u16;

__device__ __forceinline__ float h2f(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u32 e4m3x2(float lo, float hi) {          // low byte = lo
    u16 r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ int key_slot(int p) {                   // = fa_wg::fp8_key_slot
    const int c = p & 15, rem = c & 7;
    return (p & ~15) + 4 * (rem >> 1) + 2 * (c >> 3) + (rem & 1);
}

__device__ __forceinline__ float block_max(float v, float* red) {     // all 256 threads get the max
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    v = red[0];
    for (int w = 1; w < 8; ++w) v = fmaxf(v, red[w]);
    return v;
}

// thread t of the block handles 16-byte chunks t, t + 256, ... of the block's 128 rows x 16 chunks
__device__ __forceinline__ float chunk_amax(const uint4& c) {
    const u16* h = reinterpret_cast<const u16*>(&c);
    float m = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) m = fmaxf(m, fabsf(h2f(h[j])));
    return m;
}

// grid (ceil(n / 128), BH, 2): z = 0 K, z = 1 V; amax_bits (2, BH) zeroed before the launch
extern "C" __global__ void __launch_bounds__(256) fp8_amax_kv(const u16* k, const u16* v, u32* amax_bits, int n) {
    __shared__ float red[8];
    const int bh = blockIdx.y, r0 = blockIdx.x * 128;
    const uint4* X = reinterpret_cast<const uint4*>((blockIdx.z ? v : k) + (size_t)bh * n * 128);
    float m = 0.f;
    for (int i = threadIdx.x; i < 128 * 16; i += 256)
        if (r0 + i / 16 < n) m = fmaxf(m, chunk_amax(X[(size_t)(r0 + i / 16) * 16 + i % 16]));
    m = block_max(m, red);
    if (threadIdx.x == 0) atomicMax(amax_bits + blockIdx.z * gridDim.y + bh, __float_as_uint(m));
}

__device__ __forceinline__ uint2 quant8(const uint4& c, float inv) {  // 8 halves -> 8 e4m3 bytes
    const u16* h = reinterpret_cast<const u16*>(&c);
    uint2 r;
    r.x = e4m3x2(h2f(h[0]) * inv, h2f(h[1]) * inv) | (e4m3x2(h2f(h[2]) * inv, h2f(h[3]) * inv) << 16);
    r.y = e4m3x2(h2f(h[4]) * inv, h2f(h[5]) * inv) | (e4m3x2(h2f(h[6]) * inv, h2f(h[7]) * inv) << 16);
    return r;
}

__device__ __forceinline__ float scale_of(float amax) { return amax > 0.f ? amax / 448.f : 1.f; }

// Q: grid (ceil(n / 128), BH); scale_out (BH, gridDim.x) per 128-row block
extern "C" __global__ void __launch_bounds__(256) fp8_quant_q(const u16* x, unsigned char* y, float* scale_out, int n) {
    __shared__ float red[8];
    const int bh = blockIdx.y, r0 = blockIdx.x * 128;
    const uint4* X = reinterpret_cast<const uint4*>(x + (size_t)bh * n * 128);
    uint2* Y = reinterpret_cast<uint2*>(y + (size_t)bh * n * 128);
    uint4 c[8];                                                    // the thread's 8 chunks, loaded once
    float m = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int i = threadIdx.x + 256 * j;
        c[j] = r0 + i / 16 < n ? X[(size_t)(r0 + i / 16) * 16 + i % 16] : make_uint4(0, 0, 0, 0);
        m = fmaxf(m, chunk_amax(c[j]));
    }
    const float scale = scale_of(block_max(m, red)), inv = 1.f / scale;
    if (threadIdx.x == 0) scale_out[bh * gridDim.x + blockIdx.x] = scale;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int i = threadIdx.x + 256 * j;
        if (r0 + i / 16 < n) Y[(size_t)(r0 + i / 16) * 16 + i % 16] = quant8(c[j], inv);
    }
}

// K: grid (ceil(n / 128), BH); per-head scale from amax_bits[bh], also written to scale_out[bh]
extern "C" __global__ void __launch_bounds__(256) fp8_quant_k(const u16* x, unsigned char* y, const u32* amax_bits,
                                                              float* scale_out, int n) {
    const int bh = blockIdx.y, r0 = blockIdx.x * 128;
    const float scale = scale_of(__uint_as_float(amax_bits[bh])), inv = 1.f / scale;
    if (blockIdx.x == 0 && threadIdx.x == 0) scale_out[bh] = scale;
    const uint4* X = reinterpret_cast<const uint4*>(x + (size_t)bh * n * 128);
    uint2* Y = reinterpret_cast<uint2*>(y + (size_t)bh * n * 128);
    for (int i = threadIdx.x; i < 128 * 16; i += 256)
        if (r0 + i / 16 < n) Y[(size_t)(r0 + i / 16) * 16 + i % 16] = quant8(X[(size_t)(r0 + i / 16) * 16 + i % 16], inv);
}

// V^T: grid (ceil(n / 128), BH); y (BH, 128, npad), npad = n rounded up to 16; slots >= n hold 0
extern "C" __global__ void __launch_bounds__(256) fp8_quant_vt(const u16* x, unsigned char* y, const u32* amax_bits,
                                                               float* scale_out, int n, int npad) {
    __shared__ __align__(16) unsigned char t[128][128 + 16];         // [column][slot], padded rows
    const int bh = blockIdx.y, r0 = blockIdx.x * 128;
    const float scale = scale_of(__uint_as_float(amax_bits[bh])), inv = 1.f / scale;
    if (blockIdx.x == 0 && threadIdx.x == 0) scale_out[bh] = scale;
    const uint4* X = reinterpret_cast<const uint4*>(x + (size_t)bh * n * 128);
    for (int i = threadIdx.x; i < 128 * 16; i += 256) {
        const int r = i / 16, c0 = (i % 16) * 8, slot = (r & ~31) + key_slot(r & 31);
        const uint2 q = r0 + r < n ? quant8(X[(size_t)(r0 + r) * 16 + i % 16], inv) : make_uint2(0, 0);
#pragma unroll
        for (int j = 0; j < 8; ++j) t[c0 + j][slot] = (unsigned char)(((j < 4 ? q.x : q.y) >> (8 * (j & 3))) & 0xff);
    }
    __syncthreads();
    const int width = min(128, npad - r0);                         // a multiple of 16
    for (int i = threadIdx.x; i < 128 * 8; i += 256) {             // column c, 16-byte segment s
        const int c = i / 8, s = (i % 8) * 16;
        if (s < width)
            *reinterpret_cast<uint4*>(y + ((size_t)bh * 128 + c) * npad + r0 + s) = *reinterpret_cast<const uint4*>(&t[c][s]);
    }
}
