"""attack: every attack on what the model stages stored, one attack loop for every choice of roles.

    leave-one-out (`attack`)              -> attacks/<name>/{scores,labels}.npy, metrics.json
    another run's models (victims.py)     -> victims/<run>/<name>/...
    a given target model (target.py)      -> targets/<name>/<attack>/scores.npy

Each attack's folder is finished when its metrics.json exists; a rerun skips it, so attacks can
be added to a run later. Only the run folder is read.
"""

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tmi_nlp.atomic import atomic_save_npy, atomic_write_json
from tmi_nlp.attacks import FAMILIES, READS, TRAINS_MLP, run_attack
from tmi_nlp.attacks.batched_mlp import resolve_backend
from tmi_nlp.attacks.features import Roles
from tmi_nlp.config import Recipe, RecipeError
from tmi_nlp.membership_metric import load_membership_metric
from tmi_nlp.stages.prepare import open_run


def attack_loop(out_root: Path, names: list[str], read: Callable[[str], np.ndarray], labels: np.ndarray,
                roles: Roles, recipe: Recipe, grade: bool = True) -> dict[str, dict]:
    """Run each attack not finished under out_root/<name>/ and return every attack's metrics.json.

    `read(kind)` gives what attacks of that kind read (`READS`), stacked over the rows of `labels`
    [N, K]; it is called once per kind. With `grade`, the victims' labels (`labels[roles.victims]`)
    grade the scores; without (a target model of unknown membership), only the scores are stored.
    """
    inputs: dict[str, np.ndarray] = {}
    results = {}
    backend = None
    for name in names:
        out = out_root / name
        if (out / "metrics.json").exists():
            results[name] = json.loads((out / "metrics.json").read_text())
            continue
        if name in TRAINS_MLP and backend is None:
            backend = _one_backend(out_root, recipe.attack.backend)
        if READS[name] not in inputs:
            inputs[READS[name]] = read(READS[name])
        start = time.perf_counter()
        scores = run_attack(name, inputs[READS[name]], labels, recipe.attack, recipe.run.seed, roles)
        record = {"attack": name, "family": FAMILIES[name], "seconds": time.perf_counter() - start,
                  "method": recipe.finetune.method, "shuffled_labels": recipe.attack.shuffle_labels,
                  **({"backend": backend} if name in TRAINS_MLP else {})}
        if grade:
            victim_labels = labels[roles.victims]
            # Intervals resample whole challenge points: a point's records (one per victim) are not independent.
            points = np.broadcast_to(np.arange(victim_labels.shape[1]), victim_labels.shape).ravel()
            record.update(load_membership_metric().compute(
                predictions=scores.ravel(), references=victim_labels.ravel().astype(int),
                bootstrap=recipe.attack.bootstrap, seed=recipe.run.seed, groups=points))
            if "bootstrap_unit" in record:
                record["bootstrap_unit"] = "challenge points"
            atomic_save_npy(out / "labels.npy", victim_labels)
        atomic_save_npy(out / "scores.npy", scores.astype(np.float64))
        atomic_write_json(out / "metrics.json", record)  # last: marks the attack finished
        results[name] = record
    return results


def _one_backend(out_root: Path, asked: str) -> str:
    """The backend this machine trains MLP metaclassifiers with, refused if the run's finished ones used another:
    the kernel and the torch code draw different dropout masks, so one run never mixes them."""
    backend = resolve_backend(asked)
    for metrics in sorted(out_root.glob("*/metrics.json")):
        used = json.loads(metrics.read_text()).get("backend")
        if used is not None and used != backend:
            raise RecipeError(f"attack.backend = {asked!r}: here that trains with {backend!r}, but "
                              f"{metrics.parent.name} in {out_root} was trained with {used!r}; expected one backend "
                              f"per run (set attack.backend={used!r} where it is available, or remove the finished "
                              f"attacks to redo them all)")
    return backend


def attack(recipe: Recipe, names: list[str] | None = None) -> dict[str, dict]:
    """Leave-one-out: every model is the victim once, the others its shadows. Returns each attack's metrics."""
    run, recipe = open_run(recipe)
    n = recipe.run.num_models
    run.verify(n)  # every file an attack or the report reads, as it was finished
    labels = run.load_plan().labels()
    return attack_loop(run.root / "attacks", names or recipe.attack.names, lambda reads: run.stacked(reads, n),
                       labels, Roles.leave_one_out(n), recipe)
