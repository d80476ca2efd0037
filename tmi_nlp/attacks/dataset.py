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

from tmi_nlp.attacks.calibrated import PRIOR_MODELS, class_logits

MIN_STD = 1e-3


def _statistic(queries: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """[N, K]: each model's mean class logit, over its A queries, of the class classes[k]."""
    logits = class_logits(queries)  # [N, K, A, C]
    index = np.broadcast_to(classes[None, :, None, None], logits.shape[:3] + (1,))
    return np.take_along_axis(logits, index, axis=-1)[..., 0].mean(-1)


def shadow_z(stat: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the shadows' statistics [M, K] and OUT mask [M, K]: each shadow's z against the other OUT shadows
    (nan where it is IN, or where fewer than two others are OUT), and the mean and shrunk std of all OUT
    shadows per point (what a victim is standardised with)."""
    w = out.astype(np.float64)
    n = w.sum(0)  # [K]
    s1, s2 = (stat * w).sum(0), (stat**2 * w).sum(0)
    mean_all = s1 / np.maximum(n, 1)
    var_all = np.maximum(s2 / np.maximum(n, 1) - mean_all**2, 0)
    pooled = np.mean(var_all[n >= 2]) if (n >= 2).any() else 1.0

    def shrunk(var: np.ndarray, count: np.ndarray) -> np.ndarray:
        return np.maximum(np.sqrt((count * var + PRIOR_MODELS * pooled) / (count + PRIOR_MODELS)), MIN_STD)

    n_loo = n[None] - w
    mean_loo = (s1[None] - stat * w) / np.maximum(n_loo, 1)
    var_loo = np.maximum((s2[None] - stat**2 * w) / np.maximum(n_loo, 1) - mean_loo**2, 0)
    z = (stat - mean_loo) / shrunk(var_loo, n_loo)
    z[~out | (n_loo < 2)] = np.nan
    return z, mean_all, shrunk(var_all, n)


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
    z_victim = (stat[victim] - mean) / std
    z_victim -= z_victim.mean()
    z_shadows = z_shadows - ((stat[shadows] - mean) / std).mean(1, keepdims=True)
    observed = float(np.mean(z_victim[usable]))
    rng = np.random.default_rng(seed)
    null = np.zeros(draws)
    for k in usable:
        candidates = z_shadows[~np.isnan(z_shadows[:, k]), k]
        null += candidates[rng.integers(0, len(candidates), draws)]
    null /= len(usable)
    p = (1 + np.sum(null >= observed)) / (draws + 1)
    return {"statistic": observed, "p_value": float(p), "texts": int(len(usable))}
