"""The CuPy module for a test that needs a CUDA GPU; the test is skipped (not failed) without one."""
from __future__ import annotations

import pytest


def cupy_or_skip():
    """``cupy`` if it imports and a CUDA device is available, else ``pytest.skip`` with the reason."""
    cp = pytest.importorskip("cupy")
    try:
        if not cp.cuda.is_available():
            pytest.skip("no CUDA GPU")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no CUDA GPU ({e})")
    return cp
