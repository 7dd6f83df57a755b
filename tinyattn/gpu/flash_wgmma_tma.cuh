// Steps B and C of issue 14 (TMA producer warpgroup, mbarrier ring, setmaxnreg, intra-warpgroup overlap,
// ping-pong), included by flash_wgmma.cu after its helpers (namespace fa_wg).
#pragma once

namespace fa_wg {

// ---------------------------------------------------------------- steps B, C: TMA producer + consumers
// Warpgroup 0 is the producer: after giving registers away (setmaxnreg.dec) one thread issues TMA box
// copies: Q once, then K and V tiles into a ring of STAGES buffers. full[s] completes when a tile's
// bytes have landed (expect_tx + complete_tx), empty[s] when every consumer warp has finished reading
// it (one arrive per warp). Warpgroups 1..NWG consume (setmaxnreg.inc), 64 query rows each.
// OVL (step C1): S_t = Q K_t^T is issued before O += P_{t-1} V_{t-1}, and the softmax of S_t runs while
//   that P V is still in the tensor cores (P kept in fp32 until the P V lands; O rescaled after it).
// PP (step C2): two consumer warpgroups take turns issuing their wgmmas (named barriers 1 and 2), so
//   one warpgroup's softmax overlaps the other's matrix products.
// tmaps: three 128-byte CUtensorMaps (Q, K, V) in global memory, each over the (BH, N, D) tensor as
// dims {D, N, BH}, box {64, rows, 1}, 128-byte swizzle, zero fill beyond N (the ragged end).
template <int D, bool BF16, int NWG, int BK, int STAGES, bool OVL, bool PP>
__device__ __forceinline__ void forward_b(const unsigned char* __restrict__ tmaps, u16* __restrict__ o,
                                          float* __restrict__ lse, int nq, int nk, float scale_log2, int causal) {
    constexpr int BQ = 64 * NWG;
    static_assert(!PP || (NWG == 2 && OVL), "ping-pong needs two consumer warpgroups and the OVL loop");
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    u16* sQ = reinterpret_cast<u16*>(align1024(smem_raw));
    u16* sK = sQ + BQ * D;
    u16* sV = sK + STAGES * BK * D;
    u64* bars = reinterpret_cast<u64*>(sV + STAGES * BK * D);   // [Q, fullK[S], fullV[S], emptyK[S], emptyV[S]]
    u64* barQ = bars;
    u64* fullK = bars + 1;
    u64* fullV = fullK + STAGES;
    u64* emptyK = fullV + STAGES;
    u64* emptyV = emptyK + STAGES;

    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31, wq = (tid >> 5) & 3;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BQ;
    const int bh = blockIdx.y;
    const int offset = nk - nq, n_tiles = tiles_needed<BQ, BK>(q0, nq, nk, causal);
    const void* tmQ = tmaps;
    const void* tmK = tmaps + 128;
    const void* tmV = tmaps + 256;

    if (tid == 0) {
        mbar_init(barQ, 1);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(&fullK[s], 1);
            mbar_init(&fullV[s], 1);
            mbar_init(&emptyK[s], 4 * NWG);
            mbar_init(&emptyV[s], 4 * NWG);
        }
        mbar_fence_init();
    }
    __syncthreads();

