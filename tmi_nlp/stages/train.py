"""train: the per-model stages (pretrain, signals, finetune), over worker processes, skipping finished work.

    pretrain  -> models/<i>/pretrained/
    signals   -> models/<i>/signals/mlm_loss.npy (and .json: how its masks were drawn)
    finetune  -> models/<i>/finetuned/ and models/<i>/queries.npy (written by the QueryCallback)
    each      -> its files' sizes and sha256 in models/<i>/manifest/<stage>.json, checked before they are used

Workers are plain subprocesses (`python -m tmi_nlp.stages.worker`) that read the run folder and
take model indices on their standard input. They never import the caller's script (a script
without a main guard works), and a worker that fails or dies, at start-up or later, ends the
run with an error naming the model; the models finished by then are kept, and a rerun resumes.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import BertForMaskedLM

from tmi_nlp.atomic import atomic_link, atomic_save_npy, atomic_write_json, require_free_space
from tmi_nlp.config import Recipe, RecipeError
from tmi_nlp.cost import describe, model_shape
from tmi_nlp.models.finetune import QUERIES_FILE, finetune_model
from tmi_nlp.models.pretrain import MASKS, masked_lm_losses, pretrain_model
from tmi_nlp.models.tokenizer import load_tokenizer
from tmi_nlp.models.training import quiet_transformers, torch_threads
from tmi_nlp.stages.prepare import open_run
from tmi_nlp.store import MODEL_STAGES, RunDir


class WorkerError(RuntimeError):
    """A worker process failed or died; the models finished before are kept."""


def model_seed(recipe: Recipe, i: int) -> int:
    return recipe.run.seed * 100_003 + i


def train_one(run: RunDir, recipe: Recipe, i: int, stages: tuple[str, ...]) -> dict:
    """Run the per-model stages for model i that are not done; returns timings.

    transformers' load reports, warnings and bars are off meanwhile: many models train per process,
    and the caller shows progress over them.
    """
    with quiet_transformers():
        return _train_one(run, recipe, i, stages)


def _train_one(run: RunDir, recipe: Recipe, i: int, stages: tuple[str, ...]) -> dict:
    plan = run.load_plan()
    tokens = run.tokens()
    tokenizer = load_tokenizer(run.tokenizer)
    seed = model_seed(recipe, i)
    timings: dict = {"model": i}
    if "pretrain" in stages and not run.model_done(i, "pretrain"):
        start = time.perf_counter()
        members = [tokens["pool"][j] for j in np.flatnonzero(plan.keep[i])]
        result = pretrain_model(members, tokenizer, recipe.model, recipe.pretrain, seed, run.pretrained(i),
                                init_from=run.base if recipe.has_base else "", background=tokens.get("background"))
        timings["pretrain_s"] = time.perf_counter() - start
        timings["pretrain_loss"] = result["train_loss"]
        run.record_stage(i, "pretrain")
    if "signals" in stages and not run.model_done(i, "signals"):
        _require_pretrained(run, i, "signals")
        start = time.perf_counter()
        model = BertForMaskedLM.from_pretrained(run.pretrained(i), use_safetensors=True)
        # A run killed after this record and before the losses resumes here: the record it left is not rewritten.
        masks = run.signal(i, "mlm_loss").with_suffix(".json")
        if not masks.exists() or json.loads(masks.read_text()) != {"masks": MASKS}:
            atomic_write_json(masks, {"masks": MASKS})
        atomic_save_npy(run.signal(i, "mlm_loss"), masked_lm_losses(model, tokens["challenge"], tokenizer))
        timings["signals_s"] = time.perf_counter() - start
        run.record_stage(i, "signals")
    finished_queries = run.finetuned(i) / QUERIES_FILE
    if "finetune" in stages and not run.model_done(i, "finetune") and finished_queries.exists():
        atomic_link(finished_queries, run.queries(i))  # killed between the model's rename and the link
    if "finetune" in stages and not run.model_done(i, "finetune"):
        _require_pretrained(run, i, "finetune")
        start = time.perf_counter()
        metrics = finetune_model(run.pretrained(i), tokens["train"], tokens["train_labels"], tokens["eval"],
                                 tokens["eval_labels"], tokens["num_labels"], tokenizer, recipe.finetune,
                                 recipe.query, tokens["challenge"], seed, i, run.finetuned(i), run.queries(i))
        timings["finetune_s"] = time.perf_counter() - start
        timings["eval_accuracy"] = metrics["eval_accuracy"]
        run.record_stage(i, "finetune")
    return timings


def _require_pretrained(run: RunDir, i: int, stage: str) -> None:
    if not run.model_done(i, "pretrain"):
        raise RuntimeError(f"model {i}: the {stage} stage needs models/{i}/pretrained; run the pretrain stage first")


def default_workers(recipe: Recipe) -> tuple[int, int]:
    """(processes, threads each). The threads are the recipe's (`run.threads_per_model`, 1 by default: tiny models
    scale badly over threads, and a fixed count keeps the scores independent of the machine); the processes fill
    the cores with them."""
    if torch.cuda.is_available():
        return 1, 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = recipe.run.threads_per_model
    workers = recipe.run.workers or max(1, min(cores // max(threads, 1), recipe.run.num_models))
    return workers, threads or max(1, cores // workers)


def _bytes_per_model(recipe: Recipe, run: RunDir, stages: tuple[str, ...]) -> int:
    """Upper estimate of one model's artifacts: float32 weights (pretrained, finetuned) and its query tensor."""
    shape = model_shape(recipe, run)
    params = shape.parameters + (recipe.model.max_length + 2) * shape.hidden + 2 * shape.hidden**2 + shape.vocab
    weights = 4 * params * (("pretrain" in stages) + ("finetune" in stages))
    queries = 4 * recipe.run.num_points * recipe.query.num_queries * 1000 if "finetune" in stages else 0
    return int(1.5 * weights + queries + (1 << 20))  # C <= 1000 classes; 1 MiB of configs and metrics


