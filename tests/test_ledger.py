"""The claims ledger as data (chapter 12): ledger/claims.json agrees with every chapter's ledger table,
each entry points to an existing tagged cell, and the catalogue of REFERENCE.md's errors and the
source text's tables is covered."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import ledger  # noqa: E402
from nbtools import parse_percent_cells, tags_of  # noqa: E402

CLAIMS = json.loads((ROOT / "ledger" / "claims.json").read_text(encoding="utf-8"))
CATALOGUE = json.loads((ROOT / "ledger" / "catalogue.json").read_text(encoding="utf-8"))


def test_claims_file_agrees_with_every_chapter_table():
    assert ledger.build() == CLAIMS, "ledger/claims.json is stale: run `python tools/ledger.py build`"


def test_every_chapter_has_a_ledger():
    chapters = {p.name[:2] for p in ledger.notebooks()}
    assert chapters == {e["chapter"] for e in CLAIMS["entries"]}


@pytest.mark.parametrize("entry", CLAIMS["entries"], ids=lambda e: e["id"])
def test_entry_points_to_an_existing_tagged_cell(entry):
    assert entry["verdict"] in ledger.VERDICTS
    nb = nbformat.read(str(ROOT / entry["notebook"]), as_version=4)
    tagged = [c for c in nb.cells if entry["cell"] in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{entry['id']}: no single cell tagged {entry['cell']} in {entry['notebook']}"
    if entry["cell"].count("-") == 2:              # ledger-NN-sK: a code cell of section K
        assert tagged[0].cell_type == "code"


@pytest.mark.parametrize("path", ledger.notebooks(), ids=lambda p: p.stem)
def test_stored_tags_equal_the_source_tags(path):
    src = ROOT / "notebooks" / "src" / f"{path.stem}.py"
    want = [t for _, _, t in parse_percent_cells(src.read_text(encoding="utf-8"))]
    assert tags_of(nbformat.read(str(path), as_version=4)) == want, \
        f"{path.name}: cell tags differ from {src.name}; run `python tools/ledger.py tag`"


@pytest.mark.parametrize("item", CATALOGUE["reference_errors"] + CATALOGUE["source_tables"], ids=lambda i: i["id"])
def test_catalogue_item_is_in_its_chapter_ledger(item):
    rows = [e for e in CLAIMS["entries"] if e["chapter"] == item["chapter"]
            and item["match"].lower() in (e["claim"] + " " + e["measured"]).lower()]
    assert rows, f"{item['id']} ({item['what']}): no row of chapter {item['chapter']}'s ledger mentions {item['match']!r}"
    assert any(e["verdict"] == item["verdict"] for e in rows), \
        f"{item['id']}: verdicts {[e['verdict'] for e in rows]}, expected {item['verdict']}"


def test_catalogue_covers_at_least_the_28_reference_errors():
    assert len({i["id"] for i in CATALOGUE["reference_errors"]}) >= 28


def test_split_row_keeps_pipes_inside_code_and_math():
    assert ledger.split_row("| `a|b` | $x|y$ | ok |") == ["`a|b`", "$x|y$", "ok"]
    assert ledger.verdict_of("**corrected**; table **unsourced**") == "corrected"
    with pytest.raises(ValueError):
        ledger.verdict_of("measured here")
