"""Membership metrics: ROC AUC, TPR at low FPR, balanced accuracy, bootstrap intervals.

Every threshold of the ROC curve is kept (`drop_intermediate=False`): sklearn's default drops
points that lie on a straight segment, and inside a run of tied scores those are thresholds an
attacker can use, so TPR at a fixed FPR would be underestimated.
"""

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

FPR_TARGETS = (0.001, 0.01, 0.1)


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr_target: float) -> float:
    """Highest TPR at a threshold whose FPR is at most `fpr_target` (the LiRA convention)."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= fpr_target].max())


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best (TPR + TNR) / 2 over thresholds."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(np.max((tpr + 1 - fpr) / 2))


def membership_metrics(labels: np.ndarray, scores: np.ndarray, bootstrap: int = 0, seed: int = 0,
                       groups: np.ndarray | None = None) -> dict:
    """Metrics of pooled scores; with `bootstrap` > 0, 95% percentile intervals.

    `groups` (one id per record, e.g. its challenge point) makes the bootstrap resample whole groups: the records
    of one point (its score under every victim) are not independent, and resampling them one by one gives
    intervals too narrow. Without `groups`, records are resampled.
    """
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
        if groups is None:
            members = [np.array([i]) for i in range(len(labels))]
        else:
            _, inverse = np.unique(np.asarray(groups).ravel(), return_inverse=True)
            order = np.argsort(inverse, kind="stable")
            members = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(bootstrap):
            idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
            if labels[idx].all() or not labels[idx].any():
                continue
            samples.append(compute(labels[idx], scores[idx]))
        for key in samples[0]:
            values = np.array([s[key] for s in samples])
            result[f"{key}_ci95"] = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
        result["bootstrap_unit"] = "records" if groups is None else "groups"
    return result
