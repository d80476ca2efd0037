"""The attacks TMI competes with, adapted to pretraining membership and run on the same tensors.

Pretraining texts have no downstream label, so the score-based attacks read the probability of
the class the *victim* predicts for the point (its majority vote over the A queries). Shadow-
based attacks loop over victims and are vectorised over points and augmentations; each has a
per-example loop in `attacks/reference.py` that the tests hold it equal to. Like every attack,
a victim's scores read `labels` only through its shadows' rows (`Roles`).

Augmentations are drawn afresh per model, so query a of one model and of another are two draws
of the same distribution (query 0 is the same unaugmented text when the recipe includes it):
the Gaussians below are fitted per (point, query index), as LiRA fits one per augmentation.
"""

import numpy as np
from scipy.special import log_ndtr

from tmi_nlp.attacks import register
from tmi_nlp.attacks.features import EPS, MIN_STD, Roles, class_logits, neighbourhood_contrast, phi
from tmi_nlp.config import AttackArguments

# RMIA (Zarifzadeh et al., 2024): offline Pr(x) = ((1 + a) Pr_out(x) + (1 - a)) / 2, and the
# likelihood-ratio threshold gamma; the paper's defaults.
RMIA_OFFLINE_A = 0.3
RMIA_GAMMA = 1.0


def predicted_class(queries: np.ndarray) -> np.ndarray:
    """int [N, K]: each model's majority vote over its A queries (ties: the lowest class)."""
    votes = queries.argmax(-1)  # [N, K, A]
    counts = (votes[..., None] == np.arange(queries.shape[-1])).sum(2)  # [N, K, C]
    return counts.argmax(-1)


