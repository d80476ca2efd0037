"""TMI metaclassifiers: per (victim, point) classifiers, and one shared across points."""

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from tmi_nlp.attacks import register
from tmi_nlp.attacks.batched_mlp import MLPSettings, fit_score, predict_in, train
from tmi_nlp.attacks.features import loo_training_sets, shadow_index, tmi_features
from tmi_nlp.config import AttackArguments


def mlp_settings(args: AttackArguments, batch_size: int | None = None) -> MLPSettings:
    return MLPSettings(hidden_size=args.hidden_size, epochs=args.epochs, learning_rate=args.learning_rate,
                       weight_decay=args.weight_decay, dropout=args.dropout,
                       batch_size=batch_size or args.batch_size, class_balanced=args.class_balanced)


@register("mlp")
def per_point_mlp(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int) -> np.ndarray:
    """The paper's TMI: one MLP per (victim, point), all trained in one batched run."""
    n, k, a, c = queries.shape
    feats = tmi_features(queries)
    x, y = loo_training_sets(feats, labels, args.shuffle_labels, np.random.default_rng([seed, 5]))
    scores = fit_score(x.reshape(n * k, -1, c), y.reshape(n * k, -1), feats.reshape(n * k, a, c),
                       mlp_settings(args), seed)
    return scores.reshape(n, k)


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


def _per_point_sklearn(name: str):
    def attack(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int) -> np.ndarray:
        n, k, a, c = queries.shape
        feats = tmi_features(queries)
        x, y = loo_training_sets(feats, labels, args.shuffle_labels, np.random.default_rng([seed, 5]))
        scores = np.empty((n, k))
        for v in range(n):
            for j in range(k):
                if y[v, j].min() == y[v, j].max():  # every shadow on one side: only the prior is known
                    scores[v, j] = float(y[v, j, 0])
                    continue
                with warnings.catch_warnings():  # sklearn's MLP warns at its epoch cap, by design here
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model = _sklearn_model(name, args, seed).fit(x[v, j], y[v, j])
                if hasattr(model, "decision_function"):
                    scores[v, j] = model.decision_function(feats[v, j]).mean()
                else:
                    scores[v, j] = model.predict_proba(feats[v, j])[:, 1].mean()
        return scores

    attack.__doc__ = f"Per (victim, point) scikit-learn {name} metaclassifier on TMI features."
    return attack


for _name in ("logistic", "knn", "svm", "sklearn_mlp"):
    register(_name)(_per_point_sklearn(_name))


def centred_features(feats: np.ndarray, labels: np.ndarray, shuffle: bool,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-victim features for one classifier shared across points.

    For victim v and point k, with the IN and OUT means of the shadows' vectors, a vector x
    becomes [x - (mu_in + mu_out)/2, mu_in - mu_out]: centred on the point's midpoint, next to
    the direction in which membership moves it. A shadow's own vector is left out of the means
    it is centred with (otherwise it is pulled towards its own class in training, which it will
    not be for the victim). Returns X [N, (N-1)*K*A, 2C], y [N, (N-1)*K*A], victim X [N, K*A, 2C].
    """
    n, k, a, c = feats.shape
    shadows = shadow_index(n)
    means = feats.mean(axis=2)  # [N, K, C]: each model's mean vector per point
    lab = labels[shadows]  # [N, N-1, K]
    if shuffle:
        lab = np.take_along_axis(lab, rng.random(lab.shape).argsort(axis=1), axis=1)
    sm = means[shadows]  # [N, N-1, K, C]
    w_in = lab[..., None].astype(np.float32)
    sum_in = (sm * w_in).sum(1, keepdims=True)  # [N, 1, K, C]
    sum_out = (sm * (1 - w_in)).sum(1, keepdims=True)
    n_in = w_in.sum(1, keepdims=True)
    n_out = (1 - w_in).sum(1, keepdims=True)
    # Leave-one-out means for each shadow's own training vectors.
    loo_in = (sum_in - sm * w_in) / np.maximum(n_in - w_in, 1)
    loo_out = (sum_out - sm * (1 - w_in)) / np.maximum(n_out - (1 - w_in), 1)
    mid = (loo_in + loo_out) / 2  # [N, N-1, K, C]
    diff = loo_in - loo_out
    sx = feats[shadows] - mid[:, :, :, None]  # [N, N-1, K, A, C]
    x_train = np.concatenate([sx, np.broadcast_to(diff[:, :, :, None], sx.shape)], axis=-1)
    y_train = np.broadcast_to(lab[..., None], lab.shape + (a,))
    v_in, v_out = sum_in[:, 0] / np.maximum(n_in[:, 0], 1), sum_out[:, 0] / np.maximum(n_out[:, 0], 1)
    vx = feats - ((v_in + v_out) / 2)[:, :, None]  # [N, K, A, C]
    x_victim = np.concatenate([vx, np.broadcast_to((v_in - v_out)[:, :, None], vx.shape)], axis=-1)
    return (x_train.reshape(n, -1, 2 * c).astype(np.float32), np.array(y_train.reshape(n, -1)),
            x_victim.reshape(n, k * a, 2 * c).astype(np.float32))


@register("shared_centred")
def shared_centred(queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int) -> np.ndarray:
    """One MLP per victim shared by all points, on per-point centred features (beyond the paper)."""
    n, k, a, _ = queries.shape
    x, y, xv = centred_features(tmi_features(queries), labels, args.shuffle_labels,
                                np.random.default_rng([seed, 6]))
    # Thousands of examples per victim: larger minibatches keep the step count near the per-point MLP's.
    settings = mlp_settings(args, batch_size=max(args.batch_size, 512))
    params = train(torch.as_tensor(x), torch.as_tensor(y), settings, torch.Generator().manual_seed(seed + 1))
    return predict_in(params, torch.as_tensor(xv)).numpy().reshape(n, k, a).mean(-1)
