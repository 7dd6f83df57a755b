// FlashAttention-2 backward on tensor cores: fp16/bf16 inputs, fp32 accumulation (chapter 07 section 8).
//
// Given q, o, dO (BH, Nq, D), k, v (BHkv, Nk, D), lse (BH, Nq) from the forward, with P = exp(S - lse),
// S = Q K^T * scale:
//   pre:  delta_i = sum_d dO_id O_id;  lse2_i = lse_i * log2 e  (+inf for padded / key-less rows: P = 0)
//   dkdv: one block per (64 or 128 keys, kv head); each warp owns MT 16-key m-tiles (16 or 32 keys; the
//         shipped tiles: 4 warps x 32 keys at d = 64, 8 warps x 16 keys at d = 128). Loop over the query tiles of
//         every query head of the kv head's group (GQA: h_kv = h_q / group, no repeated K/V; the group's
//         dK/dV add up in registers, no atomics), per tile of BQ queries:
//           S^T  = K Q^T           A = K rows (ldmatrix), B = Q rows (ldmatrix)  16 x BQ per m-tile
//           P^T  = 2^(S^T c - lse2) c = scale log2 e; causal / ragged keys masked to 0
//           dV  += P^T dO          A = P^T straight from the accumulators, B = dO (ldmatrix.trans)
//           dP^T = V dO^T          A = V rows, B = dO rows
//           dS^T = P^T (dP^T - delta)
//           dK  += dS^T Q          B = Q (ldmatrix.trans); dK *= scale at the end
//         ATOMIC: dS^T also goes to shared memory; the block then computes dQ_tile += dS K (A = dS by
//         ldmatrix.trans of dS^T, B = K by ldmatrix.trans) and adds it into an fp32 dQ accumulator with
//         red.global.add.v2.f32; a convert kernel scales it and rounds to fp16/bf16.
//   dkdv, FA2 layout (bwd_dkdv_smem.cuh, variants w8q<BQ>p): P^T and dS^T go through shared memory so that
//         phase 1 (S^T, dP^T: warp = 32 keys x BQ/2 queries) and phase 2 (dK, dV: warp = 32 keys x D/2
//         columns) split the block differently; 8 warps, 128 keys per block. Shipped for causal GQA at
//         d = 128 with the group split over blocks (cupy_backward.default_variant / auto_gqa_split).
//   dkdv, register layout with precomputed 32-bit shared addresses (bwd_dkdv_fast.cuh, variants w<NW>m<MT>q<BQ>x[f];
//         xf, the defaults at d = 64 / 128, also keeps the fp32 dQ accumulator in mma-fragment order for
//         red.global.add.v4.f32; its convert kernel is fa_bwd_dq_convert_frag_<t>_d<D>). Sweep only (Session 21):
//         w8m1q64xfg, xf with the causal-GQA group split over gridDim.z blocks (fp32 dK/dV in fragment order).
//   dq:   (the "separate" choice) one block per (16*NW queries, head): loop over key tiles,
//         S = Q K^T, dP = dO V^T (recomputed), dS = P (dP - delta), dQ += dS K.
// Causal = bottom-right aligned (query i sees key j <= i + Nk - Nq): fully masked tiles are skipped,
// only tiles crossing the diagonal are masked element-wise. Tiles in shared memory are XOR-swizzled.
// lse2 / delta / the dQ accumulator are padded to a multiple of 128 rows (pad: +inf / 0 / unused).
#include "bwd_common.cuh"
#include "bwd_dkdv_reg.cuh"
#include "bwd_dkdv_smem.cuh"
#include "bwd_dkdv_fast.cuh"

#define TA_BWD_ARGS_DKDV const u16* q, const u16* k, const u16* v, const u16* dout, const float* lse2, \
    const float* delta, u16* dk, u16* dv, float* dqacc, int nq, int nk, float scale_log2, float scale, int causal, int group

