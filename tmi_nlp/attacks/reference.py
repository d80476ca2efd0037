"""Slow, obvious reference of the TMI metaclassifier: one `nn.Sequential` per (victim, point).

Used by the tests (the batched code must match it) and by the benchmark (the speed-up is
measured against it). It follows DESIGN.md step 5 line by line, with `torch.nn` modules.
"""

import numpy as np
import torch
import torch.nn.functional as F

from tmi_nlp.attacks.batched_mlp import MLPSettings
from tmi_nlp.attacks.features import tmi_features


def train_one(x: np.ndarray, y: np.ndarray, settings: MLPSettings, gen: torch.Generator,
              init: list[torch.Tensor] | None = None) -> torch.nn.Sequential:
    """Train one MLP on x [n, d], y [n] bool; `init` = (W1 [d,h], b1, W2 [h,2], b2) if given."""
    d = x.shape[1]
    model = torch.nn.Sequential(torch.nn.Linear(d, settings.hidden_size), torch.nn.ReLU(),
                                torch.nn.Dropout(settings.dropout), torch.nn.Linear(settings.hidden_size, 2))
    if init is not None:
        with torch.no_grad():
            model[0].weight.copy_(init[0].T)
            model[0].bias.copy_(init[1])
            model[3].weight.copy_(init[2].T)
            model[3].bias.copy_(init[3])
    xt, yt = torch.as_tensor(x), torch.as_tensor(y).long()
    n_in = float(yt.sum())
    n = len(yt)
    weight = (torch.tensor([n / (2 * max(n - n_in, 1)), n / (2 * max(n_in, 1))])
              if settings.class_balanced else None)
    opt = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    model.train()
    for _ in range(settings.epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, settings.batch_size):
            idx = perm[start:start + settings.batch_size]
            loss = F.cross_entropy(model(xt[idx]), yt[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def per_point_loop(queries: np.ndarray, labels: np.ndarray, settings: MLPSettings, seed: int) -> np.ndarray:
    """TMI scores [N, K], one victim and one point at a time."""
    n, k, a, c = queries.shape
    feats = tmi_features(queries)
    gen = torch.Generator().manual_seed(seed)
    scores = np.empty((n, k))
    for v in range(n):
        shadows = [s for s in range(n) if s != v]
        for j in range(k):
            x = feats[shadows, j].reshape(-1, c)
            y = np.repeat(labels[shadows, j], a)
            model = train_one(x, y, settings, gen)
            with torch.no_grad():
                scores[v, j] = torch.softmax(model(torch.as_tensor(feats[v, j])), -1)[:, 1].mean().item()
    return scores
