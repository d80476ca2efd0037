"""TMI on calibrated features that do not saturate on confident outputs (beyond the paper).

The paper's feature map, phi = log p - log(1 - p) per class scaled to L2 norm <= 1, keeps only
the direction of the vector: with two classes every vector past about 0.67 confidence becomes
(+-0.707, -+0.707) and only the predicted label survives. Membership in a confident victim shows
in *how* confident it is, relative to how confident models that did not see the text are.

So each class's score is taken as a logit, log p_c - log(sum of the other classes' p), computed
from the small probabilities so that float32 softmax vectors keep their precision near 1, and
standardised per point against the victim's OUT shadows (difficulty calibration, Watson et al.,
ICLR 2022): z = (score - mean_out) / sd_out, per point and class. The per-point standard deviation
of a few shadows is noisy, so it is shrunk towards the mean over points (a prior worth
`PRIOR_MODELS` models). Nothing is clipped. A shadow's own vector never enters the statistics
that standardise it (leave-one-out), as it will not for the victim.

On out-of-domain text the models disagree about the class (on SST-2 from scratch a point's logit varies
4x more across OUT models than across points), and what membership moves is how confident a model is
in whichever class it predicts: the signed class logits then carry it poorly. `shared_confidence`
reads, besides, each query's top class logit relative to the model's median of it over the challenge
points, standardised per point like the rest (docs/experiments.md measures each part).
"""

import numpy as np
import torch

from tmi_nlp.attacks import register
from tmi_nlp.attacks.baselines import log_normal, masked_mean, predicted_class
from tmi_nlp.attacks.batched_mlp import fit_predict, predict_in, train
from tmi_nlp.attacks.features import EPS, MIN_STD, Roles, class_logits, neighbourhood_contrast
from tmi_nlp.attacks.tmi import mlp_settings, training_groups
from tmi_nlp.config import AttackArguments

PRIOR_MODELS = 4.0  # weight of the pooled variance, in models, when a point's own is estimated


def relative_confidence(f: np.ndarray) -> np.ndarray:
    """[N, K, A, 1]: each query's top class logit (confidence in whichever class it predicts) less the model's
    median of it over the K challenge points, per query: a model confident on every text alike carries a level
    shared by all of its points, which its own points measure. Like RMIA's population, this uses that the
    challenge points are each model's members at about the same rate, as the shadows' are."""
    top = f.max(-1, keepdims=True)
    return top - np.median(top, axis=1, keepdims=True)


def model_direction(f: np.ndarray) -> np.ndarray:
    """[N, C]: each model's own direction of membership in class-logit space, a unit vector read without membership.

    On text outside the task, membership moves each model's class logits in a direction of its own (on SST-2 from
    scratch the favoured class's calibrated member effect ranges from -1.9 to +1.5 sd by model, mean 0), which a
    statistic shared across models averages away. Members are also more confident, so the direction is the one
    whose class logits covary, over the model's challenge points, with its `relative_confidence` (each point's
    mean over the A queries, less every model's mean on that point, so that the point's difficulty does not enter).
    Like `relative_confidence`, it uses that the challenge points are each model's members at about the same rate."""
    x = f.mean(2)
    confidence = relative_confidence(f).mean(2)[..., 0]
    x, confidence = x - x.mean(0, keepdims=True), confidence - confidence.mean(0, keepdims=True)
    x, confidence = x - x.mean(1, keepdims=True), confidence - confidence.mean(1, keepdims=True)
    direction = np.einsum("nkc,nk->nc", x, confidence)
    return direction / np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), EPS)


def _along(x: np.ndarray, direction: np.ndarray, columns: int, width: int) -> np.ndarray:
    """x [..., M, K, A, 2C' or 3C'] (`_stack`'s, C' = `width`) with two columns more: the calibrated class logits
    (the first C = `columns` z-scores) projected on each model's direction [M, C], less the model's median of it
    over its points, and the point's IN-OUT direction projected alike. Projecting after the calibration keeps
    each point's difficulty out."""
    z = np.einsum("...mkac,mc->...mka", x[..., :columns], direction)[..., None]
    d = np.einsum("...mkac,mc->...mka", x[..., width:width + columns], direction)[..., None]
    return np.concatenate([x, z - np.median(z, axis=-3, keepdims=True), d], axis=-1)


