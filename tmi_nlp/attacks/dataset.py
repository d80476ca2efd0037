"""Dataset-level inference: was this set of texts in the victim's pretraining data? One test, one p-value.

An auditor rarely asks about one text: the question is whether a corpus was used. Weak per-text
evidence adds up over a set. Each model has a per-text statistic: either its confidence in the class
all models favour (`confidence_statistic`: the class logit of `calibrated.class_logits`, mean over the
A queries), or the score of a membership attack (`held_out_scores`: every model's score from an attack
trained on models other than the victim and itself). The victim's statistic for each text is
standardised against the OUT shadows' for that text (z); the set's statistic is the mean z over its texts.

The null distribution ("none of these texts was seen") is built from other models alone, never
from the victim's membership: each draw is a model-level shift (Student's t over the M null models,
scaled by the variance across them of their mean over their OUT texts, less its own noise) plus, for
every text of the set, the residual of one model that did *not* see it, standardised against the
other OUT models, as the victim's is (against as many of them). The p-value is the share of draws at
least as large as the victim's statistic (with the +1 of a permutation test). A set of non-members
then gets uniform p-values, which the tests and the shuffled-membership control check.

With a reference set (`reference_p_value`: texts the auditor knows were not used, from the same
distribution, e.g. written after the model), the test is two-sample instead, as in LLM dataset inference
(Maini et al., NeurIPS 2024): the victim's mean score on the candidate set against its mean on the
reference set, with a permutation p-value. It needs no null models, and what moves all of a victim's
texts alike (how much it memorised, how confident it is) moves both sets and cancels: that shift is the
widest part of the one-sample null.
"""

import numpy as np

from tmi_nlp.attacks import run_attack
from tmi_nlp.attacks.calibrated import loo_moments
from tmi_nlp.attacks.features import MIN_STD, Roles, class_logits
from tmi_nlp.config import AttackArguments

NULL = "model-level shift (Student's t) + per-text residuals"
# How the two-sample test is measured; in the power record's settings, so a record of another version is redone.
REFERENCE_TEST = "permutation of the victim's leave-one-out scores; null: non-member sets"


def confidence_statistic(queries: np.ndarray) -> np.ndarray:
    """[N, K]: each model's mean class logit, over its A queries, of the class all models put most probability on.

    The class is chosen the same way for the victim and every shadow (the victim's own predicted class would be its
    highest logit by construction, and its statistic would beat the shadows' on non-members too)."""
    classes = queries.mean((0, 2)).argmax(-1)
    logits = class_logits(queries)  # [N, K, A, C]
    index = np.broadcast_to(classes[None, :, None, None], logits.shape[:3] + (1,))
    return np.take_along_axis(logits, index, axis=-1)[..., 0].mean(-1)


def standardised_confidence(queries: np.ndarray) -> np.ndarray:
    """[N, K]: each model's `confidence_statistic` on a text, standardised against every other model's on it.

    The per-text score of "confidence" in the two-sample test: it reads no membership, and the standardisation
    takes off how hard each text is, which would otherwise add its spread to both sets' means."""
    stat = confidence_statistic(queries)
    n = stat.shape[0]
    if n < 3:
        raise ValueError(f"queries: {n} models; expected at least 3 to standardise each against the others")
    mean = (stat.sum(0) - stat) / (n - 1)
    square = ((stat**2).sum(0) - stat**2) / (n - 1)
    return (stat - mean) / np.sqrt(np.maximum(square - mean**2, 0) * (n - 1) / (n - 2) + MIN_STD**2)


