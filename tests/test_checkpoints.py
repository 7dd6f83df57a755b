"""Checkpoints refuse what they cannot restore faithfully: another model config (n_heads, positional
scheme: no parameter shape changes), another optimizer class, corrupt or foreign files. Old
checkpoints (no config stored) still load, with a warning."""
import os
import warnings

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.data import copy_task, task_batch_fn
from tinyattn.models import TransformerLM
from tinyattn.train import CheckpointError, load_checkpoint, save_checkpoint, train


def _model(seed=0, **kw):
    args = dict(vocab_size=9, d_model=16, n_layers=2, n_heads=2, max_len=12)
    args.update(kw)
    return TransformerLM(**args, rng=np.random.default_rng(seed))


def _params(model):
    return {n: p.data.copy() for n, p in model.named_parameters()}


@pytest.fixture
def saved(tmp_path):
    """A trained model + AdamW checkpoint at step 3."""
    model = _model()
    opt = ta.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1)
    train(model, opt, task_batch_fn("copy", 2, 3, 9), 3, seed=0, progress=False)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, opt, step=3)
    return path, model, opt


@pytest.mark.parametrize("field,saved_value,other", [
    ("n_heads", 2, 4), ("positional", "rope", "alibi"), ("positional", "rope", "nope"),
    ("rope_base", 10000.0, 500000.0), ("norm", "pre", "post")])
def test_config_mismatch_raises_naming_field_and_both_values(saved, field, saved_value, other):
    path, _, _ = saved
    target = _model(seed=5, **{field: other})
    before = _params(target)
    with pytest.raises(CheckpointError, match=f"{field}: checkpoint {saved_value!r}, model {other!r}") as info:
        load_checkpoint(path, target)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)
    for n, p in target.named_parameters():                            # nothing was loaded
        np.testing.assert_array_equal(p.data, before[n], err_msg=n)


def test_backend_and_max_len_may_differ(saved):
    path, model, _ = saved
    longer = _model(seed=5, max_len=48)                               # evaluate at 4x the length
    assert load_checkpoint(path, longer) == 3
    x, _ = copy_task(2, 3, 9, np.random.default_rng(1))
    np.testing.assert_array_equal(longer(x).data, model(x).data)


def test_model_class_mismatch_raises(saved):
    class OtherLM(TransformerLM):
        pass
    with pytest.raises(CheckpointError, match="model class mismatch: checkpoint TransformerLM, model OtherLM"):
        load_checkpoint(saved[0], OtherLM(9, 16, 2, 2, 12))


@pytest.mark.parametrize("make", [lambda ps: ta.optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: ta.optim.SGD(ps, lr=0.1)])
def test_adamw_state_does_not_load_into_sgd(saved, make):
    path, _, _ = saved
    fresh = _model(seed=5)
    opt = make(fresh.parameters())
    groups = [dict(g) for g in opt.param_groups]
    with pytest.raises(CheckpointError, match="optimizer mismatch: checkpoint AdamW, given SGD"):
        load_checkpoint(path, fresh, opt)
    assert opt.param_groups == groups and opt.state == {}


def test_sgd_state_does_not_load_into_adamw(tmp_path):
    model = _model()
    sgd = ta.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, sgd, task_batch_fn("copy", 2, 3, 9), 2, progress=False)
    save_checkpoint(tmp_path / "s.npz", model, sgd, step=2)
    with pytest.raises(CheckpointError, match="checkpoint SGD, given AdamW"):
        load_checkpoint(tmp_path / "s.npz", _model(), ta.optim.AdamW(_model().parameters()))


def test_optimizer_given_but_none_saved_raises(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "m.npz", model, step=1)
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        load_checkpoint(tmp_path / "m.npz", model, ta.optim.AdamW(model.parameters()))
    assert load_checkpoint(tmp_path / "m.npz", model) == 1


def test_optimizer_over_parameters_in_another_order_raises(saved):
    path, _, _ = saved
    fresh = _model(seed=5)
    opt = ta.optim.AdamW(list(reversed(fresh.parameters())))        # state would land on wrong shapes
    with pytest.raises(CheckpointError, match="optimizer state 'm' of parameter 0 has shape"):
        load_checkpoint(path, fresh, opt)