// Kernels (cupy_backward.py holds the launch table): fa_bwd_pre_<t>_d<D>, fa_bwd_dq_convert_<t>_d<D>,
// fa_bwd_dkdv_<t>_d<D>_w<NW>m<MT>q<BQ>[r]<a|s> (r: K/V fragments in registers; a: atomic dQ, s: no dQ),
// fa_bwd_dkdv_<t>_d<D>_w8q<BQ>p<a|s> (the FA2 layout; 2 more arguments: fp32 dK, dV accumulators of a
// GQA group split over gridDim.z blocks), fa_bwd_dq_<t>_d<D>_w<NW>k<BK>
#define TA_BWD_COMMON(T, D, BF16)                                                                      \
    extern "C" __global__ void fa_bwd_pre_##T##_d##D(const u16* o, const u16* dout, const float* lse,   \
            float* delta, float* lse2, int nq, int nq_pad, int bh_count) {                            \
        fa_bwd::pre<D, BF16>(o, dout, lse, delta, lse2, nq, nq_pad, bh_count);                         \
    }                                                                                                 \
    extern "C" __global__ void fa_bwd_dq_convert_##T##_d##D(const float* acc, u16* dq, int nq, int bh_count, float scale) { \
        fa_bwd::dq_convert<D, BF16>(acc, dq, nq, bh_count, scale);                                     \
    }
#define TA_BWD_DKDV(T, D, BF16, NW, MT, BQ, KREG, ATOMIC, SUFFIX)                                          \
    extern "C" __global__ void __launch_bounds__(NW * 32) fa_bwd_dkdv_##T##_d##D##_##SUFFIX(TA_BWD_ARGS_DKDV) { \
        fa_bwd::dkdv<D, BF16, NW, MT, BQ, KREG, ATOMIC>(q, k, v, dout, lse2, delta, dk, dv, dqacc, nq, nk, scale_log2, scale, causal, group); \
    }
#define TA_BWD_DKDVP(T, D, BF16, BQ, ATOMIC, SPLIT, SUFFIX)                                            \
    extern "C" __global__ void __launch_bounds__(256) fa_bwd_dkdv_##T##_d##D##_##SUFFIX(TA_BWD_ARGS_DKDV,      \
            float* dkacc, float* dvacc) {                                                              \
        fa_bwd::dkdv_smem<D, BF16, BQ, ATOMIC, SPLIT>(q, k, v, dout, lse2, delta, dk, dv, dqacc, nq, nk, scale_log2, \
                                                      scale, causal, group, dkacc, dvacc);             \
    }
// bwd_dkdv_fast.cuh: the register layout with precomputed 32-bit shared addresses (x), FRAG: fragment-order
// dQ accumulator + red.v4 (xf; its dQ convert kernel is fa_bwd_dq_convert_frag_<t>_d<D>)
#define TA_BWD_DKDVX(T, D, BF16, NW, MT, BQ, ATOMIC, FRAG, SUFFIX)                                      \
    extern "C" __global__ void __launch_bounds__(NW * 32) fa_bwd_dkdv_##T##_d##D##_##SUFFIX(TA_BWD_ARGS_DKDV) { \
        fa_bwd::dkdv_fast<D, BF16, NW, MT, BQ, ATOMIC, FRAG>(q, k, v, dout, lse2, delta, dk, dv, dqacc, nq, nk, \
                                                             scale_log2, scale, causal, group);        \
    }
