"""Time one training step (forward, backward, AdamW) of the chapter-04 reference model.

Reference config: vocab 256, d_model 128, 2 layers, 4 heads, batch 16, length 128, RoPE, pre-norm
blocks with a GELU MLP (d_ff = 4 d_model), untied output head. Reported: the median over
``--steps`` timed steps after ``--warmup`` untimed ones, on ``--threads`` threads (default 2).

When PyTorch is importable, the same model is built in PyTorch eager (same shapes, same layer
order, RoPE in the "half" layout, tanh-form GELU (as tinyattn), SDPA with is_causal, AdamW) and timed the same
way; the script prints both times and ``ratio = tinyattn / torch`` (target: <= 2.0).
PyTorch is NOT a dependency of tinyattn: install it into the venv by hand to get the comparison.

Threads: OMP/OPENBLAS/MKL thread counts are set before NumPy is imported.
OpenBLAS workaround variables: some machines export ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` to
work around old OpenBLAS builds; they force a slower kernel on current ones. This script removes
both from its own environment (never anyone else's) before NumPy loads, and records that it did;
``--keep-openblas-env`` keeps them.

    python benchmarks/train_step.py [--steps 20] [--warmup 5] [--threads 2] [--no-torch]
writes benchmarks/results/train_step.json (machine, versions, date, both timings, ratio).
"""
from __future__ import annotations

import argparse
import os
import sys

_parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
_parser.add_argument("--steps", type=int, default=20)
_parser.add_argument("--warmup", type=int, default=5)
_parser.add_argument("--threads", type=int, default=2)
_parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
_parser.add_argument("--keep-openblas-env", action="store_true")
_parser.add_argument("--profile", action="store_true", help="cProfile the tinyattn steps, print the top")
_parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "results", "train_step.json"))
ARGS = _parser.parse_args()

REMOVED_ENV = {}
if not ARGS.keep_openblas_env:
    for _name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if _name in os.environ:
            REMOVED_ENV[_name] = os.environ.pop(_name)
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)

import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tinyattn as ta  # noqa: E402
from tinyattn.models import TransformerLM  # noqa: E402
from tinyattn.train import lm_loss  # noqa: E402

CONFIG = dict(vocab=256, d_model=128, n_layers=2, n_heads=4, batch=16, length=128, positional="rope")


def tinyattn_step_fn(tokens: np.ndarray, targets: np.ndarray):
    c = CONFIG
    model = TransformerLM(c["vocab"], c["d_model"], c["n_layers"], c["n_heads"], c["length"],
                          positional=c["positional"], rng=np.random.default_rng(0))
    opt = ta.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)

    def step():
        opt.zero_grad()
        loss = lm_loss(model, tokens, targets)
        loss.backward()
        opt.step()
        return float(loss.data)
    return step, sum(p.data.size for p in model.parameters())


def torch_step_fn(tokens: np.ndarray, targets: np.ndarray, threads: int):
    import torch
    import torch.nn as nn
    import torch.nn.functional as tF

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = CONFIG
    d, h = c["d_model"], c["n_heads"]
    hd = d // h

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
            self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x, cos, sin):
            b, l, _ = x.shape
            z = self.ln1(x)
            q, k, v = (p(z).view(b, l, h, hd).transpose(1, 2) for p in (self.q, self.k, self.v))
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            a = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.o(a.transpose(1, 2).reshape(b, l, d))
            return x + self.fc2(tF.gelu(self.fc1(self.ln2(x)), approximate="tanh"))

    def rope(x, cos, sin):                      # "half" layout: x cos + rotate_half(x) sin
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(c["vocab"], d)
            self.blocks = nn.ModuleList([Block() for _ in range(c["n_layers"])])
            self.ln_f = nn.LayerNorm(d)
            self.head = nn.Linear(d, c["vocab"], bias=False)
            inv = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
            ang = torch.arange(c["length"], dtype=torch.float64)[:, None] * inv[None]
            self.register_buffer("cos", torch.cos(ang).float())
            self.register_buffer("sin", torch.sin(ang).float())

        def forward(self, t):
            x = self.emb(t)
            for blk in self.blocks:
                x = blk(x, self.cos, self.sin)
            return self.head(self.ln_f(x))

    model = LM()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    tt, yy = torch.from_numpy(tokens), torch.from_numpy(targets)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(tt)
        loss = tF.cross_entropy(logits.reshape(-1, c["vocab"]), yy.reshape(-1), ignore_index=-100)
        loss.backward()
        opt.step()
        return float(loss.detach())
    return step, sum(p.numel() for p in model.parameters()), torch.__version__


