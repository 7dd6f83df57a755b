"""The claims ledger as data: every chapter's "Claims ledger" table gathered into ledger/claims.json.

Each chapter notebook ends with a markdown table ``| source-text claim (section) | what we measured
(cell) | verdict |``. This tool turns those tables into one machine-readable file and ties every row
to the notebook cell that checks it:

    python tools/ledger.py tag [NN ...]  tag, in notebooks/src/*.py and the stored .ipynb, the cells rows point to
    python tools/ledger.py build    write ledger/claims.json from the stored notebooks
    python tools/ledger.py check    exit 1 if ledger/claims.json differs from the notebooks' tables

A row whose "measured" column names a section ("§3", "§3–5") is checked by the first code cell of
that section, tagged ``ledger-NN-sK``; any other row (an unsourced claim has nothing to measure) by
the ledger cell itself, tagged ``ledger-NN``. Tags use the percent format's ``# %% tags=[...]``
header (jupytext's syntax), so they survive regeneration.

Entry fields: ``id`` (NN.kk, chapter and row), ``chapter``, ``notebook``, ``cell`` (the tag),
``claim``, ``measured``, ``verdict`` (reproduced / corrected / unsourced), ``verdict_text`` (the
table's words), ``corrected`` (the measured value for a corrected claim, else null) and ``source``
(where the verdict's evidence lives).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LEDGER = ROOT / "ledger" / "claims.json"
VERDICTS = ("corrected", "unsourced", "reproduced")
HEADING = re.compile(r"^#+\s*Claims ledger", re.M)
SECTION = re.compile(r"^##\s+(\d+)\.", re.M)
SECREF = re.compile(r"(?<!chapter \d\d )(?<!chapter \d\d, )§\s*(\d+)")   # not "chapter 06 §9"


def split_row(line: str) -> list[str]:
    """Cells of one markdown table row (pipes inside `code` or $math$ are not separators)."""
    cells, buf, code, math = [], "", False, False
    body = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    for ch in body:
        if ch == "`":
            code = not code
        elif ch == "$" and not code:
            math = not math
        if ch == "|" and not code and not math:
            cells.append(buf.strip()); buf = ""
        else:
            buf += ch
    cells.append(buf.strip())
    return cells


def ledger_rows(source: str) -> list[list[str]]:
    """The 3-column rows of the first table after a "Claims ledger" heading in a markdown cell."""
    m = HEADING.search(source)
    if not m:
        return []
    rows, started = [], False
    for line in source[m.end():].splitlines():
        if line.strip().startswith("|"):
            started = True
            cells = split_row(line)
            if all(set(c) <= set("-: ") for c in cells) or cells[0].lower().startswith(("source", "source-text")):
                continue                                   # separator or header row
            rows.append(cells)
        elif started:
            break
    return rows


def verdict_of(text: str) -> str:
    t = text.lower().replace("*", "")
    for v in VERDICTS:                                    # "corrected" wins over a partial "reproduced"
        if v in t:
            return v
    if "wording wrong" in t or "wrong" in t:
        return "corrected"
    raise ValueError(f"verdict {text!r} names none of {VERDICTS}")


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def section_first_code_cells(nb) -> dict[int, int]:
    """Section number -> index of the first code cell after its '## N.' heading."""
    out, current = {}, None
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown":
            for m in SECTION.finditer(c.source):
                current = int(m.group(1))
        elif current is not None and current not in out:
            out[current] = i
    return out


def entries_of(path: Path) -> tuple[list[dict], dict[int, str]]:
    """Ledger entries of one stored notebook, and the tags its cells need (cell index -> tag)."""
    nb = nbformat.read(str(path), as_version=4)
    chapter = path.name[:2]
    firsts = section_first_code_cells(nb)
    entries, tags = [], {}
    for i, c in enumerate(nb.cells):
        if c.cell_type != "markdown" or not HEADING.search(c.source):
            continue
        for k, cells in enumerate(ledger_rows(c.source), start=1):
            if len(cells) != 3:
                raise ValueError(f"{path.name}: ledger row {k} has {len(cells)} columns, expected 3: {cells}")
            claim, measured, vtext = cells
            ref = SECREF.search(measured)
            if ref and int(ref.group(1)) in firsts:
                cell_i, tag = firsts[int(ref.group(1))], f"ledger-{chapter}-s{ref.group(1)}"
            else:
                cell_i, tag = i, f"ledger-{chapter}"
            tags[cell_i] = tag
            verdict = verdict_of(vtext)
            entries.append({
                "id": f"{chapter}.{k:02d}", "chapter": chapter, "notebook": f"notebooks/{path.name}",
                "cell": tag, "claim": claim, "measured": measured, "verdict": verdict, "verdict_text": vtext,
                "corrected": measured if verdict == "corrected" else None,
                "source": ("none given in the source text" if verdict == "unsourced"
                           else f"notebooks/{path.name}, cell tagged {tag}"),
            })
        break
    return entries, tags


def build() -> dict:
    entries = []
    for p in notebooks():
        entries += entries_of(p)[0]
    counts = {v: sum(e["verdict"] == v for e in entries) for v in VERDICTS}
    return {"about": "every claims-ledger row of the course notebooks; regenerate with "
                     "`python tools/ledger.py build`", "counts": counts, "entries": entries}


def tag_all(chapters: list[str] | None = None) -> None:
    for p in notebooks():
        if chapters and p.name[:2] not in chapters:
            continue
        _, tags = entries_of(p)
        nb = nbformat.read(str(p), as_version=4)
        for i, c in enumerate(nb.cells):              # stored notebook: replace ledger tags
            old = [t for t in c.metadata.get("tags", []) if not t.startswith("ledger-")]
            new = old + ([tags[i]] if i in tags else [])
            if new:
                c.metadata["tags"] = new
            else:
                c.metadata.pop("tags", None)
        nbformat.write(nb, str(p))
        src = NOTEBOOKS / "src" / (p.stem + ".py")
        if src.exists():
            _tag_source_simple(src, tags)


def _tag_source_simple(src: Path, tags: dict[int, str]) -> None:
    """Tag the k-th non-empty cell's '# %%' header (cells in the source map one to one to the notebook)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from nbtools import parse_percent
    text = src.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    headers = [j for j, ln in enumerate(lines) if ln.startswith("# %%")]
    bounds = headers + [len(lines)]
    nonempty = [headers[n] for n in range(len(headers))
                if parse_percent("".join(lines[bounds[n]:bounds[n + 1]]))]
    for n, j in enumerate(nonempty):
        head = lines[j].rstrip("\n")
        m = re.search(r"\s*tags=\[(.*?)\]", head)
        have = [t for t in (re.findall(r'"([^"]+)"', m.group(1)) if m else []) if not t.startswith("ledger-")]
        if n in tags:
            have.append(tags[n])
        base = head[:m.start()] if m else head
        lines[j] = base + (" tags=[" + ", ".join(f'"{t}"' for t in have) + "]" if have else "") + "\n"
    src.write_text("".join(lines), encoding="utf-8")


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "check"
    if cmd == "tag":
        tag_all(argv[1:] or None)
        print("tagged the cells ledger rows point to")
        return 0
    data = build()
    if cmd == "build":
        LEDGER.parent.mkdir(exist_ok=True)
        LEDGER.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {LEDGER.relative_to(ROOT)}: {len(data['entries'])} entries, {data['counts']}")
        return 0
    if cmd == "check":
        have = json.loads(LEDGER.read_text(encoding="utf-8")) if LEDGER.exists() else None
        if have != data:
            print("ledger/claims.json is out of date: run `python tools/ledger.py build`", file=sys.stderr)
            return 1
        print(f"ledger/claims.json matches the notebooks ({len(data['entries'])} entries)")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
