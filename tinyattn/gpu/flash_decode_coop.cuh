// Split-KV decoding, cooperative variant (session 20 dec2; the default at d = 128, Lq = 1 since session 21): the CW = 4
// warps of a block share ONE chunk and each CBK = 128-key K/V tile of it, as cuDNN's decode kernel
// (`..._16x128x128_1x4x1`: 16 query rows x 128 keys x d 128 per tile, 4 warps along the keys).
// Included by flash_decode.cu after load_kv_tile, tile_step and finish_chunk (not standalone).
//
// Per block: one work item (b, K/V head h, chunk p), at most 16 packed query rows (G * Lq <= 16, one
// row group), contiguous cache only. All 128 threads copy each 128-key tile (cp.async, ST stages);
// warp w computes keys [32 w, 32 w + 32) of the tile for all 16 rows (tile_step, as the one-warp kernel),
// keeping its own online-softmax state (m_w, l_w, acc_w). At the end of the chunk the 4 states are
// merged through shared memory (the K/V buffers, free by then) by warp 0, with the same merge as between
// chunks (chapter 06), per row:
//   M = max_w m_w,  a_w = exp2((m_w - M) c)  (0 if m_w = -inf),  l = sum_w a_w l_w,  acc = sum_w a_w acc_w
// and warp 0 ends the chunk as a one-warp chunk does (finish_chunk: partial, fused merge or direct write).
// Against the one-warp kernel at the same bytes per SM: 4x longer chunks (n_part / 4 partials), one
// 64 KB tile copy per step shared by the block instead of four 16 KB copies, block barriers per tile.
namespace fdec {

constexpr int CW = 4, CBK = 128;        // warps per block; keys per block tile (32 per warp)

template <int D, bool BF16, int ST>
__device__ __forceinline__ void split_kv_coop(const u16* __restrict__ q, const u16* __restrict__ k,
                                              const u16* __restrict__ v, const int* __restrict__ seq_lens,
                                              float* __restrict__ part_o, float* __restrict__ part_lse, int hq,
                                              int hkv, int lq, int s_len, int chunk, int n_part, float scale_log2,
                                              int causal, int n_seq, int fused, u16* __restrict__ out,
                                              float* __restrict__ lse, int* __restrict__ cnt) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int item = blockIdx.x;                        // (b, h, p), chunk fastest
    const int p = item % n_part, h = (item / n_part) % hkv, b = item / n_part / hkv;
    const int grp = hq / hkv, rows = grp * lq;          // packed rows r = gi * lq + i (<= 16)
    u16* sQ = reinterpret_cast<u16*>(smem_raw);         // 16 x D, shared by the 4 warps
    u16* sK = sQ + 16 * D;                              // ST tiles of CBK keys, then ST V tiles
    u16* sV = sK + ST * CBK * D;
    if (b >= n_seq) return;                             // the whole block leaves together
    const int len = seq_lens[b];
    const int t_begin = p * chunk, t_end = min(len, t_begin + chunk);
    const int n_tiles = t_end > t_begin ? (t_end - t_begin + CBK - 1) / CBK : 0;

    load_q_rows<D, CW * 32>(sQ, q, b, hq, h, grp, lq, rows, 0, threadIdx.x);   // Q rows (rows >= G * Lq zero)
    cp_async_commit();
#pragma unroll
    for (int st = 0; st < ST - 1; ++st) {               // prologue: tiles 0 .. ST-2 in flight
        if (st < n_tiles)
            load_kv_tile<D, false, CW * 32, CBK>(sK + st * CBK * D, sV + st * CBK * D, k, v, nullptr, b, h, hkv, s_len,
                                                 1, 0, 1, t_begin + st * CBK, t_end, threadIdx.x);
        cp_async_commit();
    }
    cp_async_wait<ST - 1>();                            // Q has landed (this thread's part)
    __syncthreads();                                    // (everybody's part)
    u32 qf[D / 16][4];
    load_q_frags<D>(qf, sQ, lane);

