"""Carry stored outputs over to prose-only edits: python tools/resync.py NN [NN ...].

For a notebook whose markdown (or cell tags, or slide types) changed but whose code did not, rebuild
notebooks/NN_*.ipynb from notebooks/src/NN_*.py keeping every code cell's stored outputs, instead of
re-executing it. Refuses (exit 1) when a code cell changed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbtools import resync, write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(names: list[str]) -> int:
    rc = 0
    for n in names:
        for src in sorted((ROOT / "notebooks" / "src").glob(f"{n.zfill(2)}_*.py")):
            path = ROOT / "notebooks" / f"{src.stem}.ipynb"
            try:
                write(resync(src, nbformat.read(str(path), as_version=4)), path)
                print(f"resynced {path.name}")
            except ValueError as exc:
                print(f"not resynced: {exc}", file=sys.stderr)
                rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
