"""dataset: was this set of texts in a victim's pretraining data? The set test of `attacks/dataset.py` on a run.

    power of the test on the run's own victims   -> dataset/<statistic>.json
    a given set of candidate texts               -> printed and returned, one p-value per victim
    a given set against a model not trained here -> printed and returned, one p-value (two-sample)

The statistic is `attack.dataset_statistic`: an attack's scores (a half of the other models trains it and
it scores the victim and the other half, the null), or "confidence", the victim's calibrated confidence.
With a reference set of texts known unused, the test is two-sample (`reference_p_value`) and reads the
victim's leave-one-out scores of the same attack, those of the attack stage (computed there if missing).
Only the run folder is read; the power record is rewritten when its settings change.
"""

import json

import numpy as np
from scipy.stats import kstest

from tmi_nlp.atomic import atomic_write_json
from tmi_nlp.attacks import ATTACKS, READS
from tmi_nlp.attacks.dataset import (
    NULL,
    REFERENCE_TEST,
    confidence_statistic,
    dataset_p_value,
    held_out_scores,
    reference_p_value,
    standardised_confidence,
)
from tmi_nlp.config import Recipe, RecipeError
from tmi_nlp.data.loading import normalise
from tmi_nlp.data.plan import Plan
from tmi_nlp.stages.attack import attack
from tmi_nlp.stages.prepare import open_run
from tmi_nlp.stages.target import Predict, attack_target
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


def _reference_scores(run: RunDir, recipe: Recipe, queries: np.ndarray) -> np.ndarray:
    """[N, K]: every model's per-text scores for the two-sample test, none from an attack its own membership
    trained: the statistic's leave-one-out scores (the attack stage's, computed and kept there if missing), or
    `standardised_confidence`, which reads no membership."""
    name = _statistic_name(recipe)
    if name == CONFIDENCE:
        return standardised_confidence(queries)
    attack(recipe, [name])
    return np.load(run.attack(name) / "scores.npy")


