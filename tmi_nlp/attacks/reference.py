"""Slow, obvious reference of the TMI metaclassifier: one `nn.Sequential` per (victim, point).

Used by the tests (the batched code must match it) and by the benchmark (the speed-up is
measured against it). It follows the recipe step by step (phi, L2 clip at 1, C->64->2 MLP with ReLU and
dropout 0.5, class-weighted cross entropy, Adam 5e-3, 20 epochs, batch 64; score = mean P(IN) over the
victim's A queries), with `torch.nn` modules.
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
    schedule = torch.optim.lr_scheduler.StepLR(opt, settings.lr_step_epochs, settings.lr_gamma) \
        if settings.lr_step_epochs else None
    model.train()
    for _ in range(settings.epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, settings.batch_size):
            idx = perm[start:start + settings.batch_size]
            loss = F.cross_entropy(model(xt[idx]), yt[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if schedule is not None:
            schedule.step()
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


# Per-example loops of the baselines (attacks/baselines.py), written from their definitions with
# scipy.stats and plain Python lists; the vectorised code must agree with them.

def _majority(probs: np.ndarray) -> int:
    votes = [int(np.argmax(p)) for p in probs]
    return max(range(probs.shape[-1]), key=lambda c: (votes.count(c), -c))


def _phi(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return float(np.log(p) - np.log1p(-p))


def lira_loop(queries: np.ndarray, labels: np.ndarray, online: bool, global_std: bool) -> np.ndarray:
    from scipy.stats import norm

    n, k, a, _ = queries.shape
    scores = np.zeros((n, k))
    for v in range(n):
        classes = [_majority(queries[v, j]) for j in range(k)]
        shadows = [m for m in range(n) if m != v]
        x = {(m, j, q): _phi(queries[m, j, q, classes[j]]) for m in range(n) for j in range(k) for q in range(a)}

        def fit(side: bool, x=x, shadows=shadows):
            means, residuals, stds = {}, [], {}
            for j in range(k):
                for q in range(a):
                    vals = [x[m, j, q] for m in shadows if bool(labels[m, j]) == side]
                    means[j, q] = float(np.mean(vals)) if vals else float("nan")
                    stds[j, q] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
                    residuals += [val - means[j, q] for val in vals]
            if global_std:
                pooled = float(np.sqrt(np.sum(np.square(residuals)) / max(len(residuals) - 1, 1)))
                stds = dict.fromkeys(stds, pooled)
            return means, {key: max(s, 1e-3) for key, s in stds.items()}

        mu_out, sd_out = fit(False)
        mu_in, sd_in = fit(True)
        for j in range(k):
            terms = []
            for q in range(a):
                if online:
                    t = norm.logpdf(x[v, j, q], mu_in[j, q], sd_in[j, q]) - norm.logpdf(x[v, j, q], mu_out[j, q],
                                                                                       sd_out[j, q])
                else:
                    t = norm.logcdf((x[v, j, q] - mu_out[j, q]) / sd_out[j, q])
                terms.append(0.0 if np.isnan(t) else t)
            scores[v, j] = np.mean(terms)
    return scores


def lira_shrunk_loop(queries: np.ndarray, labels: np.ndarray, prior_models: float = 4.0) -> np.ndarray:
    """`lira_shrunk`: online LiRA on log p_c - log(sum of the others), each (point, query)'s variance shrunk
    towards the mean variance of that query over points (prior worth `prior_models` models)."""
    from scipy.stats import norm

    n, k, a, _ = queries.shape
    scores = np.zeros((n, k))

    def logit(p: np.ndarray, c: int) -> float:
        p = np.clip(p.astype(np.float64), 1e-7, 1)
        return float(np.log(p[c]) - np.log(max(p.sum() - p[c], 1e-14)))

    for v in range(n):
        classes = [_majority(queries[v, j]) for j in range(k)]
        shadows = [m for m in range(n) if m != v]
        x = {(m, j, q): logit(queries[m, j, q], classes[j]) for m in range(n) for j in range(k) for q in range(a)}

        def fit(side: bool, x=x, shadows=shadows):
            means, variances, dofs = {}, {}, {}
            for j in range(k):
                for q in range(a):
                    vals = [x[m, j, q] for m in shadows if bool(labels[m, j]) == side]
                    means[j, q] = float(np.mean(vals)) if vals else float("nan")
                    dofs[j, q] = max(len(vals) - 1, 0)
                    variances[j, q] = float(np.var(vals, ddof=1)) if len(vals) > 1 else float("nan")
            stds = {}
            for q in range(a):
                known = [variances[j, q] for j in range(k) if dofs[j, q] > 0]
                pooled = float(np.mean(known)) if known else 1.0
                for j in range(k):
                    own = variances[j, q] if dofs[j, q] > 0 else 0.0
                    shrunk = (dofs[j, q] * own + prior_models * pooled) / (dofs[j, q] + prior_models)
                    stds[j, q] = max(float(np.sqrt(shrunk)), 1e-3)
            return means, stds

        mu_out, sd_out = fit(False)
        mu_in, sd_in = fit(True)
        for j in range(k):
            terms = [norm.logpdf(x[v, j, q], mu_in[j, q], sd_in[j, q])
                     - norm.logpdf(x[v, j, q], mu_out[j, q], sd_out[j, q]) for q in range(a)]
            scores[v, j] = np.mean([0.0 if np.isnan(t) else t for t in terms])
    return scores


def rmia_loop(queries: np.ndarray, labels: np.ndarray, online: bool, a_offline: float = 0.3,
              gamma: float = 1.0) -> np.ndarray:
    n, k, _, _ = queries.shape
    scores = np.zeros((n, k))
    for v in range(n):
        classes = [_majority(queries[v, j]) for j in range(k)]
        shadows = [m for m in range(n) if m != v]
        ratios = []
        for j in range(k):
            prob = {m: float(np.mean(queries[m, j, :, classes[j]])) for m in range(n)}
            if online:
                pr_x = np.mean([prob[m] for m in shadows])
            else:
                outs = [prob[m] for m in shadows if not labels[m, j]]
                pr_x = ((1 + a_offline) * (np.mean(outs) if outs else 0.0) + (1 - a_offline)) / 2
            ratios.append(prob[v] / max(pr_x, 1e-7))
        for j in range(k):
            scores[v, j] = sum(ratios[j] > gamma * ratios[z] for z in range(k) if z != j) / max(k - 1, 1)
    return scores


def calibrated_loop(queries: np.ndarray, labels: np.ndarray, statistic: str) -> np.ndarray:
    """statistic: 'label_agreement' or 'log_max_probability', minus the OUT shadows' mean."""
    n, k, a, _ = queries.shape
    scores = np.zeros((n, k))
    for v in range(n):
        for j in range(k):
            cls = _majority(queries[v, j])

            def stat(m: int, j=j, cls=cls) -> float:
                if statistic == "label_agreement":
                    return float(np.mean([np.argmax(queries[m, j, q]) == cls for q in range(a)]))
                return float(np.mean([np.log(max(queries[m, j, q].max(), 1e-7)) for q in range(a)]))

            outs = [stat(m) for m in range(n) if m != v and not labels[m, j]]
            ref = np.mean(outs) if outs else np.mean([stat(m) for m in range(n) if m != v])
            scores[v, j] = stat(v) - ref
    return scores