def held_out_scores(name: str, queries: np.ndarray, labels: np.ndarray, victim: int, args: AttackArguments,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Attack `name`'s scores [N, K] for a set test of `victim`, and the models that form its null.

    The other models are split at random in two: one attack is trained on the first half and scores the victim
    and the second half (nan elsewhere). The victim and the null models are then exchangeable under H0: none of
    them trained the attack that scores them, and the victim's membership reaches nothing. (Leave-one-out
    scores are not: every null model would sit in the training set of the others' attacks, the victim in
    none, and the null comes out wider than the victim's statistic, measured 1.27 against 1.07 in z.)"""
    others = np.random.default_rng([seed, victim]).permutation(np.delete(np.arange(labels.shape[0]), victim))
    shadows, null = np.sort(others[:(len(others) + 1) // 2]), np.sort(others[(len(others) + 1) // 2:])
    scored = np.concatenate([[victim], null])
    scores = np.full(labels.shape, np.nan)
    scores[scored] = run_attack(name, queries, labels, args, seed, Roles(scored, np.tile(shadows, (len(scored), 1))))
    return scores, null


def exchangeable_z(stat: np.ndarray, out: np.ndarray, victim_stat: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """z-scores of the null models and of the victim, built alike.

    stat [M, K] of the null models and their OUT mask; victim_stat [K]. A null model's z on a text is against the
    other OUT models of that text (leave-one-out, `loo_moments`' mean and shrunk std, as the calibrated attacks
    standardise with); the victim's is against the same OUT models less one drawn at random, so that both are
    compared with as many models. Returns z [M, K] (every text; nan where a text has fewer than two other OUT
    models) and the victim's z [K] (nan where it would have fewer than two).
    """
    mean_loo, std_loo = (x[..., 0] for x in loo_moments(stat[:, :, None, None], out, out, 1))
    z = (stat - mean_loo) / std_loo
    others = out.sum(0)[None] - out  # OUT models other than the row's own
    z[others < 2] = np.nan
    dropped = np.array([rng.choice(np.flatnonzero(column)) if column.sum() >= 3 else -1 for column in out.T])
    usable = dropped >= 0
    z_victim = np.full(stat.shape[1], np.nan)
    k = np.flatnonzero(usable)
    z_victim[k] = (victim_stat[k] - mean_loo[dropped[k], k]) / std_loo[dropped[k], k]
    return z, z_victim


def model_level_variance(level: np.ndarray, residual: np.ndarray) -> float:
    """Variance across models of a level shared by all of a model's texts (method of moments).

    level [M]: each model's mean over its texts; residual [M, K]: the texts' deviations from it (nan where a text is
    not the model's). The spread of the means is the model-level variance plus each mean's own noise (the pooled
    residual variance over its number of texts), which is taken off; clipped at 0."""
    texts = (~np.isnan(residual)).sum(1)
    within = np.nansum(residual**2) / max(texts.sum() - len(texts), 1)
    return max(0.0, float(np.var(level, ddof=1)) - within * float(np.mean(1.0 / texts)))


def dataset_p_value(stat: np.ndarray, labels: np.ndarray, victim: int, shadows: np.ndarray, points: np.ndarray,
                    draws: int = 2000, seed: int = 0) -> dict:
    """Test H0 "none of the texts `points` (challenge-point indices) was in model `victim`'s pretraining data".

    stat [N, K]: every model's per-text statistic (`confidence_statistic`, or `held_out_scores` for this
    victim); `shadows`: the models that form the null (every other model, or `held_out_scores`' null models);
    labels [N, K] of the run, of which only the rows `shadows` are read (the victim's own row never is).
    Returns the statistic (mean z of the victim over the set), its p-value, and the number of texts that could
    be tested (those with at least three OUT null models).
    """
    points = np.asarray(points)
    rng = np.random.default_rng(seed)
    out = ~labels[shadows]
    z, z_victim = exchangeable_z(stat[shadows], out, stat[victim], rng)
    z_null = np.where(out, z, np.nan)
    usable = points[~np.isnan(z_victim[points]) & (~np.isnan(z_null[:, points])).any(0)]
    if not len(usable):
        raise ValueError("points: no text of the set has three OUT null models; expected models that did not "
                         "see them")
    # Each model's z-scores are centred on its own mean over every text: a model more confident than the others
    # on all texts alike (a model-level effect) moves all of its z-scores together.
    z_victim = z_victim - np.nanmean(z_victim)
    z_null = z_null - np.nanmean(z, axis=1, keepdims=True)
    observed = float(np.mean(z_victim[usable]))
    # The centring leaves a level shared by all of a model's OUT texts, minus its share of members times how much
    # it memorised, which varies from model to model; per-text draws from different models would average it away
    # (on the demo's zoo its variance was 0.16, against 0.03 for the mean of 50 texts' own noise, and 25% of
    # non-member sets fell below p = 0.05). So each draw is one model-level shift plus per-text residuals.
    level = np.nanmean(z_null, axis=1)  # [M]: each null model's mean over its OUT texts
    residual = z_null - level[:, None]
    # Student's t with M - 1 degrees of freedom: the shift's variance is estimated from the M null models alone.
    shift = np.sqrt(model_level_variance(level, residual)) * rng.standard_t(max(len(level) - 1, 1), draws)
    null = level.mean() + shift
    for k in usable:
        candidates = residual[~np.isnan(residual[:, k]), k]
        null += candidates[rng.integers(0, len(candidates), draws)] / len(usable)
    p = (1 + np.sum(null >= observed)) / (draws + 1)
    return {"statistic": observed, "p_value": float(p), "texts": int(len(usable))}


def reference_p_value(scores: np.ndarray, points: np.ndarray, reference: np.ndarray, draws: int = 10000,
                      seed: int = 0) -> dict:
    """Test H0 "the texts `points` are no more the model's members than the known non-members `reference`".

    scores [K]: one model's per-text scores, higher for members, from an attack its own membership did not
    train (the attack stage's leave-one-out scores); `points`, `reference`: disjoint challenge-point indices.
    The statistic is the difference of the two sets' mean scores; the p-value is a permutation test's (texts
    reassigned between the sets at random, with the +1), exact when the candidate texts, if unseen, are drawn
    from the same distribution as the reference. Returns the statistic, its p-value and both sets' sizes.
    """
    points, reference = np.asarray(points), np.asarray(reference)
    if len(points) < 1 or len(reference) < 1:
        raise ValueError(f"points, reference: {len(points)} and {len(reference)} texts; expected at least one in each")
    if overlap := np.intersect1d(points, reference).size:
        raise ValueError(f"reference: {overlap} of its texts are also in the tested set; expected known "
                         f"non-members apart from the candidates")
    pooled = np.asarray(scores, dtype=np.float64)[np.concatenate([points, reference])]
    if np.isnan(pooled).any():
        raise ValueError("scores: nan for a text of the sets; expected a score for every text tested")
    n, total = len(points), pooled.sum()
    observed = pooled[:n].mean() - pooled[n:].mean()
    rng = np.random.default_rng(seed)
    null = []
    for start in range(0, draws, 1000):  # 1000 permutations at a time bounds the memory for large sets
        keys = rng.random((min(1000, draws - start), len(pooled)))
        drawn = pooled[np.argpartition(keys, n - 1, axis=1)[:, :n]].sum(1)  # the sum of a random n-subset
        null.append(drawn / n - (total - drawn) / (len(pooled) - n))
    # The tolerance keeps a permutation that reproduces the observed split from falling below it by rounding.
    p = (1 + np.sum(np.concatenate(null) >= observed - 1e-12)) / (draws + 1)
    return {"statistic": float(observed), "p_value": float(p), "texts": n, "reference_texts": len(reference)}