def _inputs(run: RunDir, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    n = recipe.run.num_models
    return np.asarray(run.stacked(QUERIES, n)), run.load_plan().labels()


def _reference(rng: np.random.Generator, known: np.ndarray, size: int) -> np.ndarray | None:
    """A reference set of `size` known non-members (all of them for 0), or None where too few are known."""
    if size == 0:
        return known
    return np.sort(rng.choice(known, size, replace=False)) if len(known) >= size else None


def _rates(p_values: dict[str, list[float]], prefix: str = "") -> dict:
    members, non_members = (np.array(p_values[k]) for k in ("members", "non_members"))
    rates = {f"{prefix}members_p_below_0.01": float(np.mean(members < 0.01)),
             f"{prefix}members_p_below_0.05": float(np.mean(members < 0.05)),
             f"{prefix}non_members_p_below_0.05": float(np.mean(non_members < 0.05)),
             f"{prefix}non_members_ks_p": float(kstest(non_members, "uniform").pvalue)}
    if "control" in p_values:
        control = np.array(p_values["control"])
        rates.update({f"{prefix}control_p_below_0.05": float(np.mean(control < 0.05)),
                      f"{prefix}control_ks_p": float(kstest(control, "uniform").pvalue)})
    return rates


def dataset_power(recipe: Recipe) -> dict:
    """Power and level of both set tests on the run's own victims, per set size (`attack.dataset_sizes`).

    For every victim and size n, `attack.dataset_sets` sets of n of its members and as many of its
    non-members are tested, and, for the one-sample test's control, sets of its members once every model's
    membership is shuffled across models; the member and non-member sets also by the two-sample test against a
    reference set of the victim's other non-members (`attack.dataset_reference` of them, or all). Returns and writes
    dataset/<statistic>.json; a finished record with the same settings is read back instead.
    """
    run, recipe = open_run(recipe)
    a = recipe.attack
    # "null" names the null's construction: a record made with an earlier one (per-text draws only) is recomputed.
    settings = {"statistic": _statistic_name(recipe), "sizes": list(a.dataset_sizes), "sets": a.dataset_sets,
                "seed": recipe.run.seed, "null": NULL, "reference": a.dataset_reference,
                "reference_test": REFERENCE_TEST}
    path = run.root / "dataset" / f"{settings['statistic']}.json"
    if path.exists() and (old := json.loads(path.read_text()))["settings"] == settings:
        return old
    queries, labels = _inputs(run, recipe)
    n = labels.shape[0]
    rng = np.random.default_rng([recipe.run.seed, 7])
    shuffled = np.take_along_axis(labels, rng.random(labels.shape).argsort(axis=0), axis=0)
    scores = _reference_scores(run, recipe, queries)
    tests = {size: {"members": [], "non_members": [], "control": []} for size in a.dataset_sizes}
    paired = {size: {"members": [], "non_members": [], "reference_texts": []} for size in a.dataset_sizes}
    untested: dict[str, int] = {}
    for v in range(n):
        stat, null = _statistic(recipe, queries, labels, v)
        stat_shuffled, null_shuffled = _statistic(recipe, queries, shuffled, v)
        # The control's member sets are the victim's members under the shuffled membership: sets that carry no
        # more of its true members than chance gives, so its p-values must be uniform.
        members, others, control = (np.flatnonzero(x) for x in (labels[v], ~labels[v], shuffled[v]))
        for size in a.dataset_sizes:
            if min(len(members), len(others), len(control)) < size:
                continue
            p, q = tests[size], paired[size]
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
                else:
                    for key, p_value in zip(("members", "control", "non_members"), tested, strict=True):
                        p[key].append(p_value)
                # The two-sample test's null is a set of non-members against the other non-members. (The shuffled
                # control does not apply to it: under a shuffle a text joins a victim's "members" with the share of
                # models that trained on it, which the scores also carry; docs/RESULTS.md.)
                draw = np.random.default_rng(seed + [3])
                against = (_reference(draw, others, a.dataset_reference),
                           _reference(draw, np.setdiff1d(others, other_pick), a.dataset_reference))
                for key, texts, ref in (("members", pick, against[0]), ("non_members", other_pick, against[1])):
                    if ref is None or not len(ref):  # fewer known non-members than the reference asks for
                        untested[f"{size} {key} against a reference"] = \
                            untested.get(f"{size} {key} against a reference", 0) + 1
                        continue
                    q[key].append(reference_p_value(scores[v], texts, ref, seed=seed[1:])["p_value"])
                    if key == "members":
                        q["reference_texts"].append(len(ref))
    rows = {}
    for size in a.dataset_sizes:
        p, q = tests[size], paired[size]
        row = {"sets": len(p["members"]), **(_rates(p) if p["members"] else {})}
        if q["members"] and q["non_members"]:
            row.update({"reference_sets": len(q["members"]), "reference_texts": float(np.mean(q["reference_texts"])),
                        **_rates(q, "reference_")})
        if p["members"] or q["members"]:
            rows[str(size)] = row
    record = {"settings": settings, "sizes": rows, "untested_sets": untested}
    atomic_write_json(path, record)
    return record


def _match(plan: Plan, texts: list[str], name: str, run: RunDir) -> list[int]:
    """Challenge-point indices of `texts` (matched as the models see them), refused unless every one is found."""
    position = {normalise(plan.pool[j]): i for i, j in enumerate(plan.challenge)}
    missing = [t for t in texts if normalise(t) not in position]
    if missing:
        raise RecipeError(f"{name}: {len(missing)} of {len(texts)} are not challenge texts of {run.root} (first: "
                          f"{missing[0][:60]!r}); expected texts the run queried (data.challenge)")
    return sorted({position[normalise(t)] for t in texts})


def dataset_test(recipe: Recipe, texts: list[str], reference: list[str] | None = None) -> dict:
    """Test the candidate set `texts` (which must be challenge texts of the run) against every victim.

    Without `reference`, the one-sample test; with it (texts known unused, challenge texts of the run too), the
    two-sample test of the candidates against them. Returns {"texts", "statistic", "reference_texts",
    "victims": [{"victim", "p_value", "statistic", "members", ...}, ...]}: "members" is how many of the set the
    victim truly saw, and "reference_members" how many of the reference (known in a zoo of shadows; they grade the
    test and reach nothing).
    """
    run, recipe = open_run(recipe)
    plan = run.load_plan()
    matched = _match(plan, texts, "texts", run)
    against = _match(plan, reference, "reference", run) if reference is not None else None
    if against is not None and (both := len(set(matched) & set(against))):
        raise RecipeError(f"reference: {both} of its texts are also in texts; expected known non-members apart "
                          f"from the candidates")
    queries, labels = _inputs(run, recipe)
    scores = _reference_scores(run, recipe, queries) if against is not None else None
    victims = []
    for v in range(labels.shape[0]):
        if against is None:
            stat, null = _statistic(recipe, queries, labels, v)
            result = dataset_p_value(stat, labels, v, null, np.array(matched), seed=recipe.run.seed)
        else:
            result = {**reference_p_value(scores[v], np.array(matched), np.array(against), seed=recipe.run.seed),
                      "reference_members": int(labels[v, against].sum())}
        victims.append({"victim": v, **result, "members": int(labels[v, matched].sum())})
    return {"texts": len(matched), "statistic": _statistic_name(recipe),
            "reference_texts": len(against) if against is not None else 0, "victims": victims}


def target_set_test(recipe: Recipe, predict: Predict, texts: list[str], reference: list[str],
                    name: str = "target") -> dict:
    """Was the set `texts` in the pretraining data of a model tmi-nlp did not train (`predict`, as `attack_target`
    takes it)? The two-sample test of the candidates against `reference`, texts known unused (both challenge texts
    of the run), on the target's scores by the attack `attack.dataset_statistic` trained on all the run's models
    (`attack_target`; kept under targets/<name>/). The one-sample test is not offered: its null needs models scored
    as the victim is, and the shadows' scores come from attacks trained on their own zoo.
    """
    run, recipe = open_run(recipe)
    statistic = _statistic_name(recipe)
    if statistic == CONFIDENCE:
        raise RecipeError(f"attack.dataset_statistic = {CONFIDENCE!r}: a target is tested on an attack's scores; "
                          f"expected an attack on the queries (e.g. shared_confidence)")
    plan = run.load_plan()
    matched, against = _match(plan, texts, "texts", run), _match(plan, reference, "reference", run)
    if both := len(set(matched) & set(against)):
        raise RecipeError(f"reference: {both} of its texts are also in texts; expected known non-members apart "
                          f"from the candidates")
    attack_target(recipe, predict, name=name, attacks=[statistic])
    scores = np.load(run.root / "targets" / name / statistic / "scores.npy")[0]
    result = reference_p_value(scores, np.array(matched), np.array(against), seed=recipe.run.seed)
    return {"target": name, "statistic": statistic, "texts": result["texts"],
            "reference_texts": result["reference_texts"], "p_value": result["p_value"],
            "mean_difference": result["statistic"]}