def train_models(recipe: Recipe, stages: tuple[str, ...] = MODEL_STAGES,
                 models: Iterable[int] | None = None, progress: bool = True, workers: int = 0) -> list[dict]:
    """Run the per-model stages (pretrain, extract signals, finetune) not yet done, over worker processes."""
    run, recipe = open_run(recipe)
    indices = list(models) if models is not None else list(range(recipe.run.num_models))
    todo = [i for i in indices if not all(run.model_done(i, s) for s in stages)]
    if not todo:
        return []
    # What a resume builds on is checked first (sizes; the attack stage checks the sha256s too).
    run.verify(recipe.run.num_models, hashes=False)
    missing = [i for i in todo if "pretrain" not in stages and not run.model_done(i, "pretrain")]
    if missing:
        raise RecipeError(f"{run.root}: models {missing[:8]}{' ...' if len(missing) > 8 else ''} are not pretrained; "
                          f"the {'+'.join(stages)} stage needs models/<i>/pretrained: run `tmi-nlp pretrain` first")
    require_free_space(run.root, len(todo) * _bytes_per_model(recipe, run, stages),
                       f"{len(todo)} models' {'+'.join(stages)}")
    default, threads = default_workers(recipe)
    workers = min(workers or default, len(todo))
    if progress and threads == 1:
        plan = describe(recipe, run, workers, {s: sum(not run.model_done(i, s) for i in todo) for s in stages})
        if plan:
            print(plan, file=sys.stderr)
    bar = tqdm(total=len(todo), desc="+".join(stages), unit="model", disable=not progress)
    try:
        if workers == 1:
            results = []
            with torch_threads(threads):
                for i in todo:
                    results.append(train_one(run, recipe, i, stages))
                    bar.update()
            return results
        return _train_in_workers(run, todo, stages, workers, threads, bar.update)
    finally:
        bar.close()


def _worker_command(run: RunDir, stages: tuple[str, ...], threads: int) -> tuple[list[str], dict]:
    package_root = str(Path(__file__).resolve().parents[2])  # importable even where tmi-nlp is not installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    return [sys.executable, "-m", "tmi_nlp.stages.worker", str(run.root), ",".join(stages), str(threads)], env


def _exit_reason(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        return f"was killed by {name}" + (" (the out-of-memory killer sends it)" if name == "SIGKILL" else "")
    return f"exited with code {code}"


def _train_in_workers(run: RunDir, todo: list[int], stages: tuple[str, ...], workers: int, threads: int,
                      on_result: Callable[[], object]) -> list[dict]:
    """Hand the models to `workers` worker processes, one at a time each; stop at the first failure."""
    jobs: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in todo:
        jobs.put(i)
    events: queue.SimpleQueue[tuple[str, int, object]] = queue.SimpleQueue()
    command, env = _worker_command(run, stages, threads)
    # A session of their own: Ctrl-C reaches this process only, which stops them (below) without their tracebacks.
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                              start_new_session=True) for _ in range(workers)]

    def drive(proc: subprocess.Popen) -> None:
        """Feed one worker until the jobs run out; report each result, or that the worker died on model i."""
        while True:
            try:
                i = jobs.get_nowait()
            except queue.Empty:
                proc.stdin.close()  # the worker exits at the end of its input
                events.put(("idle", -1, proc))
                return
            try:
                proc.stdin.write(f"{i}\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
            except OSError:
                line = ""
            if not line:
                events.put(("died", i, proc))
                return
            events.put(("result", i, json.loads(line)))

    for proc in procs:
        threading.Thread(target=drive, args=(proc,), daemon=True).start()
    results, idle, ok = [], 0, False
    try:
        while idle < len(procs):
            kind, i, payload = events.get()
            if kind == "idle":
                idle += 1
            elif kind == "died":
                raise WorkerError(f"model {i}: its worker process {_exit_reason(payload.wait())} (its output is "
                                  f"above); models finished before are kept, rerun to resume")
            elif "error" in payload:
                where = " (the worker's traceback is above)" if payload.get("traceback", True) else ""
                raise WorkerError(f"model {i}: {payload['error']}{where}; models finished before are kept, rerun to "
                                  f"resume")
            else:
                results.append(payload)
                on_result()
        ok = True
    finally:
        for proc in procs:
            if not ok and proc.poll() is None:
                proc.kill()
            proc.wait()
    return results
