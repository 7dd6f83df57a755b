"""The committed benchmarks/results/extrapolation.json: complete (six encodings, every method, three
seeds, four lengths) and saying what notebook 05 states (YaRN at 4L far below unscaled RoPE in every
seed). Regenerate with `python benchmarks/extrapolation.py`."""
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "extrapolation.json"
pytestmark = pytest.mark.skipif(not PATH.exists(), reason="no committed extrapolation.json")


def _res():
    return json.loads(PATH.read_text())


def test_complete():
    res = _res()
    cfg = res["config"]
    assert len(cfg["seeds"]) >= 3 and not res["meta"]["quick"]
    lengths = [str(n) for n in cfg["lengths"]]
    assert lengths == [str(f * cfg["train_len"]) for f in (1, 2, 4, 8)]
    assert set(res["encodings"]) == {"sinusoidal", "learned", "rope", "alibi", "t5", "nope"}
    assert set(res["zero_shot"]) == {"none", "linear", "ntk", "dynamic", "yarn", "yarn_no_temp"}
    assert set(res["finetuned"]) == {"none", "linear", "ntk", "dynamic", "yarn"}
    for group in ("encodings", "zero_shot", "finetuned"):
        for runs in res[group].values():
            assert [r["seed"] for r in runs] == cfg["seeds"]
            for r in runs:
                assert set(r["eval"]) == set(lengths)
                assert all(0.0 <= e["acc"] <= 1.0 and e["loss"] >= 0.0 for e in r["eval"].values())


def test_yarn_beats_unscaled_at_4L_in_every_seed():
    res = _res()
    four = str(4 * res["config"]["train_len"])
    for y, n in zip(res["zero_shot"]["yarn"], res["zero_shot"]["none"]):
        assert y["seed"] == n["seed"]
        assert y["eval"][four]["loss"] * 5 < n["eval"][four]["loss"], (y["seed"], y["eval"][four], n["eval"][four])


def test_plain_rope_is_the_none_method_and_dynamic_equals_it_at_L():
    res = _res()
    L = str(res["config"]["train_len"])
    for plain, none, dyn in zip(res["encodings"]["rope"], res["zero_shot"]["none"], res["zero_shot"]["dynamic"]):
        assert plain["eval"] == none["eval"]                   # same weights, same examples
        assert dyn["eval"][L] == plain["eval"][L]              # dynamic NTK is plain RoPE up to L
