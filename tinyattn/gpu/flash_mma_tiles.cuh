// Shared-memory tiles of the tensor-core forward (chapter 07 section 4): the XOR swizzle that makes
// ldmatrix conflict-free, and the cp.async loader that fills a swizzled tile. Included by
// flash_mma.cu (namespace fa_mma).
#pragma once
#include "ptx_utils.cuh"

namespace fa_mma {

// element offset of (row, col) in a swizzled [rows][D] tile; col is a multiple of 8.
// ldmatrix reads one 16-byte chunk from each of 8 consecutive rows: conflict-free when the 8 land in
// the 8 different 16-byte slots of a 128-byte bank line.
//   D % 64 == 0 (a row is a multiple of 128 bytes): chunk ^ (row & 7).
//   D = 32, 96  (a row is 64 bytes mod 128, so odd rows start half a line over): chunk ^ ((row >> 1) & 3);
//                the XOR stays inside each aligned group of 4 chunks (4 or 12 chunks per row) and the
//                8 rows then hit slots 4 * (row & 1) + (chunk ^ ((row >> 1) & 3)) mod 8: all different.
template <int D>
__device__ __forceinline__ int swz(int row, int col) {
    static_assert(D % 32 == 0, "head dim: a multiple of 32");
    const int x = (D % 64 == 0) ? (row & 7) : ((row >> 1) & 3);
    return row * D + ((((col >> 3) ^ x)) << 3);
}

// rows [r0, r0 + ROWS) of a (n, D) matrix -> swizzled shared tile, rows >= n zero-filled.
// When the NT threads cover whole rows (NT % (D/8) == 0: D = 32, 64, 128), thread tid always copies
// the same 16-byte column chunk of rows tid/(D/8) + i*(NT/(D/8)): a loop of constant trip count whose
// addresses are one base plus immediates (v2 computed row/col per chunk). Otherwise (D = 96: 12
// chunks a row, 128 threads) the generic loop: chunk i -> row i / (D/8), column chunk i % (D/8).
// SPLIT (sweep variants 'l', D = 96, session 21): the tile as two constant-trip copies instead, columns
// 0-63 (8 chunks a row, NT / 8 rows a round) and 64-95 (4 chunks, NT / 4 rows a round); both round
// strides are multiples of 8 rows, so each thread's swizzled chunk stays put and every address is
// one base plus an immediate (the generic loop divides per chunk and builds 64-bit addresses).
template <int D, int ROWS, int NT, bool SPLIT = false>
__device__ __forceinline__ void load_tile_async(u16* s, const u16* g, int r0, int n, int tid) {
    constexpr int CPR = D / 8;                    // 16-byte chunks per row
    static_assert((ROWS * CPR) % NT == 0, "tile / thread shape");
    constexpr int CA = (D / 64) * 8;              // SPLIT: chunks of the first part (D = 96: 8)
    static_assert(!SPLIT || (D % 64 == 32 && CA > 0 && (NT / CA) % 8 == 0 && ROWS % (NT / CA) == 0
                             && ROWS % (NT / 4) == 0), "SPLIT loader: D = 64 j + 32 and whole rounds of rows");
    if constexpr (SPLIT) {
        constexpr int SA = NT / CA, SB = NT / 4;  // rows per round of each part (multiples of 8)
        const int ra = tid / CA, ca = (tid % CA) * 8, rb = tid / 4, cb = CA * 8 + (tid % 4) * 8;
        const u32 da = smem_u32(s + swz<D>(ra, ca)), db = smem_u32(s + swz<D>(rb, cb));
        const u16* ga = g + (size_t)(r0 + ra) * D + ca;
        const u16* gb = g + (size_t)(r0 + rb) * D + cb;
#pragma unroll
        for (int i = 0; i < ROWS / SA; ++i) {
            const bool ok = r0 + ra + i * SA < n;
            cp_async16(da + i * SA * D * 2, ok ? ga + (size_t)i * SA * D : g, ok ? 16 : 0);
        }
#pragma unroll
        for (int i = 0; i < ROWS / SB; ++i) {
            const bool ok = r0 + rb + i * SB < n;
            cp_async16(db + i * SB * D * 2, ok ? gb + (size_t)i * SB * D : g, ok ? 16 : 0);
        }
    } else if constexpr (NT % CPR == 0 && (NT / CPR) % 8 == 0) {
        constexpr int STEP = NT / CPR;            // rows advanced per round (a multiple of 8)
        const int row = tid / CPR, col = (tid % CPR) * 8;
        const u32 dst = smem_u32(s + swz<D>(row, col));   // row & 7 is the same for every round
        const u16* src = g + (size_t)(r0 + row) * D + col;
#pragma unroll
        for (int i = 0; i < ROWS / STEP; ++i) {
            const bool ok = r0 + row + i * STEP < n;
            cp_async16(dst + i * STEP * D * 2, ok ? src + (size_t)i * STEP * D : g, ok ? 16 : 0);
        }
    } else {
#pragma unroll
        for (int i = tid; i < ROWS * CPR; i += NT) {
            const int row = i / CPR, col = (i % CPR) * 8;
            const bool ok = r0 + row < n;
            cp_async16(smem_u32(s + swz<D>(row, col)), ok ? g + (size_t)(r0 + row) * D + col : g, ok ? 16 : 0);
        }
    }
}

}  // namespace fa_mma
