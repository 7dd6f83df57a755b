"""Shared first import of the GPU benchmark scripts (``import _gpu_path`` before cupy/torch/tinyattn).

- puts the repository root on ``sys.path`` (``ROOT``), so ``tinyattn`` imports without installation;
- lets ``tinyattn.gpu`` import on a device machine that lacks the CPU course's extra dependencies:
  if ``import tinyattn.gpu`` fails there, a bare ``tinyattn`` package stands in (the GPU package needs
  nothing from the rest of tinyattn);
- numba-cuda 0.30 still calls ``np.row_stack``, removed in numpy 2.5: alias it to ``np.vstack``.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np

if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
try:
    import tinyattn.gpu  # noqa: F401
except Exception:
    pkg = types.ModuleType("tinyattn")
    pkg.__path__ = [str(ROOT / "tinyattn")]
    sys.modules["tinyattn"] = pkg