def loo_moments(f: np.ndarray, members: np.ndarray, own: np.ndarray, a: int) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out mean and shrunk std [M, K, C] of the vectors f [M, K, A, C] of the models in `members`
    [M, K], for each model m without its own vectors (`own` [M, K]: m is in `members`)."""
    w = members[:, :, None, None].astype(np.float64)
    s1, s2 = (f * w).sum((0, 2)), (f**2 * w).sum((0, 2))  # [K, C]
    own1, own2 = f.sum(2), (f**2).sum(2)  # [M, K, C]
    drop = own[..., None].astype(np.float64)
    models = members.sum(0)[None] - own  # [M, K]: models left after leaving m out
    count = np.maximum(models * a, 1)[..., None]
    mean = (s1[None] - own1 * drop) / count
    var = np.maximum((s2[None] - own2 * drop) / count - mean**2, 0)
    pooled = np.nanmean(np.where(models[..., None] > 0, var, np.nan), axis=1, keepdims=True)  # [M, 1, C]
    pooled = np.nan_to_num(pooled, nan=1.0)
    shrunk = (models[..., None] * var + PRIOR_MODELS * pooled) / (models[..., None] + PRIOR_MODELS)
    mean = np.where(models[..., None] > 0, mean, np.nan)
    return mean, np.maximum(np.sqrt(shrunk), MIN_STD)


def calibrated_features(queries: np.ndarray, labels: np.ndarray, roles: Roles, shuffle: bool,
                        rng: np.random.Generator, with_llr: bool = False,
                        with_confidence: bool = False, with_direction: bool = False,
                        with_neighbourhood: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training sets of the calibrated attacks, one per distinct set of shadows (as `training_groups`).

    Returns X [T, M, K, A, 2C] (each shadow's z-scores, then (mean_in - mean_out) / sd_out of the point: the
    direction membership moves it), y [T, M, K], and the victims' X [V, K, A, 2C], standardised by all of
    their training's shadows. `with_llr` appends each class's Gaussian log likelihood ratio, IN against OUT
    (3C features): the same statistics, with the IN side's own spread. `with_confidence` appends
    `relative_confidence` to the C class logits before all of this (C + 1 columns where C is written).
    `with_neighbourhood` appends (before the calibration, after the confidence) each (model, point)'s
    `neighbourhood_contrast` less the model's median of it over its points, the same in every query's row.
    `with_direction` appends, last, the calibrated class logits along each model's `model_direction` (`_along`).
    """
    f = class_logits(queries)  # [N, K, A, C]
    columns, direction = f.shape[-1], model_direction(f) if with_direction else None
    if with_confidence:
        f = np.concatenate([f, relative_confidence(f)], axis=-1)
    if with_neighbourhood:
        contrast = neighbourhood_contrast(f[..., :columns])
        contrast = contrast - np.median(contrast, axis=1, keepdims=True)
        f = np.concatenate([f, np.broadcast_to(contrast[:, :, None, None], f.shape[:3] + (1,))], axis=-1)
    a = f.shape[2]
    train_roles, groups = training_groups(roles)
    t, m = train_roles.shadows.shape
    lab = labels[train_roles.shadows]  # [T, M, K]
    if shuffle:
        lab = np.take_along_axis(lab, rng.random(lab.shape).argsort(axis=1), axis=1)
    width = (3 if with_llr else 2) * f.shape[-1] + 2 * with_direction
    x_train, x_victim = [], np.empty((len(roles.victims),) + f.shape[1:-1] + (width,))
    for j in range(t):
        fs, is_in = f[train_roles.shadows[j]], lab[j]
        x_train.append(_stack(fs, loo_moments(fs, is_in, is_in, a), loo_moments(fs, ~is_in, ~is_in, a), with_llr))
        if with_direction:
            x_train[-1] = _along(x_train[-1], direction[train_roles.shadows[j]], columns, f.shape[-1])
        # The victims of this training: statistics of every shadow (no one to leave out).
        none = np.zeros_like(is_in)
        v_in, v_out = loo_moments(fs, is_in, none, a), loo_moments(fs, ~is_in, none, a)
        served = roles.victims[groups[j]]
        x_served = _stack(f[served], [s[:1] for s in v_in], [s[:1] for s in v_out], with_llr)
        x_victim[groups[j]] = _along(x_served, direction[served], columns, f.shape[-1]) if with_direction else x_served
    return np.stack(x_train).astype(np.float32), lab, x_victim.astype(np.float32)


