"""Membership metrics: ROC AUC, TPR at low FPR, balanced accuracy, bootstrap intervals."""

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

FPR_TARGETS = (0.001, 0.01, 0.1)


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr_target: float) -> float:
    """Highest TPR at a threshold whose FPR is at most `fpr_target` (the LiRA convention)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= fpr_target].max())


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best (TPR + TNR) / 2 over thresholds."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.max((tpr + 1 - fpr) / 2))


def membership_metrics(labels: np.ndarray, scores: np.ndarray, bootstrap: int = 0, seed: int = 0) -> dict:
    """Metrics of pooled scores; with `bootstrap` > 0, 95% percentile intervals over resampled records."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.all() or not labels.any():
        raise ValueError(f"labels: all {len(labels)} records are on one side; expected IN and OUT records")

    def compute(lab: np.ndarray, sc: np.ndarray) -> dict:
        out = {"auc": float(roc_auc_score(lab, sc)), "balanced_accuracy": balanced_accuracy(lab, sc)}
        for target in FPR_TARGETS:
            out[f"tpr@{target:g}"] = tpr_at_fpr(lab, sc, target)
        return out

    result = compute(labels, scores)
    result.update(num_records=int(len(labels)), num_members=int(labels.sum()))
    if bootstrap:
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(bootstrap):
            idx = rng.integers(0, len(labels), len(labels))
            if labels[idx].all() or not labels[idx].any():
                continue
            samples.append(compute(labels[idx], scores[idx]))
        for key in samples[0]:
            values = np.array([s[key] for s in samples])
            result[f"{key}_ci95"] = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
    return result