    float acc[D / 8][4], m[2] = {TA_NEG_INF, TA_NEG_INF}, l[2] = {0.f, 0.f};
#pragma unroll
    for (int n = 0; n < D / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
    const int r0 = g, r1 = g + 8;
    const int last0 = causal ? len - lq + (r0 < rows ? r0 % lq : lq - 1) : len - 1;
    const int last1 = causal ? len - lq + (r1 < rows ? r1 % lq : lq - 1) : len - 1;

    for (int t = 0; t < n_tiles; ++t) {
        const int nxt = (t + ST - 1) % ST;
        if (t + ST - 1 < n_tiles)
            load_kv_tile<D, false, CW * 32, CBK>(sK + nxt * CBK * D, sV + nxt * CBK * D, k, v, nullptr, b, h, hkv,
                                                 s_len, 1, 0, 1, t_begin + (t + ST - 1) * CBK, t_end, threadIdx.x);
        cp_async_commit();
        cp_async_wait<ST - 1>();                        // tile t has landed (this thread's rows)
        __syncthreads();                                // (all rows)
        // warp w: rows 32 w .. 32 w + 31 of the tile (row & 7 unchanged by the offset: same swizzle)
        tile_step<D, BF16, 32>(qf, sK + (t % ST) * CBK * D + warp * 32 * D, sV + (t % ST) * CBK * D + warp * 32 * D,
                               t_begin + t * CBK + warp * 32, t_end, last0, last1, scale_log2, acc, m, l, lane, t4);
        __syncthreads();                                // done with buffer t % ST before it is refilled
    }
    cp_async_wait<0>();
    __syncthreads();                                    // the K/V buffers are free: merge scratch

    // the 4 warps' states -> shared memory: acc as float4 [warp][n][lane], m and row sums l [warp][16]
    float4* red_acc = reinterpret_cast<float4*>(sK);
    float* red_m = reinterpret_cast<float*>(red_acc + CW * (D / 8) * 32);
    float* red_l = red_m + CW * 16;
    float ls[2];
#pragma unroll
    for (int x = 0; x < 2; ++x) {                       // row sum of rows g, g + 8: the quad's 4 shares
        ls[x] = l[x] + __shfl_xor_sync(0xffffffffu, l[x], 1);
        ls[x] += __shfl_xor_sync(0xffffffffu, ls[x], 2);
    }
    if (warp > 0) {
#pragma unroll
        for (int n = 0; n < D / 8; ++n) red_acc[((warp * (D / 8)) + n) * 32 + lane] = make_float4(acc[n][0], acc[n][1], acc[n][2], acc[n][3]);
        if (t4 == 0) {
            red_m[warp * 16 + g] = m[0]; red_m[warp * 16 + g + 8] = m[1];
            red_l[warp * 16 + g] = ls[0]; red_l[warp * 16 + g + 8] = ls[1];
        }
    }
    __syncthreads();
    if (warp > 0) return;
    float mm[2], a[CW][2], lt[2];                       // warp 0: M, a_w, l = sum_w a_w l_w per row
#pragma unroll
    for (int x = 0; x < 2; ++x) {
        const int r = g + 8 * x;
        mm[x] = m[x];
#pragma unroll
        for (int w = 1; w < CW; ++w) mm[x] = fmaxf(mm[x], red_m[w * 16 + r]);
        lt[x] = 0.f;
#pragma unroll
        for (int w = 0; w < CW; ++w) {
            const float mw = w ? red_m[w * 16 + r] : m[x];
            a[w][x] = mw == TA_NEG_INF ? 0.f : fast_exp2((mw - mm[x]) * scale_log2);
            lt[x] = fmaf(a[w][x], w ? red_l[w * 16 + r] : ls[x], lt[x]);
        }
    }
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
        acc[n][0] *= a[0][0]; acc[n][1] *= a[0][0]; acc[n][2] *= a[0][1]; acc[n][3] *= a[0][1];
#pragma unroll
        for (int w = 1; w < CW; ++w) {
            const float4 o = red_acc[((w * (D / 8)) + n) * 32 + lane];
            acc[n][0] = fmaf(a[w][0], o.x, acc[n][0]); acc[n][1] = fmaf(a[w][0], o.y, acc[n][1]);
            acc[n][2] = fmaf(a[w][1], o.z, acc[n][2]); acc[n][3] = fmaf(a[w][1], o.w, acc[n][3]);
        }
    }
    // finish_chunk sums l over the quad's 4 lanes: give the whole row sum to lane t4 = 0, zero to the others
    const float lq4[2] = {t4 == 0 ? lt[0] : 0.f, t4 == 0 ? lt[1] : 0.f};
    size_t row[2];
    bool ok[2];
#pragma unroll
    for (int x = 0; x < 2; ++x) {
        const int r = g + 8 * x;
        ok[x] = r < rows;
        row[x] = ok[x] ? (((size_t)b * hq + h * grp + r / lq) * lq + r % lq) : 0;
    }
    finish_chunk<D, BF16>(acc, mm, lq4, scale_log2, row, ok, p, n_part, fused, part_o, part_lse, out, lse, cnt,
                          item / n_part, lane);
}

}  // namespace fdec