def _stack(f: np.ndarray, moments_in, moments_out, with_llr: bool) -> np.ndarray:
    """[..., K, A, 2C or 3C]: z-scores against the OUT statistics, the IN-OUT direction in the same units, and
    with `with_llr` the log likelihood ratio of IN and OUT Gaussians."""
    (mu_in, sd_in), (mu_out, sd_out) = [[s[:, :, None] for s in m] for m in (moments_in, moments_out)]
    z = np.nan_to_num((f - mu_out) / sd_out)
    d = np.broadcast_to(np.nan_to_num((mu_in - mu_out) / sd_out), z.shape)
    if not with_llr:
        return np.concatenate([z, d], axis=-1)
    llr = np.nan_to_num(log_normal(f, mu_in, sd_in) - log_normal(f, mu_out, sd_out))
    return np.concatenate([z, d, llr], axis=-1)


@register("mlp_calibrated", trains_mlp=True)
def per_point_calibrated(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                         roles: Roles) -> np.ndarray:
    """One MLP per (victim, point), as the paper's, on per-point calibrated class logits (z-scores)."""
    x, y, xv = calibrated_features(queries, labels, roles, args.shuffle_labels, np.random.default_rng([seed, 5]))
    t, m, k, a, c2 = x.shape
    c = c2 // 2
    _, groups = training_groups(roles)
    g = groups.shape[1]
    xt = x[..., :c].transpose(0, 2, 1, 3, 4).reshape(t * k, m * a, c)
    yt = np.repeat(y.transpose(0, 2, 1), a, axis=2).reshape(t * k, m * a)
    xq = xv[groups][..., :c].transpose(0, 2, 1, 3, 4).reshape(t * k, g * a, c)
    probs = fit_predict(xt, yt, xq, mlp_settings(args), seed)
    scores = np.empty((len(roles.victims), k))
    scores[groups.ravel()] = probs.reshape(t, k, g, a).mean(-1).transpose(0, 2, 1).reshape(t * g, k)
    return scores


def _shared(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int, roles: Roles,
            with_llr: bool, with_confidence: bool = False, with_direction: bool = False,
            with_neighbourhood: bool = False) -> np.ndarray:
    x, y, xv = calibrated_features(queries, labels, roles, args.shuffle_labels, np.random.default_rng([seed, 6]),
                                   with_llr, with_confidence, with_direction, with_neighbourhood)
    t, m, k, a, c2 = x.shape
    yt = np.broadcast_to(y[..., None], y.shape + (a,)).reshape(t, -1)
    settings = mlp_settings(args, batch_size=max(args.batch_size, 512))
    params = train(torch.as_tensor(x.reshape(t, m * k * a, c2)), torch.as_tensor(np.ascontiguousarray(yt)),
                   settings, torch.Generator().manual_seed(seed + 1))
    _, groups = training_groups(roles)
    g = groups.shape[1]
    probs = predict_in(params, torch.as_tensor(xv[groups].reshape(t, g * k * a, c2))).numpy()
    scores = np.empty((len(roles.victims), k))
    scores[groups.ravel()] = probs.reshape(t * g, k, a).mean(-1)
    return scores


