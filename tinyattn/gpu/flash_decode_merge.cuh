// Split-KV decoding, part 2: the end of a chunk (write the partial, or merge in place) and the
// separate merge kernel (chapter 07). Included by flash_decode.cu after ptx_utils.cuh (not standalone).
//
// Merging partials (chapter 06's online-softmax merge), lse_p natural-log, O_p normalised:
//   lse = log sum_p exp(lse_p),   O = sum_p exp(lse_p - lse) O_p.
// Two ways to run it:
// - separate: every warp writes (O_p, lse_p) to part_o / part_lse and a second kernel (merge, below)
//   combines them: two launches.
// - fused: every warp writes its partial, then counts itself done on a per-slab counter
//   (__threadfence, then atomicAdd); the warp that arrives last (old count = n_part - 1) reads the
//   other n_part - 1 partials of its 16 rows from L2 and merges them into its own, which is still in
//   registers, then writes the output and resets the counter to 0 for the next launch. One launch.
//   With n_part = 1 there is nothing to merge: the warp writes the output directly.
//   (The last warp reads (n_part - 1) * 16 rows * D floats alone, so this pays only for a few
//   partials; decode.py picks fused or separate by n_part.)
namespace fdec {

constexpr float L2E = 1.4426950408889634f;

// out rows row_x (x = 0: the lane's row g, 1: row g + 8) <- acc / den as fp16/bf16; lse = mx + log den
template <int D, bool BF16>
__device__ __forceinline__ void write_final(float (&acc)[D / 8][4], const float mx[2], const float den[2],
                                            const size_t row[2], const bool ok[2], u16* __restrict__ out,
                                            float* __restrict__ lse, int t4) {
#pragma unroll
    for (int x = 0; x < 2; ++x) {
        if (!ok[x]) continue;
        const float s = den[x] > 0.f ? 1.f / den[x] : 0.f;
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
            *reinterpret_cast<u32*>(out + row[x] * D + n * 8 + 2 * t4) = pack2<BF16>(acc[n][2 * x] * s, acc[n][2 * x + 1] * s);
        if (t4 == 0) lse[row[x]] = den[x] > 0.f ? mx[x] + log2f(den[x]) * TA_LN2 : TA_NEG_INF;
    }
}

// End of chunk p for this warp's 16 rows (lane: rows g and g + 8 at global row indices row[0], row[1];
// ok[x] = the row exists). acc, m, l: the chunk's unnormalised accumulator, running max (raw score)
// and this lane's share of the row sums. fused = 0: write the partial for the merge kernel.
template <int D, bool BF16>
__device__ __forceinline__ void finish_chunk(float (&acc)[D / 8][4], const float m[2], const float l[2],
                                             float scale_log2, const size_t row[2], const bool ok[2], int p,
                                             int n_part, int fused, float* __restrict__ part_o,
                                             float* __restrict__ part_lse, u16* __restrict__ out,
                                             float* __restrict__ lse, int* __restrict__ cnt, int slab, int lane) {
    const int t4 = lane & 3;
    // partial of this chunk: O_p = acc / l, lse_p = (m c + log2 l) ln 2 (-inf and O_p = 0 if empty)
    float mx[2], den[2];
#pragma unroll
    for (int x = 0; x < 2; ++x) {
        float ls = l[x] + __shfl_xor_sync(0xffffffffu, l[x], 1);
        ls += __shfl_xor_sync(0xffffffffu, ls, 2);
        const float inv = ls > 0.f ? 1.f / ls : 0.f;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) { acc[n][2 * x] *= inv; acc[n][2 * x + 1] *= inv; }
        mx[x] = ls > 0.f ? fmaf(m[x], scale_log2, log2f(ls)) * TA_LN2 : TA_NEG_INF;
        den[x] = ls > 0.f ? 1.f : 0.f;                  // weight of O_p relative to exp(mx)
    }
    if (fused && n_part == 1) { write_final<D, BF16>(acc, mx, den, row, ok, out, lse, t4); return; }
#pragma unroll
    for (int x = 0; x < 2; ++x) {
        if (!ok[x]) continue;
        float* po = part_o + (row[x] * n_part + p) * D;
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
            *reinterpret_cast<float2*>(po + n * 8 + 2 * t4) = make_float2(acc[n][2 * x], acc[n][2 * x + 1]);
        if (t4 == 0) part_lse[row[x] * n_part + p] = mx[x];
    }
    if (!fused) return;
    __threadfence();                                    // our partial is visible before we count ourselves
    __syncwarp();
    int old = 0;
    if (lane == 0) old = atomicAdd(cnt + slab, 1);
    old = __shfl_sync(0xffffffffu, old, 0);
    if (old != n_part - 1) return;                      // not the last chunk of this slab to finish
    __threadfence();                                    // everyone else's partial is visible now
#pragma unroll 2
    for (int q = 0; q < n_part; ++q) {
        if (q == p) continue;
        float lq[2];
        float2 o2[D / 8][2];
#pragma unroll
        for (int x = 0; x < 2; ++x) {                   // L2 reads (__ldcg): the partials come from other SMs
            lq[x] = ok[x] ? __ldcg(part_lse + row[x] * n_part + q) : TA_NEG_INF;
            const float* po = part_o + (row[x] * n_part + q) * D + 2 * t4;
#pragma unroll
            for (int n = 0; n < D / 8; ++n)
                o2[n][x] = ok[x] ? __ldcg(reinterpret_cast<const float2*>(po + n * 8)) : make_float2(0.f, 0.f);
        }
#pragma unroll
        for (int x = 0; x < 2; ++x) {
            if (lq[x] == TA_NEG_INF) continue;          // an empty chunk adds nothing
            const float mn = fmaxf(mx[x], lq[x]);       // O <- (a den O + w O_q) with a = e^(mx - mn), w = e^(lse_q - mn)
            const float a = fast_exp2((mx[x] - mn) * L2E), w = fast_exp2((lq[x] - mn) * L2E);
            den[x] = fmaf(den[x], a, w);
#pragma unroll
            for (int n = 0; n < D / 8; ++n) {
                acc[n][2 * x] = fmaf(acc[n][2 * x], a, w * o2[n][x].x);
                acc[n][2 * x + 1] = fmaf(acc[n][2 * x + 1], a, w * o2[n][x].y);
            }
            mx[x] = mn;
        }
    }
    write_final<D, BF16>(acc, mx, den, row, ok, out, lse, t4);
    if (lane == 0) cnt[slab] = 0;                       // ready for the next launch
}

