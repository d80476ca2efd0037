"""TMI metaclassifiers: per (victim, point) classifiers, and one shared across points."""

import dataclasses
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from tmi_nlp.attacks import register
from tmi_nlp.attacks.batched_mlp import MLPSettings, fit_predict, predict_in, train
from tmi_nlp.attacks.features import Roles, shadow_training_sets, tmi_features
from tmi_nlp.config import AttackArguments


def mlp_settings(args: AttackArguments, batch_size: int | None = None) -> MLPSettings:
    return MLPSettings(hidden_size=args.hidden_size, epochs=args.epochs, learning_rate=args.learning_rate,
                       weight_decay=args.weight_decay, dropout=args.dropout,
                       batch_size=batch_size or args.batch_size, class_balanced=args.class_balanced,
                       backend=args.backend)


def training_groups(roles: Roles) -> tuple[Roles, np.ndarray]:
    """The roles to train on, and int [T, G]: the victims (indices into roles.victims) each training serves.

    With common shadows one training serves every victim (T = 1, G = V); otherwise each victim
    has its own (T = V, G = 1).
    """
    if roles.common_shadows:
        return roles.first(), np.arange(len(roles.victims))[None]
    return roles, np.arange(len(roles.victims))[:, None]


# The official code's metaclassifier (johnmath/tmi-pets24, utils/models.py and utils/transfermi.py), exactly:
# C -> 64 -> 2 with ReLU and dropout 0.5, plain cross-entropy, Adam 5e-3 with weight decay 5e-4, StepLR(7, 0.9),
# 20 epochs, batch 64; a victim's scores then min-max scaled over its points. docs/experiments.md lists how `mlp`
# departs from it, with the measured effect of each departure.
PAPER_MLP = MLPSettings(hidden_size=64, epochs=20, learning_rate=5e-3, weight_decay=5e-4, dropout=0.5, batch_size=64,
                        class_balanced=False, lr_step_epochs=7, lr_gamma=0.9)


def per_point_scores(queries: np.ndarray, labels: np.ndarray, settings: MLPSettings, seed: int, roles: Roles,
                     shuffle: bool) -> np.ndarray:
    """[V, K]: one MLP per (victim, point) on the phi features, all trained in one batched run; a victim's
    score is its mean P(IN) over its A queries. With common shadows one MLP per point scores every victim."""
    feats = tmi_features(queries)
    _, k, a, c = feats.shape
    train_roles, groups = training_groups(roles)
    t, g = groups.shape
    x, y = shadow_training_sets(feats, labels, shuffle, np.random.default_rng([seed, 5]), train_roles)
    # Training t scores its victims' A vectors per point: [T, G, K, A, C] -> [T*K, G*A, C].
    xv = feats[roles.victims[groups]].transpose(0, 2, 1, 3, 4).reshape(t * k, g * a, c)
    probs = fit_predict(x.reshape(t * k, -1, c), y.reshape(t * k, -1), xv, settings, seed)
    scores = np.empty((len(roles.victims), k))
    scores[groups.ravel()] = probs.reshape(t, k, g, a).mean(-1).transpose(0, 2, 1).reshape(t * g, k)
    return scores


@register("mlp", trains_mlp=True)
def per_point_mlp(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                  roles: Roles) -> np.ndarray:
    """TMI's per-point MLP with the `attack.*` settings: the paper's features and network, by default a
    class-balanced loss, a constant rate and unscaled scores (`mlp_paper` is the official recipe)."""
    return per_point_scores(queries, labels, mlp_settings(args), seed, roles, args.shuffle_labels)


@register("mlp_paper", trains_mlp=True)
def paper_mlp(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
              roles: Roles) -> np.ndarray:
    """The official code's TMI metaclassifier exactly (PAPER_MLP; only attack.backend and shuffle_labels apply),
    its scores min-max scaled per victim over the points, as the official code does before pooling victims."""
    settings = dataclasses.replace(PAPER_MLP, backend=args.backend)
    return min_max_per_victim(per_point_scores(queries, labels, settings, seed, roles, args.shuffle_labels))


def min_max_per_victim(scores: np.ndarray) -> np.ndarray:
    """[V, K] scaled to [0, 1] per victim (row), as the official code does before pooling victims."""
    low, high = scores.min(1, keepdims=True), scores.max(1, keepdims=True)
    return (scores - low) / np.where(high > low, high - low, 1.0)


def _sklearn_model(name: str, args: AttackArguments, seed: int):
    balanced = "balanced" if args.class_balanced else None
    if name == "logistic":
        return LogisticRegression(class_weight=balanced, max_iter=200)
    if name == "svm":
        return SVC(class_weight=balanced, random_state=seed)
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=5)
    return MLPClassifier(hidden_layer_sizes=(args.hidden_size,), alpha=args.weight_decay,
                         learning_rate_init=args.learning_rate, max_iter=args.epochs, random_state=seed)


def _member_probability(model, x: np.ndarray) -> np.ndarray:
    """P(member) of each query: every per-point attack scores on one scale, [0, 1]. The SVM has no probabilities
    without a cross-validated Platt fit (too few shadows per point for one): the logistic of its margin."""
    if isinstance(model, SVC):
        return 1 / (1 + np.exp(-model.decision_function(x)))
    return model.predict_proba(x)[:, list(model.classes_).index(True)]