@register("shared_calibrated", trains_mlp=True)
def shared_calibrated(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                      roles: Roles) -> np.ndarray:
    """One MLP per victim shared by all points, on calibrated class logits and the point's IN-OUT direction."""
    return _shared(queries, labels, args, seed, roles, with_llr=False)


@register("shared_combined", trains_mlp=True)
def shared_combined(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                    roles: Roles) -> np.ndarray:
    """`shared_calibrated` reading, besides, each class's per-point likelihood ratio of IN and OUT Gaussians
    (leave-one-out for the shadows, shrunk variances): the metaclassifier and the likelihood ratio in one."""
    return _shared(queries, labels, args, seed, roles, with_llr=True)


@register("shared_confidence", trains_mlp=True)
def shared_confidence(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                      roles: Roles) -> np.ndarray:
    """`shared_calibrated` reading, besides, each query's confidence relative to the model's own level
    (`relative_confidence`), standardised per point: for victims whose class on a text varies from model to
    model and whose membership shows in how confident they are."""
    return _shared(queries, labels, args, seed, roles, with_llr=False, with_confidence=True)


@register("shared_direction", trains_mlp=True)
def shared_direction(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                     roles: Roles) -> np.ndarray:
    """`shared_confidence` reading, besides, each query's class logits along the model's own direction of
    membership (`model_direction`), after their calibration: for victims whose members move towards a class that
    differs from model to model."""
    return _shared(queries, labels, args, seed, roles, with_llr=False, with_confidence=True, with_direction=True)


@register("shared_neighbourhood", trains_mlp=True, reads_original=True)
def shared_neighbourhood(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                         roles: Roles) -> np.ndarray:
    """`shared_confidence` reading, besides, how much more confident the model is on the exact text than on its
    neighbours, the other queries (`neighbourhood_contrast`, less the model's median), standardised per point: for
    victims whose memorisation is of the exact text. Query 0 must be the unaugmented text."""
    return _shared(queries, labels, args, seed, roles, with_llr=False, with_confidence=True,
                   with_neighbourhood=True)


def shrunk_gaussian(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [K, A] and std [K, A] of x [N, K, A] under mask [N, K], each point's variance shrunk towards the
    mean over points (a prior worth `PRIOR_MODELS` models): 16-32 shadows give 8-16 per side."""
    mean = masked_mean(x, mask)
    dof = np.maximum(mask.sum(0) - 1, 0)[:, None].astype(np.float64)  # [K, 1]
    var = np.nansum((x - mean[None]) ** 2 * mask[..., None], 0) / np.maximum(dof, 1)
    pooled = np.nanmean(np.where(dof > 0, var, np.nan), axis=0, keepdims=True)  # [1, A]
    shrunk = (dof * var + PRIOR_MODELS * np.nan_to_num(pooled, nan=1.0)) / (dof + PRIOR_MODELS)
    return mean, np.maximum(np.sqrt(shrunk), MIN_STD)


@register("lira_shrunk", family="shadow")
def lira_shrunk(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                roles: Roles) -> np.ndarray:
    """Online LiRA over the A queries on the victim's predicted class's logit computed without 1 - p (it keeps
    its precision on confident outputs), IN and OUT Gaussians per (point, query) with shrunk variances; the
    log ratios are averaged over the queries."""
    f, classes = class_logits(queries), predicted_class(queries)
    scores = np.empty((len(roles.victims), queries.shape[1]))
    for i, v in enumerate(roles.victims):
        x = np.take_along_axis(f, np.broadcast_to(classes[v][None, :, None, None], f.shape[:3] + (1,)), -1)[..., 0]
        is_in, is_out = roles.masks(labels, i)
        (mu_in, sd_in), (mu_out, sd_out) = shrunk_gaussian(x, is_in), shrunk_gaussian(x, is_out)
        llr = log_normal(x[v], mu_in, sd_in) - log_normal(x[v], mu_out, sd_out)
        scores[i] = np.nan_to_num(llr, nan=0.0).mean(-1)
    return scores
