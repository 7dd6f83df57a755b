// Split-KV decoding ("FlashDecoding") on tensor cores: fp16/bf16 K/V cache, fp32 accumulation (chapter 07).
//
// Decoding has few query tokens (Lq = 1..16) and a long cache, so one block per query tile would
// leave the GPU idle. Instead the keys of each sequence are cut into chunks ("splits"): every warp
// takes one chunk and computes a partial result over it; the partials are merged (a second kernel,
// or the last warp of each slab to finish: flash_decode_merge.cuh)
// with the online-softmax merge of chapter 06:
//   lse = log sum_p exp(lse_p),   O = sum_p exp(lse_p - lse) O_p.
// GQA packing: the G = Hq / Hkv query heads that share a K/V head, times the Lq tokens, are the
// rows of ONE tile (row r = g * Lq + i), so each K/V byte is read once for all of them (G * Lq > 16
// rows: ceil(G * Lq / 16) row groups, each a grid column of its own, each reading the chunk again).
// Per warp: Q rows in registers (ldmatrix), K/V tiles of 32 keys double-buffered in the warp's own
// shared memory by cp.async, S = Q K^T and O += P V by mma.sync m16n8k16 as in flash_mma.cu.
// Layouts: q (B, Hq, Lq, D); contiguous cache k, v (B, Hkv, S, D); paged pools (n_blocks, Hkv, BS, D)
// with block_tables (B, max_blocks) int32 (key t of sequence b is row t % BS of pool block
// table[b][t / BS]); seq_lens (B,) int32. Query i of the Lq new tokens sees keys t <= len - Lq + i
// (causal) or all t < len. Partials: part_o (B, Hq, Lq, P, D) fp32, part_lse (B, Hq, Lq, P) fp32.
#include "ptx_utils.cuh"
#include "flash_decode_merge.cuh"

