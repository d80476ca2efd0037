"""The TMI stages as functions, linked only by files in the run directory.

    prepare   -> config.yaml, plan/, tokenizer/, data/tokens.json
    pretrain  -> models/<i>/pretrained/, models/<i>/signals/mlm_loss.npy
    finetune  -> models/<i>/finetuned/ and models/<i>/queries.npy (via QueryCallback)
    attack    -> attacks/<name>/{scores,labels}.npy, metrics.json
    report    -> report/{metrics.json,roc.png}

Every stage skips what is already on disk, and every artifact is written atomically, so a run
killed at any point resumes where it stopped and ends with the same numbers.
"""

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import yaml
from tqdm.auto import tqdm

from tmi_nlp.config import Recipe, RecipeError, recipe_from_dict
from tmi_nlp.data.loading import DataError, load_downstream, load_pool
from tmi_nlp.data.plan import Plan, make_plan, text_hash
from tmi_nlp.store import (
    RunDir,
    atomic_dir,
    atomic_link,
    atomic_save_npy,
    atomic_write_json,
    atomic_write_text,
    clean_temporaries,
    link_or_copy,
    require_free_space,
)

# Fields that change where or how a run executes, not what it computes: they may differ on resume
# (a run folder may be moved or renamed).
EXECUTION_FIELDS = {("run", "workers"), ("run", "threads_per_worker"), ("run", "pretrained_from"), ("run", "name"),
                    ("run", "output_dir"),
                    # Which attacks run: each writes its own attacks/<name>/, so more can be added later.
                    ("attack", "metaclassifiers"), ("attack", "baselines")}
# What the plan, the tokenizer and the pretrained models depend on.
# (run.num_models may differ: the plan of n models is the first n rows of a larger plan, checked.)
PRETRAINING_FIELDS = {"run": ("seed", "num_points"), "data": None, "tokenizer": None, "model": None,
                      "pretrain": None}


def _with_defaults(config: dict) -> dict:
    """A stored config with the fields it lacks (it was made by an older version) set to their defaults."""
    return {section: {**values, **config.get(section, {})} for section, values in Recipe().to_dict().items()}


