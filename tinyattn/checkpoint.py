"""Exact ``.npz`` checkpoints for the training loop (layer 4; re-exported by :mod:`tinyattn.train`).

One archive holds, as plain arrays (never pickles, loaded with ``allow_pickle=False``):

- ``model/<name>``: every parameter, bit-exact;
- ``meta/config``: the model's constructor arguments (``model.config()``, JSON) and
  ``meta/model_class``, so a checkpoint never loads silently into a model with other n_heads or
  another positional scheme (these change no parameter shape);
- ``opt/...``: the optimizer's hyper-parameters and state, with ``meta/optimizer`` its class name,
  so AdamW moments never load into SGD;
- ``meta/step``, ``meta/rng`` (the data generator) and ``model_rng/<name>`` (CAPE, dropout streams).

Any mismatch raises :class:`CheckpointError` (a ValueError) naming the field and both values; a
corrupt, truncated or foreign file raises it too, naming the path. Checkpoints written before the
config was stored still load, with a warning that the config could not be checked.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
import zlib

import numpy as np

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "prepare_checkpoint_path"]

FORMAT = "tinyattn-checkpoint-2"          # version 1 (no config, no optimizer class) still loads
# constructor arguments that may legitimately differ between save and load: the SDPA backend
# (dense and flash compute the same function) and max_len (chapter 05 evaluates a model trained
# at length L on 2L..8L; learned position tables are caught by their shape anyway)
CONFIG_IGNORED = frozenset({"backend", "max_len", "rope_scaling"})   # re-evaluation settings, not weights


class CheckpointError(ValueError):
    """A checkpoint file that is corrupt, foreign, or does not match the model/optimizer."""


def model_config(model) -> dict | None:
    """``model.config()`` made JSON-comparable (tuples -> lists), or None if the model has none."""
    fn = getattr(model, "config", None)
    if not callable(fn):
        return None
    return json.loads(json.dumps(fn(), sort_keys=True, default=repr))


def prepare_checkpoint_path(path) -> str:
    """Check a checkpoint destination before any work: create its folder if missing (decided: a
    run never fails at its end for want of a folder), refuse a folder as the file name and an
    unwritable folder. Returns the path as a str."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"checkpoint_path {path!r} is a folder; give a file name such as "
                                f"{os.path.join(path, 'ckpt.npz')!r}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write checkpoints to folder {folder!r} (no write permission)")
    return path


# --------------------------------------------------------------------------- optimizer state
def _opt_params(opt) -> list:
    return [p for group in opt.param_groups for p in group["params"]]


def _opt_state(opt) -> dict[str, np.ndarray]:
    """Optimizer state as flat arrays: per group its hyper-parameters, per parameter (by its index
    in the groups, since ``opt.state`` is keyed by object id) every entry of its state dict."""
    if hasattr(opt, "state_dict") and callable(opt.state_dict):
        return {k: np.asarray(v) for k, v in opt.state_dict().items()}
    if not hasattr(opt, "param_groups"):
        raise TypeError(f"cannot checkpoint optimizer {type(opt).__name__}: no param_groups or state_dict()")
    out: dict[str, np.ndarray] = {}
    for gi, group in enumerate(opt.param_groups):
        for key, value in group.items():
            if key != "params":
                out[f"group/{gi}/{key}"] = np.asarray(value, dtype=np.float64)
    for pi, p in enumerate(_opt_params(opt)):
        for key, value in opt.state.get(id(p), {}).items():
            out[f"state/{pi}/{key}"] = np.asarray(value)
    return out


