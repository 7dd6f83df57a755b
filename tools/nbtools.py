"""Notebook tooling: percent-format sources -> .ipynb (read with jupytext), and headless execution.

A source ``notebooks/src/NN_topic.py`` is a plain Python file in "percent" format::

    # %% [markdown]
    # # Title
    # prose ...

    # %%
    x = 1   # a code cell

``build_notebook`` turns it into an nbformat v4 notebook; ``execute`` runs one in a fresh kernel
(working directory: the notebook's folder) so the stored outputs are the ones CI re-checks with nbval.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

MARKER = re.compile(r"^# %%(?P<md>\s*\[markdown\])?(?P<rest>.*)$")


KEPT_METADATA = ("tags", "slideshow")   # cell metadata carried from a source header into the notebook


def percent_cells(text: str) -> list[nbformat.NotebookNode]:
    """The non-empty cells of a percent-format source, as jupytext reads them (``py:percent``).

    A header may carry cell metadata as JSON values: tags (``# %% tags=["ledger-06-s3"]``) and the
    reveal.js slide type (``# %% [markdown] slideshow={"slide_type": "slide"}``, see CONTRIBUTING.md).
    Code before the first ``# %%`` marker is refused (it would be a hidden cell in jupytext's reading).
    """
    import jupytext

    for line in text.splitlines():
        if MARKER.match(line):
            break
        if line.strip() and not line.startswith("#"):
            raise ValueError(f"code before the first '# %%' marker: {line!r}")
    return [c for c in jupytext.reads(text, fmt="py:percent").cells if c.source.strip()]


def parse_percent_cells(text: str) -> list[tuple[str, str, list[str]]]:
    """Split a percent-format source into ``(cell_type, source, tags)`` triples, in order.

    The parsing is jupytext's (``py:percent``, see ``percent_cells``), so the same file opens as a
    notebook in JupyterLab with jupytext installed. Empty cells are dropped.
    """
    return [(c.cell_type, c.source.strip("\n"), list(c.metadata.get("tags", []))) for c in percent_cells(text)]


def slide_types(cells) -> list[str | None]:
    """Each non-empty cell's reveal.js ``slide_type`` (None when unset), for a notebook's or a source's
    cells (``percent_cells``): the stored notebook and its source must agree."""
    return [c.metadata.get("slideshow", {}).get("slide_type") for c in cells if c.source.strip()]


def parse_percent(text: str) -> list[tuple[str, str]]:
    """Split a percent-format source into ``(cell_type, source)`` pairs, in order."""
    return [(kind, source) for kind, source, _ in parse_percent_cells(text)]


def build_notebook(src: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for c in percent_cells(src.read_text(encoding="utf-8")):
        source = c.source.strip("\n")
        cell = nbformat.v4.new_markdown_cell(source) if c.cell_type == "markdown" else nbformat.v4.new_code_cell(source)
        cell.pop("id", None)
        cell.metadata.update({k: c.metadata[k] for k in KEPT_METADATA if c.metadata.get(k)})
        nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def tags_of(nb: nbformat.NotebookNode) -> list[list[str]]:
    """Each non-empty cell's tags, in order (compare with ``parse_percent_cells``)."""
    return [list(c.metadata.get("tags", [])) for c in nb.cells if c.source.strip()]


def cells_of(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """``(cell_type, source)`` pairs of a notebook, for comparing a stored notebook with its source."""
    return [(c.cell_type, c.source.strip("\n")) for c in nb.cells if c.source.strip()]


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 900) -> nbformat.NotebookNode:
    """Run every cell top to bottom in one fresh python3 kernel; raises on the first error."""
    import tempfile

    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    # local IPC sockets in a private temp folder: no TCP ports, no "unencrypted TCP" warning
    with tempfile.TemporaryDirectory(prefix="tinyattn-kernel-") as tmp:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=f"{tmp}/kernel")
        client = NotebookClient(nb, km=km, timeout=timeout, record_timing=False,
                                resources={"metadata": {"path": str(cwd)}})
        client.execute()
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def resync(src: Path, stored: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook of ``src`` with the stored outputs carried over, for prose-only edits.

    Markdown cells and cell metadata (tags, slide types) come from the source; every code cell must be unchanged (same
    source, same position), and keeps its stored outputs. Raises ``ValueError`` naming the first
    code cell that differs: then the notebook must be re-executed (``course.py regen NN``).
    """
    new = build_notebook(src)
    old_code = [c for c in stored.cells if c.cell_type == "code" and c.source.strip()]
    new_code = [c for c in new.cells if c.cell_type == "code"]
    if len(old_code) != len(new_code):
        raise ValueError(f"{src.name}: {len(new_code)} code cells, stored notebook has {len(old_code)}")
    for i, (a, b) in enumerate(zip(old_code, new_code)):
        if a.source.strip("\n") != b.source.strip("\n"):
            raise ValueError(f"{src.name}: code cell {i} changed; re-execute the notebook")
        b.outputs, b.execution_count = a.outputs, a.execution_count
    new.metadata = stored.metadata            # kernel and language info as the last execution wrote them
    return new
