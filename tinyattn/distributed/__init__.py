"""Attention split across devices (chapter 12).

- :mod:`.sharding`: contiguous, zig-zag and striped sequence layouts; causal work per ring step.
- :mod:`.local`: one device's partial attention and the log-sum-exp merge (chapter 06's rule).
- :func:`ring_attention` / :func:`ulysses_attention`: single-process simulations with exact
  accounting of bytes sent and peak memory per device.
- ``mpiexec -n P python -m tinyattn.distributed.ring``: the same algorithms on MPI (mpi4py), checked
  against dense attention (exit status 0 iff equal). mpi4py is imported only there.
- :mod:`.ring_loop`: the ring loop shared by every transport (double-buffered, chunk-level causal
  masking); :mod:`.ring_cuda` / ``python -m tinyattn.distributed.ring_nccl``: the same loop on GPUs
  with the CuPy flash kernel and NCCL send/recv (CuPy imported only there).
"""
from __future__ import annotations

from .local import block_visible, merge_lse, partial_attention
from .sharding import LAYOUTS, causal_work, imbalance, shard_indices
from .simulate import Device, RingStats, ring_attention, ulysses_attention

__all__ = ["ring_attention", "ulysses_attention", "RingStats", "Device", "merge_lse", "partial_attention", "block_visible",
           "LAYOUTS", "shard_indices", "causal_work", "imbalance"]