def _load_opt_state(opt, state: dict[str, np.ndarray], path: str) -> None:
    """Restore hyper-parameters (resume semantics: the checkpoint's lr/betas replace the
    optimizer's) and per-parameter state, checking group count, keys and shapes first."""
    if hasattr(opt, "load_state_dict") and callable(opt.load_state_dict):
        opt.load_state_dict(state)
        return
    params = _opt_params(opt)
    new_state: dict[int, dict] = {}
    groups = [dict(g) for g in opt.param_groups]
    for key, value in state.items():
        kind, idx, name = key.split("/", 2)
        idx = int(idx)
        if kind == "group":
            if idx >= len(groups):
                raise CheckpointError(f"{path}: checkpoint has parameter group {idx}; optimizer has {len(groups)}")
            if name not in groups[idx]:
                raise CheckpointError(f"{path}: checkpoint's optimizer has hyper-parameter {name!r}, "
                                      f"{type(opt).__name__} has {sorted(k for k in groups[idx] if k != 'params')}")
            old = groups[idx][name]
            if isinstance(old, tuple):
                groups[idx][name] = tuple(type(o)(v) for o, v in zip(old, value.tolist()))
            elif isinstance(old, (bool, int, float)):
                groups[idx][name] = type(old)(value.item())
            else:
                groups[idx][name] = value.item() if value.ndim == 0 else value.tolist()
        else:
            if idx >= len(params):
                raise CheckpointError(f"{path}: checkpoint has optimizer state for parameter {idx}; "
                                      f"the optimizer has {len(params)} parameters")
            if value.ndim == 0:
                value = int(value) if np.issubdtype(value.dtype, np.integer) else float(value)
            elif value.shape != params[idx].shape:
                raise CheckpointError(f"{path}: optimizer state {name!r} of parameter {idx} has shape "
                                      f"{value.shape}, the parameter has shape {params[idx].shape}")
            else:
                value = value.copy()
            new_state.setdefault(id(params[idx]), {})[name] = value
    for group in groups:
        if hasattr(opt, "_check_group"):
            opt._check_group(group)              # a hand-edited checkpoint cannot smuggle lr < 0
    for target, group in zip(opt.param_groups, groups):
        target.update(group)
    opt.state = new_state


def _named_generators(module, prefix: str = ""):
    """(dotted name, np.random.Generator) for every generator a module tree owns (CAPE's position
    augmentation, dropout masks), so a resumed run draws the same random numbers."""
    for name, value in vars(module).items():
        if isinstance(value, np.random.Generator):
            yield prefix + name, value
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if hasattr(item, "parameters") and hasattr(item, "forward"):
                    yield from _named_generators(item, f"{prefix}{name}.{i}.")
        elif hasattr(value, "parameters") and hasattr(value, "forward"):
            yield from _named_generators(value, f"{prefix}{name}.")