namespace fdec {

constexpr int NW = 4, BK = 32;          // warps per block (one chunk each); keys per tile

template <int D>
__device__ __forceinline__ int swz(int row, int col) { return row * D + ((((col >> 3) ^ (row & 7))) << 3); }

// the GT threads of a chunk group (gt = 0..GT-1) copy keys [t0, t0 + BKT) of one sequence (rows >= t_end
// zero-filled) into a swizzled tile. Paged: key t is row t % bs of pool block table[t / bs]; a
// power-of-two block size (bs_shift >= 0) avoids two integer divisions per row (measured: run 1 -> 2;
// two table loads per tile with the per-row arithmetic kept measured 12% slower in run 4).
template <int D, bool PAGED, int GT, int BKT>
__device__ __forceinline__ void load_kv_tile(u16* sk, u16* sv, const u16* k, const u16* v, const int* table,
                                             int b, int h, int hkv, int s_len, int bs, int bs_shift, int max_blocks,
                                             int t0, int t_end, int gt) {
    constexpr int CPR = D / 8, STEP = GT / CPR, ROUNDS = BKT / STEP;   // chunks per row; rows per round
    static_assert(GT % CPR == 0 && BKT % STEP == 0, "tile / thread shape");
    const int col = (gt % CPR) * 8;
    // Paged, power-of-two blocks of >= 16 keys: a 32-key tile (tiles start at multiples of 32) touches
    // at most two blocks. Per tile, two base offsets make row t's address base + t * D, the same
    // arithmetic as the contiguous cache (run 5, ncu: the per-row 64-bit address arithmetic cost +51%
    // instructions, and with one warp per scheduler the kernel is bound by instruction latency)
    const bool fast = PAGED && bs_shift >= 4;
    long long base0 = 0, base1 = 0;
    int blk0 = 0;
    if (PAGED && fast && t0 < t_end) {
        const int* row = table + (size_t)b * max_blocks;
        blk0 = t0 >> bs_shift;
        const int e0 = __ldg(row + blk0);
        const int e1 = (blk0 + 1 <= ((t_end - 1) >> bs_shift)) ? __ldg(row + blk0 + 1) : e0;
        base0 = ((long long)e0 * hkv + h) * bs * D - (long long)blk0 * bs * D;          // + t * D
        base1 = ((long long)e1 * hkv + h) * bs * D - (long long)(blk0 + 1) * bs * D;
    }
    size_t off[ROUNDS];
#pragma unroll
    for (int i = 0; i < ROUNDS; ++i) {                  // all addresses first: the table loads overlap
        const int t = t0 + gt / CPR + i * STEP;
        off[i] = 0;
        if (t < t_end) {
            if constexpr (PAGED) {
                if (fast) {
                    off[i] = (size_t)((((t >> bs_shift) == blk0) ? base0 : base1) + (long long)t * D);
                } else {
                    const int blk = bs_shift >= 0 ? (t >> bs_shift) : t / bs;
                    const int in_blk = bs_shift >= 0 ? (t & (bs - 1)) : t - blk * bs;
                    off[i] = (((size_t)__ldg(table + (size_t)b * max_blocks + blk) * hkv + h) * bs + in_blk) * D;
                }
            } else {
                off[i] = (((size_t)b * hkv + h) * s_len + t) * D;
            }
        }
    }
#pragma unroll
    for (int i = 0; i < ROUNDS; ++i) {
        const int row = gt / CPR + i * STEP;
        const bool ok = t0 + row < t_end;
        const int so = swz<D>(row, col);
        cp_async16(smem_u32(sk + so), k + off[i] + col, ok ? 16 : 0);
        cp_async16(smem_u32(sv + so), v + off[i] + col, ok ? 16 : 0);
    }
}

// One K/V tile of BKT keys (already in shared memory: sKt, sVt, swizzled rows) for this warp's 16 query
// rows (qf, ldmatrix fragments): S = Q K^T, mask, online softmax (m: running raw max, l: this lane's
// share of the row sums, acc *= e^(m_old - m_new) c), O += P V. k0 = the tile's first key; keys >= t_end
// or after the row's last key (last0: row g, last1: row g + 8) get p = 0.
// The 16 packed query rows rbase .. rbase + 15 of K/V head h into a swizzled tile, copied by NT threads
// (tid = 0..NT-1): packed row rg <- q[b, h*G + rg / lq, rg % lq, :]; rows >= G*Lq are zero-filled.
template <int D, int NT>
__device__ __forceinline__ void load_q_rows(u16* sQ, const u16* q, int b, int hq, int h, int grp, int lq, int rows,
                                            int rbase, int tid) {
    for (int c = tid; c < 16 * D / 8; c += NT) {
        const int r = c / (D / 8), col = (c % (D / 8)) * 8, rg = rbase + r;
        const bool ok = rg < rows;
        const u16* src = q + ((((size_t)b * hq + h * grp + (ok ? rg / lq : 0)) * lq + (ok ? rg % lq : 0)) * D) + col;
        cp_async16(smem_u32(sQ + swz<D>(r, col)), src, ok ? 16 : 0);
    }
}

// The A fragments of the 16 x D Q tile (ldmatrix from the swizzled tile), kept in registers for every K/V tile.
template <int D>
__device__ __forceinline__ void load_q_frags(u32 (&qf)[D / 16][4], const u16* sQ, int lane) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
        ldmatrix_x4(qf[kk], smem_u32(sQ + swz<D>(lane & 15, kk * 16 + (lane >> 4) * 8)));
}

template <int D, bool BF16, int BKT>
__device__ __forceinline__ void tile_step(const u32 (&qf)[D / 16][4], const u16* sKt, const u16* sVt, int k0, int t_end,
                                          int last0, int last1, float scale_log2, float (&acc)[D / 8][4],
                                          float (&m)[2], float (&l)[2], int lane, int t4) {
    float s[BKT / 8][4];                             // S = Q K^T: 16 rows x BKT keys
#pragma unroll
    for (int n = 0; n < BKT / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
        for (int nn = 0; nn < BKT / 16; ++nn) {
            u32 bfr[4];
            ldmatrix_x4(bfr, smem_u32(sKt + swz<D>(nn * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 16 + ((lane >> 3) & 1) * 8)));
            mma16816<BF16>(s[2 * nn], qf[kk], bfr[0], bfr[1]);
            mma16816<BF16>(s[2 * nn + 1], qf[kk], bfr[2], bfr[3]);
        }
    }
    float mx0 = m[0], mx1 = m[1];
#pragma unroll
    for (int n = 0; n < BKT / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {               // mask: past the chunk, or after the row's last key
            const int key = k0 + n * 8 + 2 * t4 + (e & 1);
            if (key >= t_end || key > ((e < 2) ? last0 : last1)) s[n][e] = TA_NEG_INF;
        }
        mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
        mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float mu0 = (mx0 == TA_NEG_INF) ? 0.f : mx0 * scale_log2;
    const float mu1 = (mx1 == TA_NEG_INF) ? 0.f : mx1 * scale_log2;
    const float al0 = fast_exp2(m[0] * scale_log2 - mu0), al1 = fast_exp2(m[1] * scale_log2 - mu1);
    m[0] = mx0;
    m[1] = mx1;
    u32 pa[BKT / 16][4];
    float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
    for (int n = 0; n < BKT / 8; ++n) {
        const float p0 = fast_exp2(fmaf(s[n][0], scale_log2, -mu0)), p1 = fast_exp2(fmaf(s[n][1], scale_log2, -mu0));
        const float p2 = fast_exp2(fmaf(s[n][2], scale_log2, -mu1)), p3 = fast_exp2(fmaf(s[n][3], scale_log2, -mu1));
        ps0 += p0 + p1;
        ps1 += p2 + p3;
        pa[n >> 1][(n & 1) * 2 + 0] = pack2<BF16>(p0, p1);
        pa[n >> 1][(n & 1) * 2 + 1] = pack2<BF16>(p2, p3);
    }
    l[0] = l[0] * al0 + ps0;
    l[1] = l[1] * al1 + ps1;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
        acc[n][0] *= al0; acc[n][1] *= al0; acc[n][2] *= al1; acc[n][3] *= al1;
    }
#pragma unroll
    for (int kk = 0; kk < BKT / 16; ++kk) {          // O += P V
#pragma unroll
        for (int nn = 0; nn < D / 16; ++nn) {
            u32 bfr[4];
            ldmatrix_x4_trans(bfr, smem_u32(sVt + swz<D>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, nn * 16 + (lane >> 4) * 8)));
            mma16816<BF16>(acc[2 * nn], pa[kk], bfr[0], bfr[1]);
            mma16816<BF16>(acc[2 * nn + 1], pa[kk], bfr[2], bfr[3]);
        }
    }
}

