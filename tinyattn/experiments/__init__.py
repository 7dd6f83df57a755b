"""Experiments (layer 4): seeded harnesses that train tiny models and measure them.

``extrapolation``: chapter 05's length-extrapolation study (six position encodings trained at
length L, evaluated at L, 2L, 4L, 8L; RoPE extended with PI, NTK-aware, dynamic NTK and YaRN).
``tasks``: the long-context task it trains on (associative recall among distractors).
"""
from . import tasks
from .tasks import distractor_recall

__all__ = ["tasks", "distractor_recall", "extrapolation"]


def __getattr__(name: str):
    if name == "extrapolation":                     # imports models/train: loaded on first use
        import importlib
        return importlib.import_module(".extrapolation", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
