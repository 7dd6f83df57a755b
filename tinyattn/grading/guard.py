"""The worker's guard (placeholder: filled in by the audit-hook and forbidden-implementation steps)."""
from __future__ import annotations

import contextlib

_FLAGS: list[str] = []


def configure(settings: dict) -> None:
    pass


@contextlib.contextmanager
def student_code():
    yield


def take_flags() -> list[str]:
    out = list(_FLAGS)
    _FLAGS.clear()
    return out