// WPC = 1: each warp owns a chunk (a warp barrier is enough); WPC > 1: WPC warps share a chunk's K/V
// tiles, each taking 16 other query rows (Lq > 1 or G > 16), with block barriers.
template <int WPC>
__device__ __forceinline__ void group_sync() {
    if constexpr (WPC == 1) __syncwarp();
    else __syncthreads();
}

// NWB warps per block (template: 4, or 2 for WPC = 1 so that 3 blocks = 6 warps fit an SM's 228 KB of
// shared memory instead of one block of 4 warps: more warps to hide instruction latency, run 7).
// ST cp.async stages: 2 (one K/V tile in flight while the warp computes) or 3 (two in flight).
template <int D, bool BF16, bool PAGED, int WPC, int NWB, int ST, int BKT>
__device__ __forceinline__ void split_kv(const u16* __restrict__ q, const u16* __restrict__ k,
                                         const u16* __restrict__ v, const int* __restrict__ table,
                                         const int* __restrict__ seq_lens, float* __restrict__ part_o,
                                         float* __restrict__ part_lse, int hq, int hkv, int lq, int s_len,
                                         int bs, int bs_shift, int max_blocks, int chunk, int n_part,
                                         float scale_log2, int causal, int n_rg, int n_seq, int fused,
                                         u16* __restrict__ out, float* __restrict__ lse, int* __restrict__ cnt) {
    static_assert(WPC == 1 || WPC == NWB, "a chunk is read by one warp or by the whole block");
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    // work items (b, h, row group, chunk p) in one flat list, chunk fastest: item i is taken by warp
    // group i % (NWB / WPC) of block i / (NWB / WPC), so every warp of every block has work (the grid
    // holds ceil(items / (NWB / WPC)) blocks) whatever n_part is (n_part = 1 included)
    const int item = blockIdx.x * (NWB / WPC) + warp / WPC;
    const int p = item % n_part, hy = (item / n_part) % (hkv * n_rg), b = item / n_part / (hkv * n_rg);
    const int h = hy / n_rg;
    const int gt = (warp % WPC) * 32 + lane;            // thread index inside the chunk's group
    const int rbase = ((hy % n_rg) * WPC + warp % WPC) * 16;
    const int grp = hq / hkv, rows = grp * lq;          // packed rows: r = gi * lq + i; this warp: rbase + 0..15
    u16* sQ = reinterpret_cast<u16*>(smem_raw) + warp * 16 * D;
    u16* sK = reinterpret_cast<u16*>(smem_raw) + NWB * 16 * D + (warp / WPC) * 2 * ST * BKT * D;   // ST K + ST V tiles
    u16* sV = sK + ST * BKT * D;
    if (b >= n_seq) return;                             // the whole group leaves together
    const int len = seq_lens[b];
    const int t_begin = p * chunk, t_end = min(len, t_begin + chunk);
    const int n_tiles = t_end > t_begin ? (t_end - t_begin + BKT - 1) / BKT : 0;

    load_q_rows<D, 32>(sQ, q, b, hq, h, grp, lq, rows, rbase, lane);   // this warp's 16 packed rows
    cp_async_commit();
#pragma unroll
    for (int st = 0; st < ST - 1; ++st) {               // prologue: tiles 0 .. ST-2 in flight
        if (st < n_tiles)
            load_kv_tile<D, PAGED, 32 * WPC, BKT>(sK + st * BKT * D, sV + st * BKT * D, k, v, table, b, h, hkv, s_len, bs,
                                             bs_shift, max_blocks, t_begin + st * BKT, t_end, gt);
        cp_async_commit();
    }
    cp_async_wait<ST - 1>();                            // Q has landed
    __syncwarp();                                       // (Q is per warp)
    u32 qf[D / 16][4];
    load_q_frags<D>(qf, sQ, lane);

    float acc[D / 8][4], m[2] = {TA_NEG_INF, TA_NEG_INF}, l[2] = {0.f, 0.f};
#pragma unroll
    for (int n = 0; n < D / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
    // the last key each of this lane's two rows may see (rows g and g + 8)
    const int r0 = rbase + g, r1 = rbase + g + 8;
    const int last0 = causal ? len - lq + (r0 < rows ? r0 % lq : lq - 1) : len - 1;
    const int last1 = causal ? len - lq + (r1 < rows ? r1 % lq : lq - 1) : len - 1;

    for (int t = 0; t < n_tiles; ++t) {
        const int nxt = (t + ST - 1) % ST;              // buffer of tile t + ST - 1 (= that of tile t - 1)
        if (t + ST - 1 < n_tiles)
            load_kv_tile<D, PAGED, 32 * WPC, BKT>(sK + nxt * BKT * D, sV + nxt * BKT * D, k, v, table, b,
                                             h, hkv, s_len, bs, bs_shift, max_blocks, t_begin + (t + ST - 1) * BKT, t_end, gt);
        cp_async_commit();
        cp_async_wait<ST - 1>();                        // tile t has landed
        group_sync<WPC>();
        const u16* sKt = sK + (t % ST) * BKT * D;
        const u16* sVt = sV + (t % ST) * BKT * D;
        const int k0 = t_begin + t * BKT;

        tile_step<D, BF16, BKT>(qf, sKt, sVt, k0, t_end, last0, last1, scale_log2, acc, m, l, lane, t4);
        group_sync<WPC>();                              // done with buffer t % ST before it is refilled
    }
    cp_async_wait<0>();

    // the chunk's partial: to the merge kernel, or merged here by the slab's last warp (flash_decode_merge.cuh)
    size_t row[2];
    bool ok[2];
#pragma unroll
    for (int x = 0; x < 2; ++x) {
        const int r = rbase + g + 8 * x;
        ok[x] = r < rows;
        row[x] = ok[x] ? (((size_t)b * hq + h * grp + r / lq) * lq + r % lq) : 0;
    }
    finish_chunk<D, BF16>(acc, m, l, scale_log2, row, ok, p, n_part, fused, part_o, part_lse, out, lse, cnt,
                          (int)(item / n_part) * WPC + warp % WPC, lane);
}

}  // namespace fdec

