"""Features and leave-one-out splits shared by the attacks."""

import numpy as np
import torch

EPS = 1e-7


def phi(probs: np.ndarray) -> np.ndarray:
    """Per-class logit scaling log p - log(1 - p) of softmax vectors (last axis)."""
    p = np.clip(probs.astype(np.float64), EPS, 1 - EPS)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


def l2_clip(x: np.ndarray, max_norm: float = 1.0) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x * np.minimum(1.0, max_norm / np.maximum(norm, 1e-12))).astype(np.float32)


def tmi_features(queries: np.ndarray) -> np.ndarray:
    """phi-transformed, L2-clipped query vectors, same shape as `queries` [..., C]."""
    return l2_clip(phi(queries))


def shadow_index(num_models: int) -> np.ndarray:
    """int [N, N-1]: row v lists every model but v (the shadows when v is the victim)."""
    return np.array([[s for s in range(num_models) if s != v] for v in range(num_models)])


def loo_training_sets(features: np.ndarray, labels: np.ndarray, shuffle: bool,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per (victim, point) training data from the shadows only.

    features [N, K, A, C] and labels [N, K] -> X [N, K, (N-1)*A, C], y [N, K, (N-1)*A]. The
    victim's own row of `labels` is never read for its problems. With `shuffle`, the shadows'
    labels are permuted per (victim, point): the control that must give AUC ~0.5.
    """
    n, k, a, c = features.shape
    shadows = shadow_index(n)
    x = features[shadows]  # [N, N-1, K, A, C]
    y = labels[shadows]  # [N, N-1, K]
    if shuffle:
        y = np.take_along_axis(y, rng.random(y.shape).argsort(axis=1), axis=1)
    x = x.transpose(0, 2, 1, 3, 4).reshape(n, k, (n - 1) * a, c)
    y = np.repeat(y.transpose(0, 2, 1), a, axis=2)
    return x, y


def balanced_weights(y: torch.Tensor) -> torch.Tensor:
    """Per-problem class weights n / (2 n_c) for boolean labels y [..., n] -> [..., 2]."""
    n = y.shape[-1]
    n_in = y.float().sum(-1)
    n_out = n - n_in
    return torch.stack([n / (2 * n_out.clamp_min(1)), n / (2 * n_in.clamp_min(1))], dim=-1)
