"""Chapter 05's length-extrapolation study: train at length L, test at L, 2L, 4L, 8L.

Protocol (every number seeded; same budget for every encoding):

1. For each encoding in ``ENCODINGS`` and each seed, train a tiny ``TransformerLM`` for
   ``steps`` AdamW steps on ``distractor_recall`` at input length ``L = train_len``.
2. Evaluate loss (mean cross-entropy of the scored answers, nats) and accuracy at every length
   ``f * L``, f in ``factors``, on the same held-out examples for every model.
3. Re-evaluate each trained RoPE model, weights untouched, with every method in ``METHODS``
   (``model.set_rope_scaling``), zero-shot; YaRN also without its temperature.
4. Fine-tune a copy of each RoPE model for ``finetune_steps`` steps at length ``s * L`` with each
   method's frequencies (and, as the control, with plain RoPE), then evaluate again.
5. Measure the entropy of the answer queries' attention (last layer) against length.

``run(cfg)`` returns a JSON-ready dict; ``benchmarks/extrapolation.py`` writes it to
``benchmarks/results/extrapolation.json``.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..autograd import no_grad
from ..models import TransformerLM
from ..optim import AdamW, warmup_cosine
from ..train import lm_loss, train
from .tasks import distractor_recall, recall_vocab

__all__ = ["ENCODINGS", "METHODS", "ExtrapolationConfig", "make_model", "train_model", "evaluate",
           "scaling_config", "attention_entropy", "finetune", "run"]

ENCODINGS = ("sinusoidal", "learned", "rope", "alibi", "t5", "nope")
METHODS = ("linear", "ntk", "dynamic", "yarn")


@dataclass
class ExtrapolationConfig:
    """Sizes of the study. ``rope_base`` = 100 (not 10^4) so that at L = 32 both kinds of RoPE
    pairs exist: 3 of the 8 pairs turn at least once within L, 5 do not (with 10^4, 6 would not).
    ``scale_factor`` s is the static methods' factor (target length s L); ``dynamic_factor`` is
    Hugging Face's ``factor`` for dynamic NTK, which rescales by itself once L grows past L_train."""
    train_len: int = 32
    factors: tuple = (1, 2, 4, 8)
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    rope_base: float = 100.0
    steps: int = 500
    batch: int = 32
    lr: float = 3e-3
    warmup: int = 30
    seeds: tuple = (0, 1, 2)
    n_eval: int = 128
    eval_batch: int = 32
    eval_seed: int = 1234
    scale_factor: float = 4.0
    dynamic_factor: float = 2.0
    finetune_steps: int = 40
    finetune_batch: int = 8
    finetune_lr: float = 1e-3
    encodings: tuple = ENCODINGS
    methods: tuple = METHODS
    task: dict = field(default_factory=lambda: {"n_pairs": 4, "n_keys": 8, "n_values": 8, "n_filler": 8})

    @property
    def vocab(self) -> int:
        t = self.task
        return recall_vocab(t["n_keys"], t["n_values"], t["n_filler"])

    @property
    def lengths(self) -> list[int]:
        return [int(f * self.train_len) for f in self.factors]


def make_model(cfg: ExtrapolationConfig, encoding: str, seed: int) -> TransformerLM:
    """A fresh model; the learned table gets rows up to the longest test length (rows past L are
    never trained and keep their random initialisation)."""
    max_len = max(cfg.lengths) if encoding == "learned" else cfg.train_len
    return TransformerLM(cfg.vocab, cfg.d_model, cfg.n_layers, cfg.n_heads, max_len,
                         positional=encoding, rope_base=cfg.rope_base,
                         rng=np.random.default_rng(seed))


def _batch_fn(cfg: ExtrapolationConfig, length: int, batch: int):
    return lambda rng: distractor_recall(batch, length, rng, **cfg.task)


def train_model(cfg: ExtrapolationConfig, encoding: str, seed: int,
                progress: bool = True) -> tuple[TransformerLM, float]:
    """Train one model at length L -> (model in eval mode, mean loss of the last 20 steps)."""
    model = make_model(cfg, encoding, seed)
    opt = AdamW(model.parameters(), lr=cfg.lr)
    hist = train(model, opt, _batch_fn(cfg, cfg.train_len, cfg.batch), cfg.steps, seed=1000 + seed,
                 lr_schedule=lambda s: warmup_cosine(s, cfg.warmup, cfg.steps, cfg.lr, cfg.lr / 10),
                 progress=progress, desc=f"{encoding} seed {seed}")
    model.eval()
    return model, float(np.mean(hist["loss"][-20:]))


def evaluate(model: TransformerLM, cfg: ExtrapolationConfig, length: int) -> dict:
    """Loss (nats) and accuracy of the scored answers on ``n_eval`` fixed examples of ``length``."""
    rng = np.random.default_rng(cfg.eval_seed + length)       # same examples for every model
    losses, right, count = [], 0, 0
    was_training = model.training
    model.eval()
    with no_grad():
        for start in range(0, cfg.n_eval, cfg.eval_batch):
            x, y = distractor_recall(min(cfg.eval_batch, cfg.n_eval - start), length, rng, **cfg.task)
            logits = model(x).data                            # (B, length, vocab)
            scored = y != -100
            z = logits[scored].astype(np.float64)             # (n_scored, vocab)
            lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
            losses.append(lse - z[np.arange(len(z)), y[scored]])   # -log p(answer)
            right += int((z.argmax(1) == y[scored]).sum())
            count += len(z)
    model.train(was_training)
    return {"loss": float(np.concatenate(losses).mean()), "acc": right / count}


