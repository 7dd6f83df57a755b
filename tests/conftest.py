"""Shared test configuration (options --impl/--impl-dir and the ``impl`` fixture come from the
plugin tinyattn.grading.plugin, loaded through pyproject's addopts).

The Numba CUDA simulator must be chosen before numba is first imported (GPU.md), so it is set here, at
the very top, for every test process (xdist workers included).
"""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

GRADED = Path(__file__).parent / "graded"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config):
    """Graded tests run through the grader (or an explicit --impl), not in the plain unit-test run."""
    if config.getoption("--impl") is None and GRADED in (collection_path, *collection_path.parents):
        return True
    return None
