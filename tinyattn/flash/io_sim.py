"""An IO simulator for attention: count the elements moved between HBM and SRAM.

The algorithms in :mod:`tinyattn.flash.forward` call ``counter.read(n)`` / ``counter.write(n)``
every time they move a tile between "HBM" (the big slow memory: NumPy arrays passed in or
returned) and "SRAM" (the small fast memory: the tile they work on). The counter therefore
measures the algorithm as written, independently of the closed forms below, which transcribe
the FlashAttention paper's analysis (Dao et al. 2022, Algorithm 1 and Theorem 2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "HBMCounter", "SRAMOverflow", "fa1_block_sizes", "standard_attention_io", "fa1_io", "fa2_io",
    "standard_attention",
]


class SRAMOverflow(RuntimeError):
    """Raised by a strict :class:`HBMCounter` when the tiles held on chip exceed ``M`` elements."""


@dataclass
class HBMCounter:
    """Counts elements read from / written to HBM, and (optionally) SRAM occupancy.

    ``M``: SRAM budget in elements (None = unlimited). With ``strict=True``, ``hold(n)`` raises
    :class:`SRAMOverflow` when more than ``M`` elements would be on chip at once.
    ``tiles_computed`` / ``tiles_skipped`` count (query block, key block) pairs, so causal tile
    skipping can be measured. ``by_name`` splits the traffic by what was moved ("Q", "K", "S", ...).
    """

    M: int | None = None
    strict: bool = False
    reads: int = 0
    writes: int = 0
    tiles_computed: int = 0
    tiles_skipped: int = 0
    sram_in_use: int = 0
    sram_peak: int = 0
    by_name: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        """reads + writes, in elements."""
        return self.reads + self.writes

    def _log(self, kind: str, n: int, name: str | None) -> None:
        if n < 0:
            raise ValueError(f"n_elements must be >= 0, got {n}")
        if name is not None:
            key = f"{kind} {name}"
            self.by_name[key] = self.by_name.get(key, 0) + int(n)

    def read(self, n_elements: int, name: str | None = None) -> None:
        """Record ``n_elements`` moved HBM -> SRAM."""
        self._log("read", n_elements, name)
        self.reads += int(n_elements)

    def write(self, n_elements: int, name: str | None = None) -> None:
        """Record ``n_elements`` moved SRAM -> HBM."""
        self._log("write", n_elements, name)
        self.writes += int(n_elements)

    def hold(self, n_elements: int) -> None:
        """Claim ``n_elements`` of SRAM (a tile now lives on chip)."""
        self.sram_in_use += int(n_elements)
        self.sram_peak = max(self.sram_peak, self.sram_in_use)
        if self.strict and self.M is not None and self.sram_in_use > self.M:
            raise SRAMOverflow(f"SRAM holds {self.sram_in_use} elements > M = {self.M}")

    def release(self, n_elements: int) -> None:
        """Give back ``n_elements`` of SRAM."""
        self.sram_in_use -= int(n_elements)

    def tile(self, skipped: bool) -> None:
        """Record one (query block, key block) pair as computed or skipped."""
        if skipped:
            self.tiles_skipped += 1
        else:
            self.tiles_computed += 1


def fa1_block_sizes(d: int, M: int) -> tuple[int, int]:
    """FlashAttention-1 block sizes (Algorithm 1, line 1): ``B_c = ceil(M/4d)``, ``B_r = min(B_c, d)``.

    Returns ``(B_r, B_c)`` = (query block, key block). Requires ``1 <= d <= M``.
    """
    if d < 1 or M < d:
        raise ValueError(f"need 1 <= d <= M, got d={d}, M={M}")
    b_c = math.ceil(M / (4 * d))
    return min(b_c, d), b_c


def standard_attention_io(N: int, d: int) -> dict:
    """Standard attention's HBM traffic in elements (paper's Algorithm 0, read literally).

    S = QK^T: read Q, K (2Nd), write S (N^2); P = softmax(S): read S, write P (2N^2);
    O = PV: read P, V (N^2 + Nd), write O (Nd). Reads 3Nd + 2N^2, writes 2N^2 + Nd.
    """
    reads = 3 * N * d + 2 * N * N
    writes = 2 * N * N + N * d
    return {"reads": reads, "writes": writes, "total": reads + writes}


def fa1_io(N: int, d: int, M: int) -> int:
    """FlashAttention-1's HBM traffic in elements: ``3Nd + 2N + T_c (3Nd + 4N)``.

    Init O, l, m (writes Nd + 2N); K_j, V_j read once (2Nd); for each of the T_c key blocks every
    query row reads Q_i, O_i, l_i, m_i (2Nd + 2N) and writes O_i, l_i, m_i (Nd + 2N).
    """
    _, b_c = fa1_block_sizes(d, M)
    t_c = math.ceil(N / b_c)
    return 3 * N * d + 2 * N + t_c * (3 * N * d + 4 * N)


def fa2_io(N: int, d: int, block_q: int) -> int:
    """FlashAttention-2's (non-causal) HBM traffic in elements: ``2Nd + N + T_r * 2Nd``.

    Each of the T_r = ceil(N / block_q) query blocks reads Q_i once and streams all of K, V (2Nd);
    O_i (Nd in total) and lse_i (N in total) are written once. No O/l/m round trips.
    """
    t_r = math.ceil(N / block_q)
    return 2 * N * d + N + t_r * 2 * N * d


def standard_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, scale: float | None = None,
                       counter: HBMCounter | None = None) -> np.ndarray:
    """Naive attention ``softmax(q k^T * scale) v`` with the N x N matrices materialised.

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)``, ``v: (..., Lk, dv)`` -> ``(..., Lq, dv)``. With a counter,
    every array that the three-kernel implementation moves through HBM is counted.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    c = counter if counter is not None else HBMCounter()
    c.read(q.size, "Q"); c.read(k.size, "K")
    s = (q @ np.swapaxes(k, -1, -2)) * scale                          # kernel 1: S = Q K^T
    c.write(s.size, "S")
    c.read(s.size, "S")
    p = np.exp(s - s.max(axis=-1, keepdims=True))                     # kernel 2: P = softmax(S)
    p /= p.sum(axis=-1, keepdims=True)
    c.write(p.size, "P")
    c.read(p.size, "P"); c.read(v.size, "V")
    out = p @ v                                                       # kernel 3: O = P V
    c.write(out.size, "O")
    return out
