"""Three more readings of a confident victim's outputs, each tried against `shared_confidence` (docs/experiments.md).

    python docs/scripts/confidence_readings.py RUN

On the stored query tensors and attack scores of RUN (finished by `tmi-nlp attack`), leave-one-out over victims:

1. Each victim's stored scores normalised over its own challenge points (rank, z-score): a pooled AUC mixes victims
   whose attack outputs sit on different scales (one metaclassifier per victim). Label-free, so any attack may do it.
   With the victims that put the most members above the pooled threshold at 1% FPR, and every attack's AUC on the
   five that do so for `--tail`.
2. Model x point calibration: each model's relative confidence (top class logit, mean over the queries, less the
   model's median) z-scored per point against the OUT shadows, less the part explained by the first k point factors
   of the shadows' matrix (member effect removed with their labels): what a model's confidence on similar texts
   predicts about its confidence on this one.
3. LiRA on the relative confidence and on the class logits along `model_direction`: per point and query, IN and OUT
   Gaussians with shrunk variances (online), or the OUT z-score alone (offline), averaged over the queries.
"""

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from tmi_nlp.attacks.baselines import log_normal
from tmi_nlp.attacks.calibrated import model_direction, relative_confidence, shrunk_gaussian
from tmi_nlp.attacks.features import class_logits
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir


def figure(labels: np.ndarray, scores: np.ndarray) -> str:
    m = membership_metrics(labels, scores)
    return f"{m['auc']:.3f} ({100 * m['tpr@0.001']:.1f}% / {100 * m['tpr@0.01']:.1f}%)"


def low_rank_residual(stat: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """stat [N, K]: each victim's per-point z-score less its projection on the shadows' first k point factors."""
    n = len(stat)
    scores = np.empty_like(stat)
    for victim in range(n):
        shadows = np.arange(n) != victim
        out = np.where(~labels[shadows], stat[shadows], np.nan)
        z = (stat - np.nanmean(out, 0)) / (np.nanstd(out, 0) + 1e-6)
        zs = z[shadows]
        zs = zs - np.nanmean(np.where(labels[shadows], zs, np.nan)) * labels[shadows]
        zs = zs - np.median(zs, 1, keepdims=True)
        zv = z[victim] - np.median(z[victim])
        if k:
            factors = np.linalg.svd(zs - zs.mean(0), full_matrices=False)[2][:k].T
            zv = zv - factors @ (factors.T @ zv)
        scores[victim] = zv
    return scores


def lira(x: np.ndarray, labels: np.ndarray, online: bool) -> np.ndarray:
    """x [N, K, A]: each victim's log likelihood ratio (online) or OUT z-score (offline), mean over the queries."""
    n = len(x)
    scores = np.empty(labels.shape)
    for victim in range(n):
        others = np.arange(n)[:, None] != victim
        mean_out, sd_out = shrunk_gaussian(x, others & ~labels)
        if online:
            mean_in, sd_in = shrunk_gaussian(x, others & labels)
            scores[victim] = (log_normal(x[victim], mean_in, sd_in) - log_normal(x[victim], mean_out, sd_out)).mean(-1)
        else:
            scores[victim] = ((x[victim] - mean_out) / sd_out).mean(-1)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--attacks", default="shared_confidence,shared_direction,entropy,stability,"
                        "lira_offline_global_var")
    parser.add_argument("--tail", default="stability", help="the attack whose 1% FPR tail victims are compared")
    args = parser.parse_args()
    run = RunDir(args.run)
    labels = run.load_plan().labels().astype(bool)
    print("AUC (TPR at 0.1% / 1% FPR)\n1. stored scores normalised per victim: raw | rank | z-score")
    stored = {name: np.load(run.attack(name) / "scores.npy") for name in args.attacks.split(",")}
    for name, s in stored.items():
        variants = (s, s.argsort(1).argsort(1), (s - s.mean(1, keepdims=True)) / s.std(1, keepdims=True))
        print(f"   {name:24s} " + " | ".join(figure(labels, v) for v in variants))
        above = s > np.quantile(s[~labels], 0.99)
        members = (above & labels).sum(1)
        top = np.argsort(-members)[:5]
        print(f"   {'':24s} at 1% FPR: {members.sum()} members above, from victims {top.tolist()} "
              f"{members[top].tolist()} (their non-members above: {(above & ~labels).sum(1)[top].tolist()})")
    tail = np.argsort(-((stored[args.tail] > np.quantile(stored[args.tail][~labels], 0.99)) & labels).sum(1))[:5]
    print(f"   per-victim AUC on {args.tail}'s five tail victims {tail.tolist()}:")
    for name, s in stored.items():
        print(f"   {name:24s} " + ", ".join(f"{roc_auc_score(labels[v], s[v]):.3f}" for v in tail))
    f = class_logits(np.asarray(run.stacked(QUERIES, run.recipe().run.num_models)))
    confidence = relative_confidence(f)[..., 0]  # [N, K, A]
    print("2. relative confidence, per-point z-score less k point factors")
    for k in (0, 1, 2, 3, 5, 8):
        print(f"   k = {k}: {figure(labels, low_rank_residual(confidence.mean(-1), labels, k))}")
    along = np.einsum("nkac,nc->nka", f, model_direction(f))
    along = along - np.median(along, 1, keepdims=True)
    print("3. LiRA per point and query: online | offline")
    for name, x in (("relative confidence", confidence), ("along model_direction", along)):
        print(f"   {name:24s} {figure(labels, lira(x, labels, True))} | {figure(labels, lira(x, labels, False))}")


if __name__ == "__main__":
    main()
