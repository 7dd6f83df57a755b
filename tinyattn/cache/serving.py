"""A synthetic serving simulation: contiguous max-length reservation vs paged KV memory (chapter 09).

Requests arrive over time with random prompt and output lengths. Every time step the server admits
waiting requests first-come-first-served while memory allows, then every running request produces
one token (the first step also stores its prompt), and finished requests release their memory.

- contiguous (``block_size=None``): each admitted request reserves ``max_len`` token slots up front
  (what servers did before PagedAttention: the final length is unknown when a request starts).
- paged (``block_size=b``): memory is handed out in blocks of b tokens as a request grows. If a
  request needs a block and none is free, the most recently admitted request is preempted (its
  blocks freed, it goes back to the head of the queue and is recomputed later: vLLM's recompute).

Memory accounting per step, in token slots (the budget is ``budget_tokens``):
    stored       = tokens actually held (prompt + generated so far)
    reserved     = contiguous only: slots this request will fill later (final length - stored)
    internal     = allocated slots that will never hold a token: contiguous max_len - final length,
                   paged the unused tail of each sequence's last block (< b per sequence)
    utilisation  = stored / allocated (allocated = stored + reserved + internal)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Request", "synthetic_requests", "simulate"]


@dataclass(frozen=True)
class Request:
    arrival: int        # time step at which it arrives
    prompt_len: int
    output_len: int


def synthetic_requests(n: int, rng: np.random.Generator, *, rate: float = 0.5, prompt_range=(16, 512),
                       output_range=(16, 512)) -> list[Request]:
    """n requests with Poisson arrivals (``rate`` per step) and uniform prompt/output lengths."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if n < 1 or rate <= 0:
        raise ValueError(f"need n >= 1 and rate > 0, got n={n}, rate={rate}")
    arrivals = np.floor(np.cumsum(rng.exponential(1.0 / rate, n))).astype(int)
    prompts = rng.integers(prompt_range[0], prompt_range[1] + 1, n)
    outputs = rng.integers(output_range[0], output_range[1] + 1, n)
    return [Request(int(a), int(p), int(o)) for a, p, o in zip(arrivals, prompts, outputs)]


def simulate(requests: list[Request], *, budget_tokens: int, max_len: int, block_size: int | None = None,
             max_steps: int = 100_000) -> dict:
    """Run the server until every request finished. Returns averages over the steps with work:
    utilisation, internal and reserved fractions of allocated memory, mean running batch
    ("sequences that fit"), steps to finish, preemptions."""
    if any(r.prompt_len + r.output_len > max_len for r in requests):
        raise ValueError(f"every request needs prompt_len + output_len <= max_len={max_len}")
    paged = block_size is not None
    if paged and (block_size < 1 or budget_tokens < block_size):
        raise ValueError(f"block_size must be in [1, budget_tokens={budget_tokens}], got {block_size}")
    if not paged and budget_tokens < max_len:
        raise ValueError(f"budget_tokens={budget_tokens} cannot hold one max_len={max_len} reservation")
    n_blocks = budget_tokens // block_size if paged else 0
    queue = sorted(range(len(requests)), key=lambda i: requests[i].arrival)
    waiting: list[int] = []
    running: dict[int, int] = {}            # request -> tokens stored (insertion order = admission order)
    blocks: dict[int, int] = {}             # paged: request -> blocks held
    free_blocks, done, step, preempted = n_blocks, 0, 0, 0
    stats = {"stored": 0.0, "reserved": 0.0, "internal": 0.0, "batch": 0.0, "busy": 0}
    ceil = lambda n: -(-n // block_size)    # noqa: E731
    while done < len(requests):
        if step >= max_steps:
            raise RuntimeError(f"simulation did not finish in {max_steps} steps")
        while queue and requests[queue[0]].arrival <= step:
            waiting.append(queue.pop(0))
        while waiting:                       # admit FCFS while memory allows
            r = requests[waiting[0]]
            if paged:
                need = ceil(r.prompt_len + 1)
                if need > free_blocks:
                    break
                free_blocks -= need
                blocks[waiting[0]] = need
            elif (len(running) + 1) * max_len > budget_tokens:
                break
            running[waiting.pop(0)] = 0
        for i in list(running):              # one decoding step for every running request
            if i not in running:
                continue                     # preempted earlier in this step
            r = requests[i]
            new_len = (r.prompt_len if running[i] == 0 else running[i]) + 1
            if paged:
                while i in running and ceil(new_len) > blocks[i]:
                    if free_blocks == 0:     # preempt the newest request (maybe i itself)
                        victim = next(reversed(running))
                        free_blocks += blocks.pop(victim)
                        del running[victim]
                        waiting.insert(0, victim)
                        preempted += 1
                    else:
                        free_blocks -= 1
                        blocks[i] += 1
                if i not in running:
                    continue
            running[i] = new_len
        if running:
            stored = sum(running.values())
            final = sum(requests[i].prompt_len + requests[i].output_len for i in running)
            if paged:
                alloc = block_size * sum(blocks[i] for i in running)
                reserved, internal = 0, alloc - stored
            else:
                reserved, internal = final - stored, len(running) * max_len - final
            for k, v in (("stored", stored), ("reserved", reserved), ("internal", internal),
                         ("batch", len(running))):
                stats[k] += v
            stats["busy"] += 1
        for i in [i for i in running if running[i] == requests[i].prompt_len + requests[i].output_len]:
            del running[i]                   # finished: release its memory
            free_blocks += blocks.pop(i, 0)
            done += 1
        step += 1
        waiting.sort(key=lambda i: requests[i].arrival)         # preempted requests keep their place
    alloc = stats["stored"] + stats["reserved"] + stats["internal"]
    return {"block_size": block_size, "utilisation": stats["stored"] / alloc,
            "internal_fraction": stats["internal"] / alloc, "reserved_fraction": stats["reserved"] / alloc,
            "mean_batch": stats["batch"] / max(stats["busy"], 1), "steps": step, "preemptions": preempted}
