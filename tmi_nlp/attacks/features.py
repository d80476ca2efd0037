"""Features, and who trains whose attack (`Roles`), shared by the attacks."""

from dataclasses import dataclass

import numpy as np
import torch

EPS = 1e-7
MIN_STD = 1e-3  # floor on a fitted standard deviation (one shadow on a side has none)


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


def class_logits(queries: np.ndarray) -> np.ndarray:
    """float64 [..., C]: log p_c - log(sum over c' != c of p_c'), from the probabilities (no 1 - p)."""
    p = np.clip(queries.astype(np.float64), EPS, 1)
    others = p.sum(-1, keepdims=True) - p
    # Where the others' sum underflows in 1 - p terms, the small probabilities themselves carry it.
    return np.log(p) - np.log(np.maximum(others, EPS * EPS))


def neighbourhood_contrast(f: np.ndarray) -> np.ndarray:
    """[N, K]: the logit of the class predicted on the original text (query 0) less its mean over the other A - 1
    queries, the text's neighbours (f [N, K, A, C] class logits; query 0 must be the unaugmented text).

    The neighbourhood comparison of Mattern et al. (ACL Findings 2023), with the classifier's confidence in place of
    the language model's loss: what a model memorised is the exact text, while its level and the text's difficulty
    are shared by texts a few tokens away, so the neighbours are a reference drawn from the victim itself. On
    SST-2 from scratch random-token substitution makes neighbours that lose the members' extra confidence,
    deletion neighbours that keep it (docs/experiments.md).
    """
    predicted = f[:, :, 0].argmax(-1)  # [N, K]
    index = np.broadcast_to(predicted[:, :, None, None], f.shape[:3] + (1,))
    own = np.take_along_axis(f, index, axis=-1)[..., 0]  # [N, K, A]
    return own[:, :, 0] - own[:, :, 1:].mean(-1)


def shadow_index(num_models: int) -> np.ndarray:
    """int [N, N-1]: row v lists every model but v (the shadows when v is the victim)."""
    return np.array([[s for s in range(num_models) if s != v] for v in range(num_models)], dtype=np.int64)


@dataclass(frozen=True)
class Roles:
    """Which model rows an attack scores, and whose membership labels train each one's attack.

    `victims` int [V] are the rows scored; `shadows` int [V, M] lists, for victim i, the rows whose
    labels train its attack (never victim i itself). Leave-one-out (one zoo, every model the victim
    once) and separate roles (shadows 0..S-1 attack victims S..S+V-1, whose labels reach nothing)
    are the two cases the pipeline uses.
    """

    victims: np.ndarray
    shadows: np.ndarray

    def __post_init__(self) -> None:
        if self.shadows.ndim != 2 or self.shadows.shape[0] != len(self.victims):
            raise ValueError(f"roles: shadows of shape {self.shadows.shape}; expected [{len(self.victims)}, M]")
        if (self.shadows == self.victims[:, None]).any():
            raise ValueError("roles: a victim is among its own shadows")

    @classmethod
    def leave_one_out(cls, num_models: int) -> "Roles":
        return cls(np.arange(num_models), shadow_index(num_models))

    @classmethod
    def separate(cls, num_shadows: int, num_victims: int) -> "Roles":
        """Rows 0..S-1 are shadows, rows S..S+V-1 victims, all attacked by the same shadows."""
        return cls(np.arange(num_shadows, num_shadows + num_victims),
                   np.tile(np.arange(num_shadows), (num_victims, 1)))

    @property
    def common_shadows(self) -> bool:
        """Every victim has the same shadows: one attack, trained once, scores them all."""
        return bool((self.shadows == self.shadows[:1]).all())

    def first(self) -> "Roles":
        """Only the first victim (with common shadows: the training every victim shares)."""
        return Roles(self.victims[:1], self.shadows[:1])

    def masks(self, labels: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Boolean [N, K] masks of victim i's IN and OUT shadows (every other row False)."""
        is_shadow = np.zeros(labels.shape[0], bool)
        is_shadow[self.shadows[i]] = True
        return labels & is_shadow[:, None], ~labels & is_shadow[:, None]


def shadow_training_sets(features: np.ndarray, labels: np.ndarray, shuffle: bool, rng: np.random.Generator,
                      roles: Roles | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per (victim, point) training data from the victim's shadows only.

    features [N, K, A, C] and labels [N, K] -> X [V, K, M*A, C], y [V, K, M*A] (leave-one-out by
    default: V = N, M = N-1). A victim's own row of `labels` is never read for its problems. With
    `shuffle`, the shadows' labels are permuted per (victim, point): the control that must give AUC ~0.5.
    """
    roles = roles or Roles.leave_one_out(features.shape[0])
    _, k, a, c = features.shape
    v, m = roles.shadows.shape
    x = features[roles.shadows]  # [V, M, K, A, C]
    y = labels[roles.shadows]  # [V, M, K]
    if shuffle:
        y = np.take_along_axis(y, rng.random(y.shape).argsort(axis=1), axis=1)
    x = x.transpose(0, 2, 1, 3, 4).reshape(v, k, m * a, c)
    y = np.repeat(y.transpose(0, 2, 1), a, axis=2)
    return x, y


def balanced_weights(y: torch.Tensor) -> torch.Tensor:
    """Per-problem class weights n / (2 n_c) for boolean labels y [..., n] -> [..., 2]."""
    n = y.shape[-1]
    n_in = y.float().sum(-1)
    n_out = n - n_in
    return torch.stack([n / (2 * n_out.clamp_min(1)), n / (2 * n_in.clamp_min(1))], dim=-1)