# --------------------------------------------------------------------------- save / load
def save_checkpoint(path: str | os.PathLike, model, opt=None, step: int = 0,
                    rng: np.random.Generator | None = None) -> None:
    """Write model parameters and config, optimizer class, hyper-parameters and state, step, the
    data RNG's state and every ``np.random.Generator`` the model owns to one ``.npz`` at ``path``
    (its folder is created if missing; written to a temporary file, then renamed).

    Arrays are stored bit-exactly (no dtype change), so ``load_checkpoint`` restores a model whose
    logits and next optimizer step equal the saved one's.
    """
    arrays: dict[str, np.ndarray] = {f"model/{k}": np.asarray(v) for k, v in model.state_dict().items()}
    if opt is not None:
        arrays.update({f"opt/{k}": v for k, v in _opt_state(opt).items()})
        arrays["meta/optimizer"] = np.asarray(type(opt).__name__)
    arrays["meta/format"] = np.asarray(FORMAT)
    arrays["meta/model_class"] = np.asarray(type(model).__name__)
    config = model_config(model)
    if config is not None:
        arrays["meta/config"] = np.asarray(json.dumps(config, sort_keys=True))
    arrays["meta/step"] = np.asarray(int(step), dtype=np.int64)
    for name, gen in _named_generators(model):
        arrays[f"model_rng/{name}"] = np.asarray(json.dumps(gen.bit_generator.state))
    if rng is not None:
        arrays["meta/rng"] = np.asarray(json.dumps(rng.bit_generator.state))
    path = prepare_checkpoint_path(path)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _read(path: str) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path``; CheckpointError for anything that is not one."""
    not_ours = f"{path} is not a tinyattn checkpoint, or it is truncated or corrupt"
    try:
        z = np.load(path, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except ValueError:        # NumPy's 'cannot load pickled data': no .npz/.npy magic bytes
        raise CheckpointError(f"{not_ours} (not an .npz archive)") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise CheckpointError(f"{not_ours} ({type(exc).__name__}: {exc})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{not_ours} (a single .npy array, not an .npz archive)")
    try:
        with z:
            broken = z.zip.testzip()          # CRC of every member: catches flips NumPy's reader misses
            if broken is not None:
                raise CheckpointError(f"{not_ours} (CRC mismatch in {broken})")
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise CheckpointError(f"{not_ours} ({type(exc).__name__}: {exc})") from None
    if "meta/step" not in data:
        raise CheckpointError(f"{not_ours} (an .npz without 'meta/step'; keys {sorted(data)[:5]})")
    return data


def _check_model(path: str, data: dict, model) -> None:
    """Model class and constructor config must match (apart from ``CONFIG_IGNORED``)."""
    saved_cls = str(data["meta/model_class"]) if "meta/model_class" in data else None
    if saved_cls is not None and saved_cls != type(model).__name__:
        raise CheckpointError(f"{path}: model class mismatch: checkpoint {saved_cls}, model {type(model).__name__}")
    current = model_config(model)
    if current is None:
        return
    if "meta/config" not in data:
        warnings.warn(f"{path} stores no model config (written by an older tinyattn): n_heads, the "
                      "positional scheme and other shape-free settings cannot be checked", UserWarning,
                      stacklevel=3)
        return
    saved = json.loads(str(data["meta/config"]))
    diffs = [f"{k}: checkpoint {saved[k]!r}, model {current[k]!r}"
             for k in sorted(saved.keys() & current.keys() - CONFIG_IGNORED) if saved[k] != current[k]]
    if diffs:
        raise CheckpointError(f"{path}: checkpoint does not match the model config: " + "; ".join(diffs))


def load_checkpoint(path: str | os.PathLike, model, opt=None, rng: np.random.Generator | None = None) -> int:
    """Load a checkpoint written by ``save_checkpoint`` into ``model`` (and ``opt``, ``rng`` if given)
    in place. Returns the saved step.

    Raises CheckpointError (a ValueError) if the file is not a readable tinyattn checkpoint, if the
    model's class, config (``model.config()``, except backend and max_len), parameter names or shapes
    differ, if ``opt`` is of another class than the saved optimizer, or if the checkpoint holds no
    optimizer state but ``opt`` is given. Nothing is modified when it raises. The optimizer's
    hyper-parameters (lr, betas, ...) are replaced by the checkpoint's (exact resume).
    """
    path = os.fspath(path)
    data = _read(path)
    _check_model(path, data, model)
    model_state = {k[len("model/"):]: v for k, v in data.items() if k.startswith("model/")}
    expected = model.state_dict()
    if set(expected) != set(model_state):
        missing, extra = sorted(set(expected) - set(model_state)), sorted(set(model_state) - set(expected))
        raise CheckpointError(f"{path}: checkpoint does not match the model: missing {missing[:5]}, "
                              f"unexpected {extra[:5]}")
    for k, v in expected.items():
        if np.shape(v) != model_state[k].shape:
            raise CheckpointError(f"{path}: {k!r} has shape {model_state[k].shape} in the checkpoint, "
                                  f"the model expects {np.shape(v)}")
    opt_state = {k[len("opt/"):]: v for k, v in data.items() if k.startswith("opt/")}
    if opt is not None:
        saved_opt = str(data["meta/optimizer"]) if "meta/optimizer" in data else None
        if not opt_state:
            raise CheckpointError(f"{path} holds no optimizer state (saved with opt=None); "
                                  f"load it with opt=None and keep the fresh {type(opt).__name__}")
        if saved_opt is None:
            warnings.warn(f"{path} does not name its optimizer class (older tinyattn): "
                          f"assuming it is {type(opt).__name__}", UserWarning, stacklevel=2)
        elif saved_opt != type(opt).__name__:
            raise CheckpointError(f"{path}: optimizer mismatch: checkpoint {saved_opt}, given "
                                  f"{type(opt).__name__} (their states are not interchangeable)")
        _load_opt_state(opt, opt_state, path)
    model.load_state_dict(model_state)
    for name, gen in _named_generators(model):
        if f"model_rng/{name}" in data:
            gen.bit_generator.state = json.loads(str(data[f"model_rng/{name}"]))
    if rng is not None and "meta/rng" in data:
        rng.bit_generator.state = json.loads(str(data["meta/rng"]))
    elif rng is not None:
        warnings.warn(f"{path} stores no data-RNG state (saved with rng=None): the rng passed to "
                      "load_checkpoint is left unchanged, so a resumed run draws other batches",
                      UserWarning, stacklevel=2)
    return int(data["meta/step"])
