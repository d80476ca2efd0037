"""Many small MLP metaclassifiers trained at once: one set of weights per problem, batched matmuls.

Problem b has its own weights W1[b], b1[b], W2[b], b2[b]; the loss is the sum of the problems'
losses, so every problem gets exactly its own gradient, and Adam (elementwise) keeps its own
moments: the result equals training each problem alone with the same initialisation, the same
minibatch order and the same dropout masks (`reference.py`, checked in the tests).
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tmi_nlp.attacks.features import balanced_weights


@dataclass
class MLPSettings:
    hidden_size: int = 64
    epochs: int = 20
    learning_rate: float = 5e-3
    weight_decay: float = 5e-4
    dropout: float = 0.5
    batch_size: int = 64
    class_balanced: bool = True


def init_params(num_problems: int, d_in: int, hidden: int, gen: torch.Generator) -> list[torch.Tensor]:
    """nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for every problem."""

    def uniform(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
        bound = 1.0 / np.sqrt(fan_in)
        return ((torch.rand(shape, generator=gen) * 2 - 1) * bound).requires_grad_(True)

    return [uniform((num_problems, d_in, hidden), d_in), uniform((num_problems, hidden), d_in),
            uniform((num_problems, hidden, 2), hidden), uniform((num_problems, 2), hidden)]


def forward(params: list[torch.Tensor], x: torch.Tensor, dropout_mask: torch.Tensor | None) -> torch.Tensor:
    w1, b1, w2, b2 = params
    h = torch.relu(torch.baddbmm(b1.unsqueeze(1), x, w1))
    if dropout_mask is not None:
        h = h * dropout_mask
    return torch.baddbmm(b2.unsqueeze(1), h, w2)


def train(x: torch.Tensor, y: torch.Tensor, settings: MLPSettings, gen: torch.Generator,
          params: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Train one MLP per problem: x [B, n, d] float, y [B, n] bool. Returns the weights."""
    num_problems, n, d = x.shape
    params = params or init_params(num_problems, d, settings.hidden_size, gen)
    opt = torch.optim.Adam(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    target = y.long()
    weights = balanced_weights(y) if settings.class_balanced else torch.ones(num_problems, 2)
    example_w = torch.gather(weights, 1, target)  # [B, n]
    keep = 1.0 - settings.dropout
    for _ in range(settings.epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, settings.batch_size):
            idx = perm[start:start + settings.batch_size]
            mask = None
            if settings.dropout > 0:
                shape = (num_problems, len(idx), settings.hidden_size)
                mask = (torch.rand(shape, generator=gen) < keep).float() / keep
            logits = forward(params, x[:, idx], mask)
            ce = F.cross_entropy(logits.reshape(-1, 2), target[:, idx].reshape(-1),
                                 reduction="none").view(num_problems, -1)
            w = example_w[:, idx]
            loss = ((ce * w).sum(1) / w.sum(1)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return [p.detach() for p in params]


@torch.no_grad()
def predict_in(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """P(IN) for x [B, m, d] -> [B, m] (no dropout)."""
    return torch.softmax(forward(params, x, None), dim=-1)[..., 1]


def fit_score(x_train: np.ndarray, y_train: np.ndarray, x_victim: np.ndarray, settings: MLPSettings,
              seed: int, chunk: int = 4096) -> np.ndarray:
    """Train on x_train [B, n, d] / y_train [B, n] and return mean P(IN) over x_victim [B, m, d] -> [B]."""
    gen = torch.Generator().manual_seed(seed)
    scores = np.empty(x_train.shape[0], dtype=np.float64)
    for start in range(0, x_train.shape[0], chunk):
        sl = slice(start, start + chunk)
        params = train(torch.as_tensor(x_train[sl]), torch.as_tensor(y_train[sl]), settings, gen)
        scores[sl] = predict_in(params, torch.as_tensor(x_victim[sl])).mean(1).numpy()
    return scores