def _differences(old: dict, new: dict) -> list[str]:
    """Fields that differ, except those that only say where or how the run executes."""
    old = _with_defaults(old)
    changed = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section, {}), new.get(section, {})
        for key in sorted(set(a) | set(b)):
            if (section, key) not in EXECUTION_FIELDS and a.get(key) != b.get(key):
                changed.append(f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return changed


def prepare(recipe: Recipe) -> RunDir:
    """Check the data, then write config, plan, tokenizer and the token cache (each once).

    On a rerun, the recipe and the data (their sha256) must be those the folder was made with:
    otherwise nothing is mixed, and the error says what changed.
    """
    run = RunDir(recipe.run_dir)
    if run.config.exists():
        old = yaml.safe_load(run.config.read_text())
        changed = _differences(old, recipe.to_dict())
        if changed:
            raise RecipeError(f"run folder {run.root} was made by a different recipe; refusing to mix "
                              f"artifacts. Changed: {'; '.join(changed)}. Use a new run.name.")
    seed = recipe.run.seed
    # Loading checks every named dataset and column, with the same errors as `check_columns`.
    pool, num_given = load_pool(recipe.data, seed)
    downstream = load_downstream(recipe.data, seed, pool)
    fingerprint = data_fingerprint(pool, downstream)
    fingerprint_path = run.data / "fingerprint.json"
    if fingerprint_path.exists():
        old = json.loads(fingerprint_path.read_text())
        changed = [f"{key}: {old.get(key)} -> {value}" for key, value in fingerprint.items() if old.get(key) != value]
        if changed:
            raise RecipeError(f"run folder {run.root}: the data changed since it was made; refusing to mix "
                              f"artifacts. Changed: {'; '.join(changed)}. Use a new run.name.")
    run.root.mkdir(parents=True, exist_ok=True)
    clean_temporaries(run.root)
    if not run.config.exists():
        atomic_write_text(run.config, recipe.to_yaml())
    _record_environment(run)
    source = _reusable_pretraining(recipe, run) if recipe.run.pretrained_from else None
    if not Plan.exists(run.plan):
        if num_given and num_given != recipe.run.num_points:
            source = "data.challenge has" if recipe.data.challenge else "data.known_pool_of leaves"
            raise DataError(f"run.num_points = {recipe.run.num_points}: {source} {num_given} "
                            f"candidate texts; expected them equal")
        given = np.arange(num_given) if num_given else None
        make_plan(pool, recipe.run.num_models, recipe.run.num_points, seed, challenge=given).save(run.plan)
    plan = Plan.load(run.plan)
    if source is not None:
        _link_pretrained(source, run, plan)
    if not (run.tokenizer / "tokenizer.json").exists():
        _make_tokenizer(recipe, plan, downstream, run)
    _check_tokenizer(recipe, run)
    if not (run.data / "tokens.json").exists():
        _tokenize(recipe, plan, downstream, run)
    if not fingerprint_path.exists():
        atomic_write_json(fingerprint_path, fingerprint)
    return run


def data_fingerprint(pool: list[str], downstream) -> dict[str, str]:
    """sha256 of the pool and of the downstream texts and labels (train and eval)."""
    labels = ",".join(map(str, downstream.train_labels + downstream.eval_labels))
    return {"pool_sha256": text_hash(pool),
            "downstream_sha256": text_hash(downstream.train_texts + downstream.eval_texts + [labels])}


PACKAGES = ("tmi-nlp", "torch", "transformers", "tokenizers", "datasets", "peft", "accelerate", "opacus",
            "evaluate", "scikit-learn", "numpy", "safetensors", "huggingface_hub")


def _record_environment(run: RunDir) -> None:
    """environment.json: Python and package versions the run was made with (a resume under others warns)."""
    import platform
    import sys
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    now = {"python": platform.python_version(), **{name: installed(name) for name in PACKAGES}}
    path = run.root / "environment.json"
    if not path.exists():
        atomic_write_json(path, now)
        return
    then = json.loads(path.read_text())
    changed = [f"{k} {then.get(k)} -> {v}" for k, v in now.items() if then.get(k) != v]
    if changed:
        print(f"tmi-nlp: warning: {run.root} was made with other versions ({'; '.join(changed)}); "
              f"finished artifacts are kept, new ones may differ slightly", file=sys.stderr)


def _check_tokenizer(recipe: Recipe, run: RunDir) -> None:
    """The shared tokenizer must fit every pretrained model already on disk (vocabulary size)."""
    tokenizer_size = len(load_run_tokenizer(run))
    for i in range(recipe.run.num_models):
        config = run.pretrained(i) / "config.json"
        if config.exists():
            vocab = json.loads(config.read_text())["vocab_size"]
            if vocab != tokenizer_size:
                raise RecipeError(f"tokenizer.path = {recipe.tokenizer.path!r}: the tokenizer has {tokenizer_size} "
                                  f"tokens but models/{i}/pretrained has vocab_size {vocab}; expected equal")


def _reusable_pretraining(recipe: Recipe, run: RunDir) -> RunDir:
    """Check that `run.pretrained_from` was pretrained as this recipe says; copy its tokenizer and token cache."""
    source = RunDir(recipe.run.pretrained_from)
    if not source.config.exists():
        raise RecipeError(f"run.pretrained_from = {recipe.run.pretrained_from!r}: expected a run folder with a "
                          f"config.yaml")
    if source.root.resolve() == run.root.resolve():
        raise RecipeError(f"run.pretrained_from = {recipe.run.pretrained_from!r}: expected another run's folder")
    before, ours = _with_defaults(yaml.safe_load(source.config.read_text())), recipe.to_dict()
    changed = [f"{section}.{key}: {before[section][key]!r} -> {ours[section][key]!r}"
               for section, keys in PRETRAINING_FIELDS.items() for key in (keys or ours[section])
               if before[section][key] != ours[section][key]]
    if changed:
        raise RecipeError(f"run.pretrained_from = {recipe.run.pretrained_from!r} was pretrained differently: "
                          f"{'; '.join(changed)}")
    for part in ("tokenizer", "data"):
        if not getattr(run, part).exists() and getattr(source, part).exists():
            with atomic_dir(getattr(run, part)) as tmp:
                shutil.copytree(getattr(source, part), tmp, dirs_exist_ok=True)
    return source


def _link_pretrained(source: RunDir, run: RunDir, plan: Plan) -> None:
    """Hard-link the source's pretrained models whose membership rows equal this plan's."""
    theirs = Plan.load(source.plan)
    shared = min(theirs.num_models, plan.num_models)
    if (theirs.pool != plan.pool or not np.array_equal(theirs.challenge, plan.challenge)
            or not np.array_equal(theirs.keep[:shared], plan.keep[:shared])):
        raise RecipeError(f"run.pretrained_from = {str(source.root)!r}: its membership plan differs from this run's "
                          f"(pool, challenge points or the first {shared} models' rows); expected the same seed "
                          f"and data")
    for i in range(shared):
        if model_done(source, i, "pretrain") and not model_done(run, i, "pretrain"):
            # Hard links: the weights are written once and never modified in place.
            with atomic_dir(run.pretrained(i)) as tmp:
                shutil.copytree(source.pretrained(i), tmp, dirs_exist_ok=True, copy_function=link_or_copy)


def _make_tokenizer(recipe: Recipe, plan: Plan, downstream, run: RunDir) -> None:
    from tmi_nlp.models.tokenizer import load_tokenizer, train_wordpiece

    if recipe.tokenizer.path or recipe.model.init_from:
        # Continued pretraining uses the checkpoint's own tokenizer unless one is named.
        tokenizer = load_tokenizer(recipe.tokenizer.path or recipe.model.init_from)
    else:
        # Trained on the whole candidate pool and the downstream text: the same for every model,
        # so the vocabulary carries no information about any model's membership.
        tokenizer = train_wordpiece(plan.pool + downstream.train_texts, recipe.tokenizer.vocab_size)
    with atomic_dir(run.tokenizer) as tmp:
        tokenizer.save_pretrained(tmp)


def _tokenize(recipe: Recipe, plan: Plan, downstream, run: RunDir) -> None:
    tokenizer = load_run_tokenizer(run)
    max_len = recipe.model.max_length

    def encode(texts: list[str], specials: bool = True) -> list[list[int]]:
        limit = max_len if specials else max_len - 2
        return tokenizer(texts, add_special_tokens=specials, truncation=True, max_length=limit)["input_ids"]

    atomic_write_json(run.data / "tokens.json", {
        "pool": encode(plan.pool),
        "challenge": encode([plan.pool[j] for j in plan.challenge], specials=False),
        "train": encode(downstream.train_texts), "train_labels": downstream.train_labels,
        "eval": encode(downstream.eval_texts), "eval_labels": downstream.eval_labels,
        "num_labels": downstream.num_labels,
    })


def load_run_tokenizer(run: RunDir):
    from tmi_nlp.models.tokenizer import load_tokenizer

    return load_tokenizer(run.tokenizer)


def _model_seed(recipe: Recipe, i: int) -> int:
    return recipe.run.seed * 100_003 + i


def model_done(run: RunDir, i: int, stage: str) -> bool:
    if stage == "pretrain":
        return (run.pretrained(i) / "config.json").exists()
    if stage == "signals":
        return run.signal(i, "mlm_loss").exists()
    return (run.finetuned(i) / "metrics.json").exists() and run.queries(i).exists()


def train_one(recipe_dict: dict, i: int, stages: tuple[str, ...], threads: int = 0) -> dict:
    """Run the per-model stages for model i (in this or a worker process); returns timings."""
    import torch
    from transformers import BertForMaskedLM

    from tmi_nlp.models.finetune import QUERIES, finetune_model
    from tmi_nlp.models.pretrain import masked_lm_losses, pretrain_model

    if threads:
        torch.set_num_threads(threads)
    recipe = recipe_from_dict(recipe_dict)
    run = RunDir(recipe.run_dir)
    plan = Plan.load(run.plan)
    tokens = json.loads((run.data / "tokens.json").read_text())
    tokenizer = load_run_tokenizer(run)
    seed = _model_seed(recipe, i)
    timings: dict = {"model": i}
    if "pretrain" in stages and not model_done(run, i, "pretrain"):
        start = time.perf_counter()
        members = [tokens["pool"][j] for j in np.flatnonzero(plan.keep[i])]
        result = pretrain_model(members, tokenizer, recipe.model, recipe.pretrain, seed, run.pretrained(i))
        timings["pretrain_s"] = time.perf_counter() - start
        timings["pretrain_loss"] = result["train_loss"]
    if "signals" in stages and not model_done(run, i, "signals"):
        _require_pretrained(run, i, "signals")
        start = time.perf_counter()
        model = BertForMaskedLM.from_pretrained(run.pretrained(i), use_safetensors=True)
        atomic_save_npy(run.signal(i, "mlm_loss"), masked_lm_losses(model, tokens["challenge"], tokenizer,
                                                                     seed=recipe.run.seed))
        timings["signals_s"] = time.perf_counter() - start
    finished_queries = run.finetuned(i) / QUERIES
    if "finetune" in stages and not model_done(run, i, "finetune") and finished_queries.exists():
        atomic_link(finished_queries, run.queries(i))  # killed between the model's rename and the link
    if "finetune" in stages and not model_done(run, i, "finetune"):
        _require_pretrained(run, i, "finetune")
        start = time.perf_counter()
        metrics = finetune_model(run.pretrained(i), tokens["train"], tokens["train_labels"], tokens["eval"],
                                 tokens["eval_labels"], tokens["num_labels"], tokenizer, recipe.finetune,
                                 recipe.query, tokens["challenge"], seed, i, run.finetuned(i), run.queries(i))
        timings["finetune_s"] = time.perf_counter() - start
        timings["eval_accuracy"] = metrics["eval_accuracy"]
    return timings


def _require_pretrained(run: RunDir, i: int, stage: str) -> None:
    if not model_done(run, i, "pretrain"):
        raise RuntimeError(f"model {i}: the {stage} stage needs models/{i}/pretrained; run the pretrain stage first")


def _train_one_star(job: tuple) -> dict:
    return train_one(*job)


def default_workers(recipe: Recipe) -> tuple[int, int]:
    """(processes, threads each): one thread per process on CPU (tiny models scale badly over threads)."""
    import torch

    if torch.cuda.is_available():
        return 1, 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = recipe.run.workers or max(1, min(cores, recipe.run.num_models))
    threads = recipe.run.threads_per_worker or max(1, cores // workers)
    return workers, threads


MODEL_STAGES = ("pretrain", "signals", "finetune")


def _bytes_per_model(recipe: Recipe, stages: tuple[str, ...]) -> int:
    """Upper estimate of one model's artifacts: float32 weights (pretrained, finetuned) and its query tensor."""
    m, vocab = recipe.model, recipe.tokenizer.vocab_size
    params = (vocab + m.max_length + 2) * m.hidden_size + m.num_hidden_layers * (
        4 * m.hidden_size**2 + 2 * m.hidden_size * m.intermediate_size) + 2 * m.hidden_size**2 + vocab
    weights = 4 * params * (("pretrain" in stages) + ("finetune" in stages))
    queries = 4 * recipe.run.num_points * recipe.query.num_augmentations * 1000 if "finetune" in stages else 0
    return int(1.5 * weights + queries + (1 << 20))  # C <= 1000 classes; 1 MiB of configs and metrics


def train_models(recipe: Recipe, stages: tuple[str, ...] = MODEL_STAGES,
                 models: Iterable[int] | None = None, progress: bool = True, workers: int = 0) -> list[dict]:
    """Run the per-model stages (pretrain, extract signals, finetune) not yet done, over worker processes."""
    run = RunDir(recipe.run_dir)
    indices = list(models) if models is not None else list(range(recipe.run.num_models))
    todo = [i for i in indices if not all(model_done(run, i, s) for s in stages)]
    if not todo:
        return []
    require_free_space(run.root, len(todo) * _bytes_per_model(recipe, stages),
                       f"{len(todo)} models' {'+'.join(stages)}")
    default, threads = default_workers(recipe)
    workers = workers or default
    jobs = [(recipe.to_dict(), i, stages, threads) for i in todo]
    bar = tqdm(total=len(todo), desc="+".join(stages), unit="model", disable=not progress)
    results = []
    if workers == 1 or len(todo) == 1:
        for job in jobs:
            results.append(_train_one_star(job))
            bar.update()
    else:
        # spawn, not fork: torch's thread pools do not survive a fork.
        with multiprocessing.get_context("spawn").Pool(min(workers, len(todo)), maxtasksperchild=None) as pool:
            for result in pool.imap_unordered(_train_one_star, jobs):
                results.append(result)
                bar.update()
    bar.close()
    return results


def load_queries(run: RunDir, num_models: int) -> np.ndarray:
    """Stack every model's query tensor (memory-mapped) into [N, K, A, C]."""
    missing = [i for i in range(num_models) if not run.queries(i).exists()]
    if missing:
        raise FileNotFoundError(f"queries missing for models {missing}: run the finetune stage first")
    return np.stack([np.load(run.queries(i), mmap_mode="r") for i in range(num_models)])


def load_signal(run: RunDir, num_models: int, name: str) -> np.ndarray:
    """A per-model signal: "queries" [N, K, A, C], or models/<i>/signals/<name>.npy stacked to [N, K]."""
    if name == "queries":
        return load_queries(run, num_models)
    missing = [i for i in range(num_models) if not run.signal(i, name).exists()]
    if missing:
        raise FileNotFoundError(f"signal {name} missing for models {missing}: run the pretrain stage first")
    return np.stack([np.load(run.signal(i, name)) for i in range(num_models)])


def attack(recipe: Recipe, names: list[str] | None = None) -> dict[str, dict]:
    """Score every (victim, point) with each metaclassifier; write scores, labels and metrics."""
    from tmi_nlp.attacks import SIGNALS, run_attack

    run = RunDir(recipe.run_dir)
    plan = Plan.load(run.plan)
    labels = plan.labels()
    signals: dict[str, np.ndarray] = {}
    results = {}
    for name in names or [*recipe.attack.metaclassifiers, *recipe.attack.baselines]:
        out = run.attack(name)
        if (out / "metrics.json").exists():
            results[name] = json.loads((out / "metrics.json").read_text())
            continue
        if SIGNALS[name] not in signals:
            signals[SIGNALS[name]] = load_signal(run, recipe.run.num_models, SIGNALS[name])
        start = time.perf_counter()
        scores = run_attack(name, signals[SIGNALS[name]], labels, recipe.attack, recipe.run.seed)
        results[name] = save_attack(out, name, scores, labels, recipe, time.perf_counter() - start)
    return results


def save_attack(out: Path, name: str, scores: np.ndarray, labels: np.ndarray, recipe: Recipe,
                seconds: float) -> dict:
    """Metrics of scores [V, K] against the victims' labels [V, K]; scores, labels and metrics.json in `out`."""
    from tmi_nlp.attacks import FAMILIES
    from tmi_nlp.membership_metric import load_membership_metric

    metrics = load_membership_metric().compute(predictions=scores.ravel(), references=labels.ravel().astype(int),
                                               bootstrap=recipe.attack.bootstrap, seed=recipe.run.seed)
    metrics.update(attack=name, family=FAMILIES[name], seconds=seconds, method=recipe.finetune.method,
                   shuffled_labels=recipe.attack.shuffle_labels)
    atomic_save_npy(out / "scores.npy", scores.astype(np.float64))
    atomic_save_npy(out / "labels.npy", labels)
    atomic_write_json(out / "metrics.json", metrics)  # last: marks the attack finished
    return metrics


def victim_metrics(run: RunDir, num_models: int) -> list[dict]:
    """Each finetuned model's metrics.json (downstream accuracy; epsilon spent, for DP)."""
    return [json.loads((run.finetuned(i) / "metrics.json").read_text()) for i in range(num_models)]


def _spread(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def report(recipe: Recipe) -> dict:
    """report/metrics.json, report/roc.png and the self-contained report/report.html."""
    from tmi_nlp.attacks import FAMILIES
    from tmi_nlp.report import FAMILY_STYLES, roc_plot, write_report

    run = RunDir(recipe.run_dir)
    results = attack(recipe)
    victims = victim_metrics(run, recipe.run.num_models)
    summary = {"recipe": recipe.to_dict(), "method": recipe.finetune.method, "attacks": results,
               "victim_accuracy": _spread([m["eval_accuracy"] for m in victims])}
    epsilons = [m["epsilon"] for m in victims] if all("epsilon" in m for m in victims) else None
    if epsilons:
        summary["epsilon"] = _spread(epsilons)
        summary["delta"] = recipe.finetune.dp_delta
    atomic_write_json(run.report / "metrics.json", summary)
    curves = {name: (np.load(run.attack(name) / "labels.npy"), np.load(run.attack(name) / "scores.npy"))
              for name in results}
    title = f"{recipe.run.name}: {recipe.finetune.method} finetuning"
    roc_plot(curves, run.report / "roc.png", title=title,
             styles={n: FAMILY_STYLES[FAMILIES.get(n, "tmi")] for n in curves})
    other_zoos = {}
    for folder in sorted((run.root / "victims").glob("*/victims.json")):
        label, other, outs = _finished_results(folder.parent)
        other_zoos[label] = (other["attacks"], {name: (np.load(out / "labels.npy"), np.load(out / "scores.npy"))
                                                for name, out in outs.items()})
    write_report(run.report / "report.html", title=title, facts=_facts(recipe, run, summary), results=results,
                 curves=curves, accuracies=[m["eval_accuracy"] for m in victims], epsilons=epsilons,
                 recipe_yaml=recipe.to_yaml(), other_zoos=other_zoos)
    return summary


def _facts(recipe: Recipe, run: RunDir, summary: dict) -> dict[str, str]:
    r, d, f, q = recipe.run, recipe.data, recipe.finetune, recipe.query
    tokens = json.loads((run.data / "tokens.json").read_text())
    method = f.method if f.method != "dp" else (
        f"dp over {f.dp_parameters} parameters: epsilon spent {summary['epsilon']['max']:.2f} "
        f"(target {f.dp_epsilon:g}), delta {f.dp_delta:g}, clipping norm {f.dp_max_grad_norm:g}")
    acc = summary["victim_accuracy"]
    return {
        "models": f"{r.num_models} (each the victim once, {r.num_models - 1} shadows)",
        "pretraining pool": f"{d.pool} — {d.pool_size} texts, each model pretrains on about half" + (
            f"; partial knowledge: {d.known_fraction:g} of the pool of {d.known_pool_of}, the rest other texts"
            if d.known_pool_of else ""),
        "challenge points": f"{r.num_points} (records scored: {r.num_models * r.num_points})",
        "model": (f"BERT, {recipe.model.num_hidden_layers} layers, hidden {recipe.model.hidden_size}, "
                  f"max length {recipe.model.max_length}; masked LM for {recipe.pretrain.epochs:g} epochs"),
        "downstream task": (f"{d.downstream} — {len(tokens['train'])} training and {len(tokens['eval'])} evaluation "
                            f"texts, {tokens['num_labels']} classes"),
        "finetuning": f"{method}; {f.epochs:g} epochs, learning rate {f.learning_rate:g}, batch {f.batch_size}",
        "queries": (f"A = {q.num_augmentations} per point: token {q.augmentation} at rate {q.rate:g}"
                    + (", query 0 unaugmented" if q.include_original else "")),
        "victims' accuracy": f"mean {acc['mean']:.3f} (min {acc['min']:.3f}, max {acc['max']:.3f})",
        "seed": str(r.seed),
    }


def recipe_of_run(folder: str | Path) -> Recipe:
    """The recipe a run folder was made with, pointed at where the folder is now."""
    folder = Path(folder)
    config = RunDir(folder).config
    if not config.exists():
        raise RecipeError(f"{folder}: expected a run folder with config.yaml")
    raw = yaml.safe_load(config.read_text())
    raw["run"].update(output_dir=str(folder.parent), name=folder.name)
    return recipe_from_dict(raw)


def _finished_results(folder: Path) -> tuple[str, dict, dict[str, Path]]:
    """(label, summary, attack folders) of a finished run, or of `attack --victims` results (RUN/victims/OTHER)."""
    if (folder / "victims.json").exists():
        record = json.loads((folder / "victims.json").read_text())
        victims_report = Path(record["victims"]) / "report" / "metrics.json"
        outs = {m.parent.name: m.parent for m in sorted(folder.glob("*/metrics.json"))}
        attacks = {name: json.loads((out / "metrics.json").read_text()) for name, out in outs.items()}
        summary = {"attacks": attacks, "method": next(iter(attacks.values()))["method"] if attacks else "-"}
        if victims_report.exists():
            victims_summary = json.loads(victims_report.read_text())
            summary.update({k: victims_summary[k] for k in ("victim_accuracy", "epsilon") if k in victims_summary})
        return f"{folder.parent.parent.name} -> {folder.name}", summary, outs
    run = RunDir(folder)
    if not (run.report / "metrics.json").exists():
        raise RecipeError(f"{folder}: no report/metrics.json; run `tmi-nlp report {folder}` first")
    summary = json.loads((run.report / "metrics.json").read_text())
    return run.root.name, summary, {name: run.attack(name) for name in summary["attacks"]}


def compare(folders: list[str | Path], attacks: list[str], output: str | Path) -> str:
    """A markdown table and an overlaid ROC (compare.png) of the given attacks across finished runs
    (run folders, or RUN/victims/OTHER folders of `tmi-nlp attack RUN --victims OTHER`)."""
    from tmi_nlp.report import roc_plot

    rows = ["| run | method | victims' acc. | epsilon | attack | AUC [95% CI] | TPR@0.1% | TPR@1% |",
            "|---|---|---|---|---|---|---|---|"]
    curves = {}
    for folder in folders:
        label, summary, outs = _finished_results(Path(folder))
        eps = f"{summary['epsilon']['max']:.2f}" if "epsilon" in summary else "-"
        acc = f"{summary['victim_accuracy']['mean']:.3f}" if "victim_accuracy" in summary else "-"
        for name in attacks:
            if name not in summary["attacks"]:
                continue
            m = summary["attacks"][name]
            ci = m.get("auc_ci95", [float("nan")] * 2)
            rows.append(f"| {label} | {summary['method']} | {acc} | {eps} "
                        f"| {name} | {m['auc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {100 * m['tpr@0.001']:.1f}% "
                        f"| {100 * m['tpr@0.01']:.1f}% |")
            curves[f"{label}: {name}"] = (np.load(outs[name] / "labels.npy"), np.load(outs[name] / "scores.npy"))
    table = "\n".join(rows)
    output = Path(output)
    atomic_write_text(output / "compare.md", table + "\n")
    roc_plot(curves, output / "compare.png", title="comparison")
    return table


def run_all(recipe: Recipe, progress: bool = True) -> dict:
    """Every stage in order, skipping finished work."""
    prepare(recipe)
    train_models(recipe, progress=progress)
    return report(recipe)