def class_column(queries: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """[N, K, A]: every model's probability of class classes[k] (one class per point)."""
    n, k, a, _ = queries.shape
    index = np.broadcast_to(classes[None, :, None, None], (n, k, a, 1))
    return np.take_along_axis(queries, index, axis=-1)[..., 0].astype(np.float64)


def masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of x [N, K, ...] where mask [N, K]; nan where the mask is empty."""
    m = mask.reshape(mask.shape + (1,) * (x.ndim - 2)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * m).sum(0) / m.sum(0)


def fit_gaussian(x: np.ndarray, mask: np.ndarray, global_std: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean [K, A] and std ([K, A], or one pooled over every point and query) of x [N, K, A] under mask."""
    mean = masked_mean(x, mask)
    sq = (x - mean[None]) ** 2 * mask[..., None]
    if global_std:
        count = mask.sum() * x.shape[2]
        std = np.full_like(mean, np.sqrt(np.nansum(sq) / max(count - 1, 1)))
    else:
        std = np.sqrt(np.nansum(sq, 0) / np.maximum(mask.sum(0) - 1, 1)[:, None])
    return mean, np.maximum(std, MIN_STD)


def log_normal(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)


def _lira(online: bool, global_std: bool):
    def attack(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
               roles: Roles) -> np.ndarray:
        classes = predicted_class(queries)
        scores = np.empty((len(roles.victims), queries.shape[1]))
        for i, v in enumerate(roles.victims):
            x = phi(class_column(queries, classes[v])).astype(np.float64)  # [N, K, A]
            is_in, is_out = roles.masks(labels, i)
            mu_out, sd_out = fit_gaussian(x, is_out, global_std)
            if online:
                mu_in, sd_in = fit_gaussian(x, is_in, global_std)
                llr = log_normal(x[v], mu_in, sd_in) - log_normal(x[v], mu_out, sd_out)
            else:  # one-sided: how far above the OUT distribution the victim's score lies
                llr = log_ndtr((x[v] - mu_out) / sd_out)
            scores[i] = np.nan_to_num(llr, nan=0.0).mean(-1)
        return scores

    kind = "online (IN and OUT Gaussians)" if online else "offline (OUT Gaussian, one-sided)"
    attack.__doc__ = (f"LiRA {kind}, {'global' if global_std else 'per-point'} variance, on the phi-score "
                      f"of the victim's predicted class per query.")
    return attack


register("lira_online", family="shadow")(_lira(online=True, global_std=False))
register("lira_online_global_var", family="shadow")(_lira(online=True, global_std=True))
register("lira_offline", family="shadow")(_lira(online=False, global_std=False))
register("lira_offline_global_var", family="shadow")(_lira(online=False, global_std=True))


def _rmia(online: bool):
    def attack(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
               roles: Roles) -> np.ndarray:
        k = queries.shape[1]
        classes = predicted_class(queries)
        scores = np.empty((len(roles.victims), k))
        for i, v in enumerate(roles.victims):
            p = class_column(queries, classes[v]).mean(-1)  # [N, K]
            is_in, is_out = roles.masks(labels, i)
            if online:  # reference models are the shadows, IN and OUT alike
                pr_x = masked_mean(p, is_in | is_out)
            else:
                pr_x = ((1 + RMIA_OFFLINE_A) * np.nan_to_num(masked_mean(p, is_out), nan=0.0)
                        + (1 - RMIA_OFFLINE_A)) / 2
            ratio = p[v] / np.maximum(pr_x, EPS)
            # Population z: the other challenge points, seen through the same victim.
            dominates = ratio[:, None] > RMIA_GAMMA * ratio[None, :]
            np.fill_diagonal(dominates, False)
            scores[i] = dominates.sum(1) / max(k - 1, 1)
        return scores

    attack.__doc__ = (f"RMIA {'online' if online else 'offline'}: share of the other challenge points whose "
                      f"likelihood ratio the point's ratio beats (gamma {RMIA_GAMMA}).")
    return attack


register("rmia", family="shadow")(_rmia(online=True))
register("rmia_offline", family="shadow")(_rmia(online=False))


def _calibrated(statistic, doc: str):
    """The victim's statistic minus the mean of its OUT shadows' for the same point (all shadows if none OUT)."""

    def attack(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
               roles: Roles) -> np.ndarray:
        classes = predicted_class(queries)
        scores = np.empty((len(roles.victims), queries.shape[1]))
        for i, v in enumerate(roles.victims):
            s = statistic(queries, classes[v])  # [N, K]
            is_in, is_out = roles.masks(labels, i)
            reference = masked_mean(s, is_out)
            reference = np.where(np.isnan(reference), masked_mean(s, is_in | is_out), reference)
            scores[i] = s[v] - reference
        return scores

    attack.__doc__ = doc
    return attack


def label_agreement(queries: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """[N, K]: share of each model's A predicted labels equal to classes[k]."""
    return (queries.argmax(-1) == classes[None, :, None]).mean(-1)


def log_max_probability(queries: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """[N, K]: mean over the A queries of log max_c p."""
    return np.log(np.clip(queries.max(-1), EPS, 1)).mean(-1)


register("label_only", family="shadow")(_calibrated(label_agreement, (
    "Label-only: how often the victim's A predicted labels agree with its majority label, minus the same "
    "agreement (with the victim's label) of its OUT shadows.")))
register("calibrated_confidence", family="shadow")(_calibrated(log_max_probability, (
    "The victim's mean log max-probability minus its OUT shadows' mean for the point.")))


@register("confidence", family="shadow-free")
def confidence(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
               roles: Roles) -> np.ndarray:
    """Shadow-free: mean log max-probability over the victim's queries."""
    return log_max_probability(queries[roles.victims])


@register("entropy", family="shadow-free")
def negative_entropy(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                     roles: Roles) -> np.ndarray:
    """Shadow-free: minus the mean prediction entropy over the victim's queries."""
    p = np.clip(queries[roles.victims].astype(np.float64), EPS, 1)
    return (p * np.log(p)).sum(-1).mean(-1)


@register("stability", family="shadow-free")
def augmentation_stability(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                           roles: Roles) -> np.ndarray:
    """Shadow-free: minus the mean L1 distance of each query's softmax from the point's mean softmax."""
    q = queries[roles.victims].astype(np.float64)
    return -np.abs(q - q.mean(2, keepdims=True)).sum(-1).mean(-1)


@register("neighbourhood", family="shadow-free", reads_original=True)
def neighbourhood(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                  roles: Roles) -> np.ndarray:
    """Shadow-free neighbourhood comparison (Mattern et al., 2023): the victim's confidence on the exact text less
    its mean confidence on the text's neighbours, the augmented queries (`neighbourhood_contrast`)."""
    return neighbourhood_contrast(class_logits(queries[roles.victims]))