#include "flash_decode_coop.cuh"

// dynamic shared memory: NWB * 16 * D * 2 (Q) + (NWB / WPC) * 2 * ST * BK * D * 2 (K, V) bytes
// grid ceil(B * Hkv * n_rg * n_part / (NWB / WPC)) blocks, n_rg = ceil(G * Lq / (16 * WPC)) row groups;
// counters cnt: B * Hkv * n_rg * WPC ints, zero before the first fused launch (each launch leaves them zero);
// merge grid (B * Hq * Lq), block MW * 32 (only when fused = 0)
// names: decode_split_<T>_d<D>_w<WPC> (4 warps a block, 2 stages), ..._w1n2 (2 warps a block), ..._w1s3 (3 stages),
// ..._w1k16 / ..._w1k16s4 (16-key tiles, 2 / 4 stages), ..._c4 (cooperative, flash_decode_coop.cuh: grid = items)
#define TA_DECODE_SPLIT(D, BF16, T, WPC, NWB, ST, BKT, SUFFIX)                                              \
    extern "C" __global__ void __launch_bounds__(NWB * 32, 1)                                           \
    decode_split_##T##_d##D##_w##WPC##SUFFIX(const u16* q, const u16* k, const u16* v, const int* table, \
                            const int* seq_lens, float* part_o, float* part_lse, int hq, int hkv, int lq,\
                            int s_len, int bs, int bs_shift, int max_blocks, int chunk, int n_part,      \
                            float scale_log2, int causal, int paged, int n_rg, int n_seq, int fused,      \
                            u16* out, float* lse, int* cnt) {                                            \
        if (paged) fdec::split_kv<D, BF16, true, WPC, NWB, ST, BKT>(q, k, v, table, seq_lens, part_o, part_lse, hq, hkv, lq, s_len, bs, bs_shift, max_blocks, chunk, n_part, scale_log2, causal, n_rg, n_seq, fused, out, lse, cnt); \
        else fdec::split_kv<D, BF16, false, WPC, NWB, ST, BKT>(q, k, v, table, seq_lens, part_o, part_lse, hq, hkv, lq, s_len, bs, bs_shift, max_blocks, chunk, n_part, scale_log2, causal, n_rg, n_seq, fused, out, lse, cnt); \
    }
