"""What a run will train, and about how long it takes on this machine: a cost model printed before training.

Each per-model stage is a number of tokens (counted from the run's own token cache) times the floating-point
operations a token costs in a BERT of the run's shape (training is 6 x the weights a token passes, a forward
pass 2 x; the vocabulary projection only at the masked 15% of positions). Dividing by what this machine's matmul
reaches on one thread, times the share of it each kind of work gets (EFFICIENCY, measured on 2 cores of an AVX2-only
AMD EPYC with all-MiniLM-L6-v2 and the 1.5M base: docs/performance.md), gives seconds; the workers share them out.
It is an estimate: within a factor of 1.5 of what the runs of docs/performance.md took.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tmi_nlp.config import Recipe
from tmi_nlp.store import RunDir

# Seconds of real training per second the matmul peak predicts: what attention, normalisation, the optimiser and
# the data pipeline take beside the matmuls. Measured (docs/performance.md, the cost model).
EFFICIENCY = {"train": 0.55, "forward": 0.6}
MASKED_SHARE = 0.15  # masked-LM positions that reach the vocabulary projection
SIGNAL_COPIES = 5  # masked_lm_losses masks each challenge text in this many copies


@dataclass
class Shape:
    hidden: int
    layers: int
    intermediate: int
    vocab: int

    @property
    def weights(self) -> int:
        """Weights a token passes through in the encoder (the embeddings are a lookup)."""
        return self.layers * (4 * self.hidden**2 + 2 * self.hidden * self.intermediate)

    @property
    def parameters(self) -> int:
        return self.weights + self.vocab * self.hidden


def model_shape(recipe: Recipe, run: RunDir | None = None) -> Shape:
    """The shape every model of the run has: the base's (a checkpoint gives its own), else the recipe's."""
    config = run.base / "config.json" if run is not None else None
    if config is not None and config.exists():
        c = json.loads(config.read_text())
        return Shape(c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"])
    m = recipe.model
    return Shape(m.hidden_size, m.num_hidden_layers, m.intermediate_size, recipe.tokenizer.vocab_size)


def flops_per_token(shape: Shape, length: float, *, train: bool, masked: float = 0.0) -> float:
    """Floating-point operations of one token: its encoder matmuls and attention, plus the masked-LM head on the
    `masked` share of positions."""
    encoder = 2 * shape.weights + 4 * shape.layers * length * shape.hidden
    head = masked * 2 * (shape.hidden**2 + shape.hidden * shape.vocab)
    return (3 if train else 1) * (encoder + head)


def matmul_gflops(hidden: int, seconds: float = 0.3) -> float:
    """What one thread's matmul reaches at this hidden size (the unit the efficiencies are relative to)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = torch.randn(512, hidden), torch.randn(hidden, 4 * hidden)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    torch.set_num_threads(before)
    return 2 * 512 * hidden * 4 * hidden * count / (time.perf_counter() - start) / 1e9


def stage_work(recipe: Recipe, run: RunDir) -> dict[str, tuple[float, float, str]]:
    """(tokens, operations per token, 'train' or 'forward') of one model's stages, from the run's own token
    cache."""
    tokens, shape = run.tokens(), model_shape(recipe, run)
    mean = lambda seqs: sum(map(len, seqs)) / max(len(seqs), 1)  # noqa: E731
    pool, train = mean(tokens["pool"]), mean(tokens["train"])
    p, f, q = recipe.pretrain, recipe.finetune, recipe.query
    private = recipe.data.pool_size / 2 * pool
    read_once = f.method == "linear"  # the probe reads each training text once and trains only its head
    finetune_tokens = len(tokens["train"]) * train * (1 if read_once else (f.epochs or 1))
    challenge = mean(tokens["challenge"]) + 2
    forward = len(tokens["eval"]) * mean(tokens["eval"]) + recipe.run.num_points * q.num_queries * challenge
    return {
        "pretrain": (private * p.epochs / p.private_share,
                     flops_per_token(shape, pool, train=True, masked=MASKED_SHARE), "train"),
        "signals": (SIGNAL_COPIES * recipe.run.num_points * challenge,
                    flops_per_token(shape, challenge, train=False, masked=1 / SIGNAL_COPIES), "forward"),
        "finetune": (finetune_tokens, flops_per_token(shape, train, train=not read_once),
                     "forward" if read_once else "train"),
        "queries": (forward, flops_per_token(shape, challenge, train=False), "forward"),
    }


def estimate(recipe: Recipe, run: RunDir, workers: int, todo: dict[str, int]) -> dict[str, float]:
    """Seconds each stage will take over `workers` processes of one thread, for `todo[stage]` models."""
    speed = matmul_gflops(model_shape(recipe, run).hidden) * 1e9
    seconds = {}
    for stage, (tokens, flops, kind) in stage_work(recipe, run).items():
        models = todo.get("finetune" if stage == "queries" else stage, 0)
        seconds[stage] = models * tokens * flops / (speed * EFFICIENCY[kind]) / max(workers, 1)
    return seconds


def describe(recipe: Recipe, run: RunDir, workers: int, todo: dict[str, int]) -> str:
    """One line: what will train, and about how long it takes here."""
    seconds = estimate(recipe, run, workers, todo)
    total = sum(seconds.values())
    if not total:
        return ""
    shape = model_shape(recipe, run)
    parts = ", ".join(f"{stage} {s / 60:.0f} min" if s >= 60 else f"{stage} {s:.0f} s"
                      for stage, s in seconds.items() if s)
    return (f"plan: {max(todo.values())} model(s) of {shape.parameters:,} parameters on {workers} "
            f"worker(s) x 1 thread; about {total / 60:.0f} min on this machine ({parts}; {cpu_name()}, "
            f"{torch.backends.cpu.get_cpu_capability()})")


def cpu_name() -> str:
    """The CPU's model name (every timing is printed next to it: machines of one name differ in bf16 and AVX-512)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
