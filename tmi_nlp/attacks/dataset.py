"""Dataset-level inference: was this set of texts in the victim's pretraining data? One test, one p-value.

An auditor rarely asks about one text: the question is whether a corpus was used. Weak per-text
evidence adds up over a set. For each text the victim's confidence in the class all models favour
(the class logit of `calibrated.class_logits`, mean over the A queries) is standardised against the
victim's OUT shadows for that text (z); the set's statistic is the mean z over its texts.

The null distribution ("none of these texts was seen") is built from the shadows alone, never
from the victim's membership: each draw takes, for every text of the set, the z of one shadow
that did *not* see it, standardised against the other OUT shadows (leave-one-out, as the victim
is against all of them). The p-value is the share of draws at least as large as the victim's
statistic (with the +1 of a permutation test). A set of non-members then gets uniform p-values,
which the tests and the shuffled-membership control check.
"""

import numpy as np

from tmi_nlp.attacks.calibrated import class_logits, loo_moments


def _statistic(queries: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """[N, K]: each model's mean class logit, over its A queries, of the class classes[k]."""
    logits = class_logits(queries)  # [N, K, A, C]
    index = np.broadcast_to(classes[None, :, None, None], logits.shape[:3] + (1,))
    return np.take_along_axis(logits, index, axis=-1)[..., 0].mean(-1)


def shadow_z(stat: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the shadows' statistics [M, K] and OUT mask [M, K]: each shadow's z against the other OUT shadows
    (nan where it is IN, or where fewer than two others are OUT), and the mean and shrunk std of all OUT
    shadows per point (what a victim is standardised with). The statistics are `loo_moments`', as the
    calibrated attacks standardise with."""
    f = stat[:, :, None, None]  # one query, one class
    mean_loo, std_loo = (x[..., 0] for x in loo_moments(f, out, out, 1))
    mean_all, std_all = (x[0, :, 0] for x in loo_moments(f, out, np.zeros_like(out), 1))
    z = (stat - mean_loo) / std_loo
    z[~out | (out.sum(0)[None] - out < 2)] = np.nan
    return z, mean_all, std_all


def dataset_p_value(queries: np.ndarray, labels: np.ndarray, victim: int, shadows: np.ndarray, points: np.ndarray,
                    draws: int = 2000, seed: int = 0) -> dict:
    """Test H0 "none of the texts `points` (challenge-point indices) was in model `victim`'s pretraining data".

    queries [N, K, A, C] and labels [N, K] of the run; only the rows `shadows` of `labels` are read (the
    victim's own row never is). Returns the statistic (mean z of the victim over the set), its p-value, and
    the number of texts that could be tested (those with at least two OUT shadows).
    """
    points = np.asarray(points)
    # The class read per text is the one all models put most probability on: chosen the same way for the victim
    # and every shadow. (The victim's own predicted class would be its highest logit by construction, and its
    # statistic would beat the shadows' on non-members too.)
    classes = queries.mean((0, 2)).argmax(-1)
    stat = _statistic(queries, classes)
    out = ~labels[shadows]
    z_shadows, mean, std = shadow_z(stat[shadows], out)
    usable = points[(~np.isnan(z_shadows[:, points])).sum(0) >= 1]
    if not len(usable):
        raise ValueError("points: no text of the set has an OUT shadow; expected shadows that did not see them")
    # Each model's z-scores are centred on its own mean over every text: a model more confident than the others
    # on all texts alike (a model-level effect) moves all of its z-scores together, which the null, drawn text by
    # text from different shadows, would not reproduce.
    # (nanmean: a text no shadow left out has no OUT statistics.)
    z_victim = (stat[victim] - mean) / std
    z_victim -= np.nanmean(z_victim)
    z_shadows = z_shadows - np.nanmean((stat[shadows] - mean) / std, axis=1, keepdims=True)
    observed = float(np.mean(z_victim[usable]))
    rng = np.random.default_rng(seed)
    null = np.zeros(draws)
    for k in usable:
        candidates = z_shadows[~np.isnan(z_shadows[:, k]), k]
        null += candidates[rng.integers(0, len(candidates), draws)]
    null /= len(usable)
    p = (1 + np.sum(null >= observed)) / (draws + 1)
    return {"statistic": observed, "p_value": float(p), "texts": int(len(usable))}
