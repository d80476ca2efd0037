"""dataset: was this set of texts in a victim's pretraining data? The set test of `attacks/dataset.py` on a run.

    power of the test on the run's own victims   -> dataset/<statistic>.json
    a given set of candidate texts               -> printed and returned, one p-value per victim

The statistic is `attack.dataset_statistic`: an attack's scores (a half of the other models trains it and
it scores the victim and the other half, the null), or "confidence", the victim's calibrated confidence.
Only the run folder is read; the power record is rewritten when its settings change.
"""

import json

import numpy as np
from scipy.stats import kstest

from tmi_nlp.atomic import atomic_write_json
from tmi_nlp.attacks import ATTACKS, READS
from tmi_nlp.attacks.dataset import NULL, confidence_statistic, dataset_p_value, held_out_scores
from tmi_nlp.config import Recipe, RecipeError
from tmi_nlp.data.loading import normalise
from tmi_nlp.stages.prepare import open_run
from tmi_nlp.store import QUERIES, RunDir

CONFIDENCE = "confidence"


def _statistic_name(recipe: Recipe) -> str:
    name = recipe.attack.dataset_statistic
    if name != CONFIDENCE and (name not in ATTACKS or READS[name] != QUERIES):
        raise RecipeError(f"attack.dataset_statistic = {name!r}: expected {CONFIDENCE!r} or an attack on the "
                          f"queries, one of {sorted(n for n in ATTACKS if READS[n] == QUERIES)}")
    return name


def _statistic(recipe: Recipe, queries: np.ndarray, labels: np.ndarray, victim: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-text statistic [N, K], the null models) for one victim; its own row of `labels` is never read."""
    name = _statistic_name(recipe)
    if name == CONFIDENCE:
        return confidence_statistic(queries), np.delete(np.arange(labels.shape[0]), victim)
    return held_out_scores(name, queries, labels, victim, recipe.attack, recipe.run.seed)


def _inputs(run: RunDir, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    n = recipe.run.num_models
    return np.asarray(run.stacked(QUERIES, n)), run.load_plan().labels()


def dataset_power(recipe: Recipe) -> dict:
    """Power and level of the set test on the run's own victims, per set size (`attack.dataset_sizes`).

    For every victim and size n, `attack.dataset_sets` sets of n of its members and as many of its
    non-members are tested, and, for the control, sets of its members once every model's membership is
    shuffled across models. Returns and writes dataset/<statistic>.json; a finished record with the same settings is
    read back instead.
    """
    run, recipe = open_run(recipe)
    a = recipe.attack
    # "null" names the null's construction: a record made with an earlier one (per-text draws only) is recomputed.
    settings = {"statistic": _statistic_name(recipe), "sizes": list(a.dataset_sizes), "sets": a.dataset_sets,
                "seed": recipe.run.seed, "null": NULL}
    path = run.root / "dataset" / f"{settings['statistic']}.json"
    if path.exists() and (old := json.loads(path.read_text()))["settings"] == settings:
        return old
    queries, labels = _inputs(run, recipe)
    n = labels.shape[0]
    rng = np.random.default_rng([recipe.run.seed, 7])
    shuffled = np.take_along_axis(labels, rng.random(labels.shape).argsort(axis=0), axis=0)
    tests = {size: {"members": [], "non_members": [], "control": []} for size in a.dataset_sizes}
    untested: dict[str, int] = {}
    for v in range(n):
        stat, null = _statistic(recipe, queries, labels, v)
        stat_shuffled, null_shuffled = _statistic(recipe, queries, shuffled, v)
        # The control's member sets are the victim's members under the shuffled membership: sets that carry no
        # more of its true members than chance gives, so its p-values must be uniform.
        members, others, control = (np.flatnonzero(x) for x in (labels[v], ~labels[v], shuffled[v]))
        for size, p in tests.items():
            if min(len(members), len(others), len(control)) < size:
                continue
            for s in range(a.dataset_sets):
                seed = [recipe.run.seed, v, size, s]
                pick, other_pick, control_pick = (np.random.default_rng(seed + [i]).choice(texts, size, replace=False)
                                                  for i, texts in enumerate((members, others, control)))
                try:
                    tested = (dataset_p_value(stat, labels, v, null, pick)["p_value"],
                              dataset_p_value(stat_shuffled, shuffled, v, null_shuffled, control_pick)["p_value"],
                              dataset_p_value(stat, labels, v, null, other_pick)["p_value"])
                except ValueError:  # no text of the set has three OUT null models: too few models to test it
                    untested[str(size)] = untested.get(str(size), 0) + 1
                    continue
                for key, p_value in zip(("members", "control", "non_members"), tested, strict=True):
                    p[key].append(p_value)
    rows = {}
    for size, p in tests.items():
        if not p["members"]:
            continue
        members, non_members, control = (np.array(p[k]) for k in ("members", "non_members", "control"))
        rows[str(size)] = {
            "sets": len(members), "members_p_below_0.01": float(np.mean(members < 0.01)),
            "members_p_below_0.05": float(np.mean(members < 0.05)),
            "non_members_p_below_0.05": float(np.mean(non_members < 0.05)),
            "non_members_ks_p": float(kstest(non_members, "uniform").pvalue),
            "control_p_below_0.05": float(np.mean(control < 0.05)),
            "control_ks_p": float(kstest(control, "uniform").pvalue)}
    record = {"settings": settings, "sizes": rows, "untested_sets": untested}
    atomic_write_json(path, record)
    return record


def dataset_test(recipe: Recipe, texts: list[str]) -> dict:
    """Test the candidate set `texts` (which must be challenge texts of the run) against every victim.

    Returns {"texts": matched, "victims": [{"victim", "p_value", "statistic", "members"}, ...]}: "members" is how
    many of the set the victim truly saw (known in a zoo of shadows; it grades the test and reaches nothing).
    """
    run, recipe = open_run(recipe)
    plan = run.load_plan()
    position = {normalise(plan.pool[j]): i for i, j in enumerate(plan.challenge)}
    matched = sorted({position[t] for t in map(normalise, texts) if t in position})
    missing = [t for t in texts if normalise(t) not in position]
    if missing:
        raise RecipeError(f"texts: {len(missing)} of {len(texts)} are not challenge texts of {run.root} (first: "
                          f"{missing[0][:60]!r}); expected texts the run queried (data.challenge)")
    queries, labels = _inputs(run, recipe)
    victims = []
    for v in range(labels.shape[0]):
        stat, null = _statistic(recipe, queries, labels, v)
        result = dataset_p_value(stat, labels, v, null, np.array(matched), seed=recipe.run.seed)
        victims.append({"victim": v, **result, "members": int(labels[v, matched].sum())})
    return {"texts": len(matched), "statistic": _statistic_name(recipe), "victims": victims}