#define TA_BWD_DKDVX_BOTH(D, NW, MT, BQ, FRAG, SUFFIX)                                                  \
    TA_BWD_DKDVX(f16, D, false, NW, MT, BQ, true, FRAG, SUFFIX##a) TA_BWD_DKDVX(bf16, D, true, NW, MT, BQ, true, FRAG, SUFFIX##a) \
    TA_BWD_DKDVX(f16, D, false, NW, MT, BQ, false, FRAG, SUFFIX##s) TA_BWD_DKDVX(bf16, D, true, NW, MT, BQ, false, FRAG, SUFFIX##s)
// the same (FRAG) with the GQA group split over gridDim.z blocks (SPLIT; fp32 dK/dV accumulators in fragment
// order, the 2 extra arguments of TA_BWD_DKDVP): kernels <SUFFIX><a|s>, sweep only (Session 21, gqa)
#define TA_BWD_DKDVXG(T, D, BF16, NW, MT, BQ, ATOMIC, SUFFIX)                                            \
    extern "C" __global__ void __launch_bounds__(NW * 32) fa_bwd_dkdv_##T##_d##D##_##SUFFIX(TA_BWD_ARGS_DKDV, \
            float* dkacc, float* dvacc) {                                                              \
        fa_bwd::dkdv_fast<D, BF16, NW, MT, BQ, ATOMIC, true, true>(q, k, v, dout, lse2, delta, dk, dv, dqacc, nq, nk, \
                                                                   scale_log2, scale, causal, group, dkacc, dvacc); \
    }
#define TA_BWD_DKDVXG_BOTH(D, NW, MT, BQ, SUFFIX)                                                      \
    TA_BWD_DKDVXG(f16, D, false, NW, MT, BQ, true, SUFFIX##a) TA_BWD_DKDVXG(bf16, D, true, NW, MT, BQ, true, SUFFIX##a) \
    TA_BWD_DKDVXG(f16, D, false, NW, MT, BQ, false, SUFFIX##s) TA_BWD_DKDVXG(bf16, D, true, NW, MT, BQ, false, SUFFIX##s)
#define TA_BWD_CONVERT_FRAG(T, D, BF16)                                                                \
    extern "C" __global__ void fa_bwd_dq_convert_frag_##T##_d##D(const float* acc, u16* dq, int nq, int bh_count, float scale) { \
        fa_bwd::dq_convert_frag<D, BF16>(acc, dq, nq, bh_count, scale);                                \
    }
#define TA_BWD_DQ(T, D, BF16, NW, BK, SUFFIX)                                                          \
    extern "C" __global__ void __launch_bounds__(NW * 32) fa_bwd_dq_##T##_d##D##_##SUFFIX(const u16* q, const u16* k, \
            const u16* v, const u16* dout, const float* lse2, const float* delta, u16* dq, int nq, int nk, \
            float scale_log2, float scale, int causal, int group) {                                   \
        fa_bwd::dq_kernel<D, BF16, NW, BK>(q, k, v, dout, lse2, delta, dq, nq, nk, scale_log2, scale, causal, group); \
    }
#define TA_BWD_DKDV_BOTH(D, NW, MT, BQ, KREG, SUFFIX)                                               \
    TA_BWD_DKDV(f16, D, false, NW, MT, BQ, KREG, true, SUFFIX##a) TA_BWD_DKDV(bf16, D, true, NW, MT, BQ, KREG, true, SUFFIX##a) \
    TA_BWD_DKDV(f16, D, false, NW, MT, BQ, KREG, false, SUFFIX##s) TA_BWD_DKDV(bf16, D, true, NW, MT, BQ, KREG, false, SUFFIX##s)
#define TA_BWD_DKDVP_BOTH(D, BQ, SUFFIX)                                                               \
    TA_BWD_DKDVP(f16, D, false, BQ, true, false, SUFFIX##a) TA_BWD_DKDVP(bf16, D, true, BQ, true, false, SUFFIX##a) \
    TA_BWD_DKDVP(f16, D, false, BQ, false, false, SUFFIX##s) TA_BWD_DKDVP(bf16, D, true, BQ, false, false, SUFFIX##s)
// the same with a GQA group split over gridDim.z blocks (fp32 dK/dV atomics): kernels <SUFFIX>g<a|s>
#define TA_BWD_DKDVP_SPLIT_BOTH(D, BQ, SUFFIX)                                                         \
    TA_BWD_DKDVP(f16, D, false, BQ, true, true, SUFFIX##ga) TA_BWD_DKDVP(bf16, D, true, BQ, true, true, SUFFIX##ga) \
    TA_BWD_DKDVP(f16, D, false, BQ, false, true, SUFFIX##gs) TA_BWD_DKDVP(bf16, D, true, BQ, false, true, SUFFIX##gs)
#define TA_BWD_DQ_BOTH(D, NW, BK, SUFFIX) TA_BWD_DQ(f16, D, false, NW, BK, SUFFIX) TA_BWD_DQ(bf16, D, true, NW, BK, SUFFIX)

// cupy_backward.DKDV_VARIANTS / DQ_VARIANTS list the same (NW, MT, BQ, KREG[, layout]) and (NW, BK); tests check
// they agree
TA_BWD_COMMON(f16, 32, false) TA_BWD_COMMON(bf16, 32, true)
TA_BWD_COMMON(f16, 64, false) TA_BWD_COMMON(bf16, 64, true)
TA_BWD_COMMON(f16, 96, false) TA_BWD_COMMON(bf16, 96, true)
TA_BWD_COMMON(f16, 128, false) TA_BWD_COMMON(bf16, 128, true)
TA_BWD_DKDV_BOTH(32, 4, 1, 64, true, w4m1q64r)
TA_BWD_DKDV_BOTH(64, 4, 2, 32, false, w4m2q32)
TA_BWD_DKDV_BOTH(96, 4, 1, 32, false, w4m1q32)
TA_BWD_DKDV_BOTH(128, 8, 1, 64, false, w8m1q64)
// the defaults at d = 64 / 128 since run S20-3 (bwd_dkdv_fast.cuh): 1.24 / 1.00x torch flash without mask
TA_BWD_DKDVX_BOTH(64, 4, 2, 32, true, w4m2q32xf)
TA_BWD_DKDVX_BOTH(128, 8, 1, 64, true, w8m1q64xf)
TA_BWD_CONVERT_FRAG(f16, 64, false) TA_BWD_CONVERT_FRAG(bf16, 64, true)
TA_BWD_CONVERT_FRAG(f16, 128, false) TA_BWD_CONVERT_FRAG(bf16, 128, true)
TA_BWD_DKDVP_BOTH(128, 64, w8q64p)
TA_BWD_DKDVP_SPLIT_BOTH(128, 64, w8q64p)
TA_BWD_DQ_BOTH(32, 4, 64, w4k64)
TA_BWD_DQ_BOTH(64, 4, 64, w4k64)
TA_BWD_DQ_BOTH(96, 4, 32, w4k32)
TA_BWD_DQ_BOTH(128, 4, 64, w4k64)
#ifdef TA_FLASH_ALL_VARIANTS
// the sweep (benchmarks/NOTES.md, runs B1-B2 and Session 20): step 0 = w4m1q64r (d 64) / w4m1q32 (d 128)
TA_BWD_DKDV_BOTH(64, 4, 1, 64, true, w4m1q64r)
TA_BWD_DKDV_BOTH(64, 8, 1, 64, true, w8m1q64r)
TA_BWD_DKDV_BOTH(64, 8, 2, 32, false, w8m2q32)
TA_BWD_DKDV_BOTH(128, 4, 1, 32, false, w4m1q32)
TA_BWD_DKDV_BOTH(128, 8, 1, 32, false, w8m1q32)
TA_BWD_DKDV_BOTH(128, 4, 1, 64, false, w4m1q64)
TA_BWD_DQ_BOTH(128, 4, 32, w4k32)
TA_BWD_DQ_BOTH(64, 8, 64, w8k64)
// Session 20: the FA2 layout (bwd_dkdv_smem.cuh) at d = 64
TA_BWD_DKDVP_BOTH(64, 64, w8q64p)
TA_BWD_DKDVP_BOTH(64, 128, w8q128p)
// Session 20 (bwd2): precomputed shared addresses without the fragment-order dQ (x; the shipped xf has both)
TA_BWD_DKDVX_BOTH(64, 4, 2, 32, false, w4m2q32x)
TA_BWD_DKDVX_BOTH(128, 8, 1, 64, false, w8m1q64x)
#endif
#if defined(TA_FLASH_ALL_VARIANTS) || defined(TA_BWD_GQA_FAST)
// Session 21 (gqa): w8m1q64xf with the causal-GQA group split (both fast-address steps; w8q64p has neither);
// TA_BWD_GQA_FAST alone adds just these 4 kernels to the shipped build (the compile test, ~30 s)
TA_BWD_DKDVXG_BOTH(128, 8, 1, 64, w8m1q64xfg)
#endif