// session 20 dec2 variants (NOTES.md): _c4 = 4 warps sharing 128-key tiles of one chunk (flash_decode_coop.cuh,
// contiguous cache, <= 16 packed rows; the default at d = 128 and Lq = 1 since session 21); the one-warp kernel with 16-key tiles
// _w1k16 (2 stages: 80 KB of shared memory, 2 blocks per SM) and _w1k16s4 (4 stages: 3 tiles in flight)
#define TA_DECODE_COOP(D, BF16, T, ST, SUFFIX)                                                          \
    extern "C" __global__ void __launch_bounds__(fdec::CW * 32, 1)                                      \
    decode_split_##T##_d##D##_##SUFFIX(const u16* q, const u16* k, const u16* v, const int* table,       \
                            const int* seq_lens, float* part_o, float* part_lse, int hq, int hkv, int lq,\
                            int s_len, int bs, int bs_shift, int max_blocks, int chunk, int n_part,      \
                            float scale_log2, int causal, int paged, int n_rg, int n_seq, int fused,      \
                            u16* out, float* lse, int* cnt) {                                            \
        fdec::split_kv_coop<D, BF16, ST>(q, k, v, seq_lens, part_o, part_lse, hq, hkv, lq, s_len, chunk, n_part, \
                                         scale_log2, causal, n_seq, fused, out, lse, cnt);              \
    }
#define TA_DECODE(D, BF16, T)                                                                          \
    TA_DECODE_SPLIT(D, BF16, T, 1, 4, 2, 32, )                                                         \
    TA_DECODE_SPLIT(D, BF16, T, 1, 2, 2, 32, n2)                                                       \
    TA_DECODE_SPLIT(D, BF16, T, 1, 4, 3, 32, s3)                                                       \
    TA_DECODE_SPLIT(D, BF16, T, 4, 4, 2, 32, )                                                         \
    extern "C" __global__ void decode_merge_##T##_d##D(const float* part_o, const float* part_lse, u16* o, \
                                                       float* lse, int n_part) {                       \
        fdec::merge<D, BF16>(part_o, part_lse, o, lse, n_part);                                        \
    }

TA_DECODE(64, false, f16)
TA_DECODE(64, true, bf16)
TA_DECODE(128, false, f16)
TA_DECODE(128, true, bf16)

// the cooperative kernel (flash_decode_coop.cuh) is the default at d = 128 (session 21: faster than the one-warp
// kernel back to back at B = 1 and not slower at B = 4-64, H200, fp16): built in the shipped module there
#define TA_DECODE_COOP_BOTH(D)                                                                         \
    TA_DECODE_COOP(D, false, f16, 2, c4)                                                               \
    TA_DECODE_COOP(D, true, bf16, 2, c4)
TA_DECODE_COOP_BOTH(128)

// the other dec2 sweep variants (and coop at d = 64, not measured), built only with -DTA_FLASH_ALL_VARIANTS
// (decode.py asks for that module when a sweep names one of them), so the shipped module builds no slower
#ifdef TA_FLASH_ALL_VARIANTS
#define TA_DECODE_DEC2(D, BF16, T)                                                                     \
    TA_DECODE_SPLIT(D, BF16, T, 1, 4, 2, 16, k16)                                                      \
    TA_DECODE_SPLIT(D, BF16, T, 1, 4, 4, 16, k16s4)
TA_DECODE_DEC2(64, false, f16)
TA_DECODE_DEC2(64, true, bf16)
TA_DECODE_DEC2(128, false, f16)
TA_DECODE_DEC2(128, true, bf16)
TA_DECODE_COOP_BOTH(64)
#endif