// merge: one block of MW warps per query row (b, hq, i). Warp w takes partials p = w, w + MW, ...;
// lane owns D / 32 adjacent output columns (one 8- or 16-byte load per partial); the MW partial sums
// are then added through shared memory. (Run 7: the first merge, one thread per column looping over
// all partials, was a serial chain of n_part dependent-latency loads: ~30 us at B = 1, n_part = 128.)
constexpr int MW = 8;
template <int D, bool BF16>
__device__ __forceinline__ void merge(const float* __restrict__ part_o, const float* __restrict__ part_lse,
                                      u16* __restrict__ o, float* __restrict__ lse, int n_part) {
    constexpr int CPL = D / 32;                        // columns per lane: 2 (d = 64) or 4 (d = 128)
    __shared__ float red_num[MW][D], red_den[MW], red_mx[MW];
    const size_t row = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float* pl = part_lse + row * n_part;
    float mx = TA_NEG_INF;                             // max_p lse_p over the whole block
    for (int p = threadIdx.x; p < n_part; p += MW * 32) mx = fmaxf(mx, pl[p]);
#pragma unroll
    for (int w = 16; w > 0; w >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, w));
    if (lane == 0) red_mx[warp] = mx;
    __syncthreads();
#pragma unroll
    for (int w = 0; w < MW; ++w) mx = fmaxf(mx, red_mx[w]);
    float num[CPL] = {}, den = 0.f;
    if (mx != TA_NEG_INF) {
#pragma unroll 4
        for (int p = warp; p < n_part; p += MW) {
            const float wt = fast_exp2((pl[p] - mx) * 1.4426950408889634f);   // exp(lse_p - max)
            den += wt;
            const float* src = part_o + (row * n_part + p) * D + lane * CPL;
            if constexpr (CPL == 4) {
                const float4 x = *reinterpret_cast<const float4*>(src);
                num[0] = fmaf(wt, x.x, num[0]); num[1] = fmaf(wt, x.y, num[1]);
                num[2] = fmaf(wt, x.z, num[2]); num[3] = fmaf(wt, x.w, num[3]);
            } else {
                const float2 x = *reinterpret_cast<const float2*>(src);
                num[0] = fmaf(wt, x.x, num[0]); num[1] = fmaf(wt, x.y, num[1]);
            }
        }
    }
#pragma unroll
    for (int j = 0; j < CPL; ++j) red_num[warp][lane * CPL + j] = num[j];
    if (lane == 0) red_den[warp] = den;
    __syncthreads();
    if (warp == 0) {
        float dsum = 0.f;
#pragma unroll
        for (int w = 0; w < MW; ++w) dsum += red_den[w];
#pragma unroll
        for (int j = 0; j < CPL; ++j) {
            float x = 0.f;
#pragma unroll
            for (int w = 0; w < MW; ++w) x += red_num[w][lane * CPL + j];
            o[row * D + lane * CPL + j] = from_float<BF16>(dsum > 0.f ? x / dsum : 0.f);
        }
        if (lane == 0) lse[row] = dsum > 0.f ? mx + log2f(dsum) * TA_LN2 : TA_NEG_INF;
    }
}

}  // namespace fdec
