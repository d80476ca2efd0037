"""Attack another run's models: this run's models are the shadows, that run's are the victims.

Leave-one-out (the default attack stage) makes every model of one zoo the victim once. Separate
roles answer other questions: how well shadows trained on a different corpus attack (partial
knowledge, `data.known_pool_of`), or a different finetuning, or a zoo pulled from the Hub. The
points scored are the challenge texts both runs share; this run's membership labels train
every attack, and the victims' labels only grade it.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from tmi_nlp.atomic import atomic_write_json
from tmi_nlp.attacks import READS
from tmi_nlp.attacks.features import Roles
from tmi_nlp.config import Recipe, RecipeError
from tmi_nlp.data.plan import Plan, text_hash
from tmi_nlp.stages.attack import attack_loop
from tmi_nlp.stages.prepare import open_run
from tmi_nlp.store import QUERIES, RunDir


def shared_points(shadows: Plan, victims: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Indices into each plan's challenge points of the texts both share, in the shadows' order."""
    position = {victims.pool[j]: i for i, j in enumerate(victims.challenge)}
    pairs = [(i, position[shadows.pool[j]]) for i, j in enumerate(shadows.challenge) if shadows.pool[j] in position]
    return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)


def _weights_hash(run: RunDir, i: int) -> str | None:
    path = run.pretrained(i) / "model.safetensors"
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _refuse_shared_models(shadow_run: RunDir, num_shadows: int, victim_run: RunDir, num_victims: int) -> None:
    """A shadow that is one of the victims (say, linked by run.pretrained_from) would grade the attack
    on its own training data."""
    theirs = {_weights_hash(victim_run, i): i for i in range(num_victims)}
    for i in range(num_shadows):
        digest = _weights_hash(shadow_run, i)
        if digest is not None and digest in theirs:
            raise RecipeError(f"victims {victim_run.root}: its model {theirs[digest]} has the same pretrained weights "
                              f"as shadow model {i} of {shadow_run.root}; expected disjoint zoos (another run.seed)")


def attack_victims(recipe: Recipe, victims_folder: str | Path, names: list[str] | None = None) -> dict[str, dict]:
    """Score the victims' shared challenge points with every attack trained on this run's models.

    Writes victims/<victims' run name>/<attack>/{scores,labels}.npy and metrics.json (resumable),
    and victims/<name>/victims.json saying which zoo and points were attacked.
    """
    run, recipe = open_run(recipe)
    victim_run = RunDir(victims_folder)
    victims_recipe = victim_run.recipe()
    if run.root.resolve() == victim_run.root.resolve():
        raise RecipeError(f"victims {victim_run.root}: the run's own models; use `tmi-nlp attack` (leave-one-out)")
    run.verify(recipe.run.num_models)
    victim_run.verify(victims_recipe.run.num_models)
    names = names or recipe.attack.names
    if any(READS[name] == QUERIES for name in names):
        for key in ("augmentation", "rate", "include_original"):
            ours, theirs = getattr(recipe.query, key), getattr(victims_recipe.query, key)
            if ours != theirs:
                raise RecipeError(f"victims {victim_run.root}: query.{key} = {theirs!r}, the shadows' {ours!r}; "
                                  f"expected the same queries (an attack learns the shadows' answers to them)")
    plan, victim_plan = run.load_plan(), victim_run.load_plan()
    cols, victim_cols = shared_points(plan, victim_plan)
    if not len(cols):
        raise RecipeError(f"victims {victim_run.root}: no challenge text in common with {run.root}; expected the "
                          f"same candidates (data.challenge) or data.known_pool_of = {str(victim_run.root)!r}")
    ns, nv = recipe.run.num_models, victims_recipe.run.num_models
    out = run.root / "victims" / victim_run.root.name
    record = {"victims": str(victim_run.root.resolve()), "num_victims": nv, "num_shadows": ns,
              "points": len(cols), "victims_pool_sha256": text_hash(victim_plan.pool),
              "known_fraction": recipe.data.known_fraction if recipe.data.known_pool_of else None}
    if (out / "victims.json").exists():
        old = json.loads((out / "victims.json").read_text())
        if {k: old.get(k) for k in record if k != "victims"} != {k: v for k, v in record.items() if k != "victims"}:
            raise RecipeError(f"{out}: made against other victims ({old}); refusing to mix. Remove it or rename "
                              f"the victims' run folder")
    else:
        _refuse_shared_models(run, ns, victim_run, nv)
        atomic_write_json(out / "victims.json", record)
    labels = np.concatenate([plan.labels()[:, cols], victim_plan.labels()[:, victim_cols]])

    def read(kind: str) -> np.ndarray:
        if kind != QUERIES and len(masks := run.signal_masks(kind, ns) | victim_run.signal_masks(kind, nv)) > 1:
            # Masks drawn per run differ per point between zoos, an offset larger than membership's own.
            raise RecipeError(f"victims {victim_run.root}: its {kind} signals and this run's were masked "
                              f"differently ({sorted(masks)}); expected the same masks. Remove models/*/signals "
                              f"and attacks/{kind}* of the older run and rerun `tmi-nlp run` on it")
        ours, theirs = run.stacked(kind, ns)[:, cols], victim_run.stacked(kind, nv)[:, victim_cols]
        if ours.shape[2:] != theirs.shape[2:]:
            raise RecipeError(f"victims {victim_run.root}: {kind} of shape {theirs.shape[2:]} per point; the "
                              f"shadows' are {ours.shape[2:]} (expected the same queries per point and classes)")
        return np.concatenate([ours, theirs])

    return attack_loop(out, names, read, labels, Roles.separate(ns, nv), recipe)