def test_hyper_parameters_are_restored_and_validated(saved, tmp_path):
    path, _, opt = saved
    fresh = _model(seed=5)
    fresh_opt = ta.optim.AdamW(fresh.parameters(), lr=0.5)
    load_checkpoint(path, fresh, fresh_opt)
    assert fresh_opt.lr == opt.lr == 2e-3 and fresh_opt.param_groups[0]["weight_decay"] == 0.1
    with np.load(path) as z:                                         # a hand-edited checkpoint
        arrays = {k: z[k] for k in z.files}
    arrays["opt/group/0/lr"] = np.asarray(-1.0)
    np.savez(tmp_path / "edited.npz", **arrays)
    fresh_opt2 = ta.optim.AdamW(_model().parameters())
    with pytest.raises(ValueError, match="lr must be >= 0"):
        load_checkpoint(tmp_path / "edited.npz", _model(), fresh_opt2)
    assert fresh_opt2.lr == 3e-4


def _strip_new_fields(path, out):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k not in
                  ("meta/config", "meta/optimizer", "meta/model_class", "meta/format")}
    np.savez(out, **arrays)


def test_old_checkpoint_without_config_loads_with_a_warning(saved, tmp_path):
    path, model, opt = saved
    old = tmp_path / "old.npz"
    _strip_new_fields(path, old)
    fresh = _model(seed=5)
    fresh_opt = ta.optim.AdamW(fresh.parameters())
    with pytest.warns(UserWarning) as record:
        assert load_checkpoint(old, fresh, fresh_opt) == 3
    text = " ".join(str(w.message) for w in record)
    assert "no model config" in text and "does not name its optimizer" in text
    x, _ = copy_task(2, 3, 9, np.random.default_rng(1))
    np.testing.assert_array_equal(fresh(x).data, model(x).data)
    assert fresh_opt.lr == opt.lr


def test_old_adamw_checkpoint_still_refuses_sgd(saved, tmp_path):
    old = tmp_path / "old.npz"
    _strip_new_fields(saved[0], old)
    fresh = _model(seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(CheckpointError, match="hyper-parameter 'betas'"):
            load_checkpoint(old, fresh, ta.optim.SGD(fresh.parameters(), lr=0.1))


def _corruptions(path, tmp_path):
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    flipped = bytearray(data)
    # flip a byte inside an array's stored data (not in zip header padding, which nothing reads)
    import struct
    import zipfile
    info = max(zipfile.ZipFile(path).infolist(), key=lambda i: i.compress_size)
    n_name, n_extra = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    flipped[info.header_offset + 30 + n_name + n_extra + info.compress_size // 2] ^= 0xFF
    files = {"random": rng.bytes(2000), "truncated": data[: len(data) // 2], "empty": b"",
             "tail_cut": data[:-10], "flipped": bytes(flipped)}
    out = {}
    for name, blob in files.items():
        out[name] = tmp_path / f"{name}.npz"
        out[name].write_bytes(blob)
    np.save(tmp_path / "array.npy", np.zeros(3))
    out["npy"] = tmp_path / "array.npy"
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    out["foreign"] = tmp_path / "foreign.npz"
    return out


def test_corrupt_truncated_or_foreign_files_raise_a_clear_error(saved, tmp_path):
    path, _, _ = saved
    model = _model(seed=5)
    before = _params(model)
    for name, bad in _corruptions(path, tmp_path).items():
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(bad, model)
        msg = str(info.value)
        assert str(bad) in msg and "not a tinyattn checkpoint, or it is truncated or corrupt" in msg, name
        assert "pickle" not in msg, name                             # never suggests allow_pickle
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[n], err_msg=n)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz", model)


def test_save_creates_missing_folders_and_leaves_no_temp_file(tmp_path):
    model = _model()
    path = tmp_path / "a" / "b" / "ckpt.npz"
    save_checkpoint(path, model, step=7)
    assert load_checkpoint(path, _model(seed=3)) == 7
    assert os.listdir(path.parent) == ["ckpt.npz"]


def test_a_module_without_config_is_still_checked_by_names_and_shapes(tmp_path):
    from tinyattn.nn import Linear
    rng = np.random.default_rng(0)
    save_checkpoint(tmp_path / "lin.npz", Linear(3, 4, rng=rng), step=2)
    with pytest.raises(CheckpointError, match=r"has shape \(3, 4\) in the checkpoint, the model expects \(3, 5\)"):
        load_checkpoint(tmp_path / "lin.npz", Linear(3, 5, rng=rng))
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "lin.npz", Linear(3, 4, bias=False, rng=rng))
    assert load_checkpoint(tmp_path / "lin.npz", Linear(3, 4, rng=rng)) == 2


def test_rng_requested_but_not_saved_warns(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "n.npz", model, step=1)               # no rng
    rng = np.random.default_rng(4)
    state = rng.bit_generator.state
    with pytest.warns(UserWarning, match="no data-RNG state"):
        load_checkpoint(tmp_path / "n.npz", model, rng=rng)
    assert rng.bit_generator.state == state