def evaluate_lengths(model: TransformerLM, cfg: ExtrapolationConfig) -> dict:
    """{str(length): {"loss", "acc"}} for every test length."""
    return {str(n): evaluate(model, cfg, n) for n in cfg.lengths}


def scaling_config(method: str, cfg: ExtrapolationConfig) -> dict | None:
    """``set_rope_scaling`` config of a method name; "none" = plain RoPE, "yarn_no_temp" = YaRN's
    frequencies with attention factor 1 (the temperature switched off)."""
    if method == "none":
        return None
    if method == "dynamic":
        return {"method": "dynamic", "factor": cfg.dynamic_factor}
    if method == "yarn_no_temp":
        return {"method": "yarn", "factor": cfg.scale_factor, "attention_factor": 1.0}
    if method in ("linear", "ntk", "yarn"):
        return {"method": method, "factor": cfg.scale_factor}
    raise ValueError(f"method must be one of none, {', '.join(METHODS)}, yarn_no_temp; got {method!r}")


def attention_entropy(model: TransformerLM, cfg: ExtrapolationConfig, length: int, n: int = 32) -> float:
    """Mean entropy (nats) of the last layer's attention rows at the query keys (the rows that must
    find a card), over n fixed examples of ``length``; log(length) would be uniform attention."""
    x, y = distractor_recall(n, length, np.random.default_rng(cfg.eval_seed + 7 * length), **cfg.task)
    probs = model.attention_maps(x)[-1].astype(np.float64)   # (n, H, length, length)
    rows = np.where(y[0] != -100)[0]                          # query-key positions: predict a value
    p = probs[:, :, rows, :]
    return float(-(p * np.log(np.where(p > 0, p, 1.0))).sum(-1).mean())


def finetune(model: TransformerLM, cfg: ExtrapolationConfig, method: str, seed: int,
             progress: bool = True) -> TransformerLM:
    """A copy of ``model`` with ``method``'s scaling, trained ``finetune_steps`` steps at s L."""
    tuned = copy.deepcopy(model)
    tuned.set_rope_scaling(scaling_config(method, cfg))
    length = int(cfg.scale_factor * cfg.train_len)
    opt = AdamW(tuned.parameters(), lr=cfg.finetune_lr)
    train(tuned, opt, _batch_fn(cfg, length, cfg.finetune_batch), cfg.finetune_steps,
          seed=2000 + seed, progress=progress, desc=f"finetune {method} seed {seed}")
    tuned.eval()
    return tuned


def run(cfg: ExtrapolationConfig | None = None, progress: bool = True) -> dict:
    """The whole study -> JSON-ready dict (see the module docstring)."""
    cfg = ExtrapolationConfig() if cfg is None else cfg
    t0 = time.perf_counter()
    out: dict = {"config": {**asdict(cfg), "vocab": cfg.vocab, "lengths": cfg.lengths},
                 "encodings": {}, "zero_shot": {}, "finetuned": {}, "entropy": {}}
    rope_models = {}
    for enc in cfg.encodings:
        runs = []
        for seed in cfg.seeds:
            model, train_loss = train_model(cfg, enc, seed, progress)
            runs.append({"seed": seed, "train_loss": train_loss, "eval": evaluate_lengths(model, cfg)})
            if enc == "rope":
                rope_models[seed] = model
        out["encodings"][enc] = runs
    out["seconds_train"] = time.perf_counter() - t0
    if rope_models:
        zs_methods = ("none",) + tuple(cfg.methods) + ("yarn_no_temp",)
        for method in zs_methods:
            runs = []
            for seed, model in rope_models.items():
                model.set_rope_scaling(scaling_config(method, cfg))
                runs.append({"seed": seed, "eval": evaluate_lengths(model, cfg)})
                if method in ("none", "yarn", "yarn_no_temp"):
                    ent = out["entropy"].setdefault(method, {})
                    for n in cfg.lengths:
                        ent.setdefault(str(n), []).append(attention_entropy(model, cfg, n))
            out["zero_shot"][method] = runs
        for model in rope_models.values():
            model.set_rope_scaling(None)
        for method in ("none",) + tuple(cfg.methods):
            runs = []
            for seed, model in rope_models.items():
                tuned = finetune(model, cfg, method, seed, progress)
                runs.append({"seed": seed, "eval": evaluate_lengths(tuned, cfg)})
            out["finetuned"][method] = runs
    out["seconds"] = time.perf_counter() - t0
    return out


def summary(runs: list[dict], length: int, key: str = "loss") -> tuple[float, float, float]:
    """(mean, min, max) of ``key`` at ``length`` over the seeds of one entry of ``run``'s output."""
    vals = np.array([r["eval"][str(length)][key] for r in runs], dtype=np.float64)
    return float(vals.mean()), float(vals.min()), float(vals.max())