def time_interleaved(steps: dict, n_warmup: int, n_steps: int) -> dict[str, list[float]]:
    """Warm every step function up, then alternate them step by step, so a change in machine load
    (other processes) hits both implementations alike. Returns seconds per step, per name."""
    for step in steps.values():
        for _ in range(n_warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(n_steps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    c = CONFIG
    rng = np.random.default_rng(0)
    seq = rng.integers(0, c["vocab"], size=(c["batch"], c["length"] + 1))
    tokens, targets = seq[:, :-1].copy(), seq[:, 1:].copy()

    step, n_params = tinyattn_step_fn(tokens, targets)
    if ARGS.profile:
        import cProfile
        import pstats
        for _ in range(ARGS.warmup):
            step()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(ARGS.steps):
            step()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    steps, t_version = {"tinyattn": step}, None
    if not ARGS.no_torch:
        try:
            tstep, t_params, t_version = torch_step_fn(tokens, targets, ARGS.threads)
        except ImportError:
            print("PyTorch not installed: no comparison (pip install torch to get one)")
        else:
            assert t_params == n_params, f"parameter counts differ: torch {t_params} vs tinyattn {n_params}"
            steps["torch"] = tstep
    load_before = os.getloadavg()
    times = time_interleaved(steps, ARGS.warmup, ARGS.steps)
    load_after = os.getloadavg()
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    print(f"config: {c}  threads={ARGS.threads}  params={n_params:,}")
    print(f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} CPUs")
    if max(load_before[0], load_after[0]) > (os.cpu_count() or 1):
        print("WARNING: the machine is busy (load > CPUs): absolute times are inflated, multi-threaded "
              "BLAS most of all; the interleaved ratio is the more meaningful number")
    print(f"tinyattn (NumPy {np.__version__}) : median {ms['tinyattn']:8.2f} ms/step over {ARGS.steps} steps")
    result = {
        "benchmark": "train_step", "config": c, "threads": ARGS.threads, "steps": ARGS.steps,
        "warmup": ARGS.warmup, "params": n_params, "tinyattn_ms": ms["tinyattn"],
        "tinyattn_ms_all": [round(1e3 * t, 3) for t in times["tinyattn"]],
        "torch_ms": None, "ratio": None, "target_ratio": 2.0,
        "timing": "median of interleaved steps (tinyattn, torch, tinyattn, ...) after warm-up",
        "loadavg_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": _cpu_name(), "cpu_count": os.cpu_count()},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "tinyattn": ta.__version__,
                     "blas": _blas_name()},
        "removed_env": sorted(REMOVED_ENV),
    }
    if "torch" in ms:
        ratio = ms["tinyattn"] / ms["torch"]
        print(f"torch {t_version} eager      : median {ms['torch']:8.2f} ms/step")
        print(f"ratio tinyattn / torch = {ratio:.2f}  (target <= 2.0: {'met' if ratio <= 2.0 else 'NOT met'})")
        result.update(torch_ms=ms["torch"], torch_ms_all=[round(1e3 * t, 3) for t in times["torch"]], ratio=ratio)
        result["versions"]["torch"] = t_version
    os.makedirs(os.path.dirname(ARGS.out), exist_ok=True)
    with open(ARGS.out, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"wrote {ARGS.out}")


def _blas_name() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
