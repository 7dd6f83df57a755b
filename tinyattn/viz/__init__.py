"""Plotting helpers (matplotlib only). Each topic has its own submodule, loaded on first use:
``from tinyattn.viz import attention as va`` or ``ta.viz.attention``."""
from __future__ import annotations

import importlib
from typing import Any


def setup_notebook(dpi: int = 80) -> None:
    """Small PNG figures with one fixed style, so stored notebooks stay small and reproducible."""
    import matplotlib

    matplotlib.rcParams.update({
        "figure.dpi": dpi, "savefig.dpi": dpi, "figure.figsize": (6.0, 3.5),
        "axes.grid": True, "grid.alpha": 0.3, "font.size": 10,
        "axes.spines.top": False, "axes.spines.right": False,
    })


def __getattr__(name: str) -> Any:
    try:
        module = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        raise AttributeError(f"tinyattn.viz has no submodule {name!r}") from exc
    globals()[name] = module
    return module