    if (wg == 0) {                                   // ---- producer
        setmaxnreg_dec<24>();
        if (tid == 0) {
            tma_prefetch_desc(tmK);
            tma_prefetch_desc(tmV);
            mbar_expect_tx(barQ, BQ * D * 2);
#pragma unroll
            for (int p = 0; p < D / 64; ++p) tma_load_3d(sQ + p * BQ * 64, tmQ, barQ, p * 64, q0, bh);
            for (int t = 0; t < n_tiles; ++t) {
                const int s = t % STAGES, ph = (t / STAGES) & 1;
                mbar_wait(&emptyK[s], ph ^ 1);       // a fresh barrier counts as released (parity 1)
                mbar_expect_tx(&fullK[s], BK * D * 2);
#pragma unroll
                for (int p = 0; p < D / 64; ++p) tma_load_3d(sK + s * BK * D + p * BK * 64, tmK, &fullK[s], p * 64, t * BK, bh);
                mbar_wait(&emptyV[s], ph ^ 1);
                mbar_expect_tx(&fullV[s], BK * D * 2);
#pragma unroll
                for (int p = 0; p < D / 64; ++p) tma_load_3d(sV + s * BK * D + p * BK * 64, tmV, &fullV[s], p * 64, t * BK, bh);
            }
        }
    } else {                                         // ---- consumers
        setmaxnreg_inc<(NWG == 2 ? 240 : 160)>();  // 128*24 + 128*NWG*this <= 64K registers
        const int c = wg - 1, g = lane >> 2, t4 = lane & 3;
        const int row0 = q0 + c * 64 + wq * 16 + g;
        const u32 sq = smem_u32(sQ + c * 64 * 64);
        float acc[D / 2], m[2] = {TA_NEG_INF, TA_NEG_INF}, l[2] = {0.f, 0.f};
#pragma unroll
        for (int i = 0; i < D / 2; ++i) acc[i] = 0.f;
        mbar_wait(barQ, 0);
        auto sk_of = [&](int t) { return smem_u32(sK + (t % STAGES) * BK * D); };
        auto sv_of = [&](int t) { return smem_u32(sV + (t % STAGES) * BK * D); };
        auto phase = [&](int t) { return (t / STAGES) & 1; };
        if constexpr (!OVL) {
            for (int t = 0; t < n_tiles; ++t) {
                float s[BK / 2];
                u32 pa[BK / 16][4];
                mbar_wait(&fullK[t % STAGES], phase(t));
                wgmma_fence();
                issue_qk<D, BQ, BK, BF16>(s, sq, sk_of(t));
                wgmma_commit();
                wgmma_wait<0>();
                reg_fence(s);
                if (lane == 0) mbar_arrive(&emptyK[t % STAGES]);
                float a0, a1;
                softmax_any<BK, BF16>(s, m, l, a0, a1, row0, q0, t * BK, nk, causal, offset, scale_log2, t4);
                pack_p<BK, BF16>(s, pa);
                rescale<D>(acc, a0, a1);
                mbar_wait(&fullV[t % STAGES], phase(t));
                wgmma_fence();
                issue_pv<D, BK, BF16>(acc, pa, sv_of(t));
                wgmma_commit();
                wgmma_wait<0>();
                reg_fence(acc);
                if (lane == 0) mbar_arrive(&emptyV[t % STAGES]);
            }
        } else {
            if (PP && c == 1) named_arrive(1, 256);  // consumer 0 issues first
            u32 pa[BK / 16][4];
            if (n_tiles > 0) {                       // prologue: S_0, P_0
                float s[BK / 2];
                mbar_wait(&fullK[0], 0);
                if constexpr (PP) named_sync(1 + c, 256);
                wgmma_fence();
                issue_qk<D, BQ, BK, BF16>(s, sq, sk_of(0));
                wgmma_commit();
                if constexpr (PP) named_arrive(1 + (c ^ 1), 256);
                wgmma_wait<0>();
                reg_fence(s);
                if (lane == 0) mbar_arrive(&emptyK[0]);
                float a0, a1;
                softmax_any<BK, BF16>(s, m, l, a0, a1, row0, q0, 0, nk, causal, offset, scale_log2, t4);
                pack_p<BK, BF16>(s, pa);
            }
            for (int t = 1; t < n_tiles; ++t) {
                float s[BK / 2];
                mbar_wait(&fullK[t % STAGES], phase(t));
                mbar_wait(&fullV[(t - 1) % STAGES], phase(t - 1));
                if constexpr (PP) named_sync(1 + c, 256);
                wgmma_fence();
                issue_qk<D, BQ, BK, BF16>(s, sq, sk_of(t));      // S_t = Q K_t^T
                wgmma_commit();
                issue_pv<D, BK, BF16>(acc, pa, sv_of(t - 1));    // O += P_{t-1} V_{t-1}
                wgmma_commit();
                if constexpr (PP) named_arrive(1 + (c ^ 1), 256);
                wgmma_wait<1>();                                 // S_t landed (P V may still run)
                reg_fence(s);
                if (lane == 0) mbar_arrive(&emptyK[t % STAGES]);
                float a0, a1;                                    // softmax of S_t while P V runs
                softmax_any<BK, BF16>(s, m, l, a0, a1, row0, q0, t * BK, nk, causal, offset, scale_log2, t4);
                wgmma_wait<0>();                                 // O += P_{t-1} V_{t-1} landed
                reg_fence(acc);
                if (lane == 0) mbar_arrive(&emptyV[(t - 1) % STAGES]);
                rescale<D>(acc, a0, a1);
                // P_t -> fragments only now: pa is an input of the P V wgmma that was in flight, and
                // writing it earlier makes ptxas serialise every wgmma (C7513)
                pack_p<BK, BF16>(s, pa);
            }
            if (n_tiles > 0) {                       // epilogue: O += P_last V_last
                const int t = n_tiles - 1;
                mbar_wait(&fullV[t % STAGES], phase(t));
                if constexpr (PP) named_sync(1 + c, 256);
                wgmma_fence();
                issue_pv<D, BK, BF16>(acc, pa, sv_of(t));
                wgmma_commit();
                if constexpr (PP) named_arrive(1 + (c ^ 1), 256);
                wgmma_wait<0>();
                reg_fence(acc);
                if (lane == 0) mbar_arrive(&emptyV[t % STAGES]);
            }
            if (PP && c == 0) named_sync(1, 256);    // consume consumer 1's last arrive
        }
        write_out<D, BF16>(acc, l, m, o + (size_t)bh * nq * D, lse + (size_t)bh * nq, row0, nq, scale_log2, t4);
    }
}

}  // namespace fa_wg