def _per_point_sklearn(name: str):
    def attack(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
               roles: Roles) -> np.ndarray:
        feats = tmi_features(queries)
        k, a = feats.shape[1:3]
        train_roles, groups = training_groups(roles)
        x, y = shadow_training_sets(feats, labels, args.shuffle_labels, np.random.default_rng([seed, 5]), train_roles)
        scores = np.empty((len(roles.victims), k))
        # One BLAS thread: thousands of tiny fits oversubscribe the cores otherwise (10x slower measured).
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # sklearn's MLP warns at its epoch cap, by design
            for t, group in enumerate(groups):
                for j in range(k):
                    if y[t, j].min() == y[t, j].max():
                        # Every shadow on one side: only the prior is known, smoothed (Laplace) so that it is a
                        # probability on the scale of the fitted points', not a certainty.
                        shadows = len(y[t, j]) // a  # y holds each shadow's label once per query
                        scores[group, j] = (y[t, j].sum() // a + 1) / (shadows + 2)
                        continue
                    model = _sklearn_model(name, args, seed).fit(x[t, j], y[t, j])
                    for i in group:
                        scores[i, j] = _member_probability(model, feats[roles.victims[i], j]).mean()
        return scores

    attack.__doc__ = f"Per (victim, point) scikit-learn {name} metaclassifier on TMI features."
    return attack


register("logistic")(_per_point_sklearn("logistic"))
register("knn")(_per_point_sklearn("knn"))
register("svm")(_per_point_sklearn("svm"))
register("sklearn_mlp")(_per_point_sklearn("sklearn_mlp"))


def centred_features(feats: np.ndarray, labels: np.ndarray, roles: Roles, shuffle: bool,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features for one classifier shared across points, a training set per distinct set of shadows.

    For victim i and point k, with the IN and OUT means of its shadows' vectors, a vector x
    becomes [x - (mu_in + mu_out)/2, mu_in - mu_out]: centred on the point's midpoint, next to
    the direction in which membership moves it. A shadow's own vector is left out of the means
    it is centred with (otherwise it is pulled towards its own class in training, which it will
    not be for the victim). Returns X [T, M*K*A, 2C], y [T, M*K*A] (T trainings, as in
    `training_groups`) and victim X [V, K*A, 2C], each victim centred by its training's means.
    """
    _, k, a, c = feats.shape
    train_roles, groups = training_groups(roles)
    t, m = train_roles.shadows.shape
    means = feats.mean(axis=2)  # [N, K, C]: each model's mean vector per point
    lab = labels[train_roles.shadows]  # [T, M, K]
    if shuffle:
        lab = np.take_along_axis(lab, rng.random(lab.shape).argsort(axis=1), axis=1)
    sm = means[train_roles.shadows]  # [T, M, K, C]
    w_in = lab[..., None].astype(np.float32)
    sum_in = (sm * w_in).sum(1, keepdims=True)  # [T, 1, K, C]
    sum_out = (sm * (1 - w_in)).sum(1, keepdims=True)
    n_in = w_in.sum(1, keepdims=True)
    n_out = (1 - w_in).sum(1, keepdims=True)
    # Leave-one-out means for each shadow's own training vectors.
    loo_in = (sum_in - sm * w_in) / np.maximum(n_in - w_in, 1)
    loo_out = (sum_out - sm * (1 - w_in)) / np.maximum(n_out - (1 - w_in), 1)
    mid = (loo_in + loo_out) / 2  # [T, M, K, C]
    diff = loo_in - loo_out
    sx = feats[train_roles.shadows] - mid[:, :, :, None]  # [T, M, K, A, C]
    x_train = np.concatenate([sx, np.broadcast_to(diff[:, :, :, None], sx.shape)], axis=-1)
    y_train = np.broadcast_to(lab[..., None], lab.shape + (a,))
    v_in, v_out = sum_in[:, 0] / np.maximum(n_in[:, 0], 1), sum_out[:, 0] / np.maximum(n_out[:, 0], 1)
    training_of = np.empty(len(roles.victims), dtype=np.int64)  # victim i -> the training that serves it
    training_of[groups] = np.arange(t)[:, None]
    vx = feats[roles.victims] - ((v_in + v_out) / 2)[training_of][:, :, None]  # [V, K, A, C]
    x_victim = np.concatenate([vx, np.broadcast_to((v_in - v_out)[training_of][:, :, None], vx.shape)], axis=-1)
    return (x_train.reshape(t, m * k * a, 2 * c).astype(np.float32), np.array(y_train.reshape(t, -1)),
            x_victim.reshape(len(roles.victims), k * a, 2 * c).astype(np.float32))


@register("shared_centred", trains_mlp=True)
def shared_centred(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                   roles: Roles) -> np.ndarray:
    """One MLP per victim shared by all points, on per-point centred features (beyond the paper).

    With common shadows (separate roles) one MLP, trained once, scores every victim.
    """
    feats = tmi_features(queries)
    k, a = feats.shape[1:3]
    x, y, xv = centred_features(feats, labels, roles, args.shuffle_labels, np.random.default_rng([seed, 6]))
    # Thousands of examples per victim: larger minibatches keep the step count near the per-point MLP's.
    settings = mlp_settings(args, batch_size=max(args.batch_size, 512))
    params = train(torch.as_tensor(x), torch.as_tensor(y), settings, torch.Generator().manual_seed(seed + 1))
    _, groups = training_groups(roles)
    t, g = groups.shape
    probs = predict_in(params, torch.as_tensor(xv[groups].reshape(t, g * k * a, -1))).numpy()
    scores = np.empty((len(roles.victims), k))
    scores[groups.ravel()] = probs.reshape(t * g, k, a).mean(-1)
    return scores
