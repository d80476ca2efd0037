"""How much membership do a run's stored outputs carry? A control for the attacks' ceiling (docs/experiments.md).

    python docs/scripts/confidence_ceiling.py RUN [RUN ...]

Per run, on the stored query tensors, for two per-(model, point) statistics (mean over the A queries): the class
logit of the class all models favour (signed) and the top class logit (confidence in whichever class the model
predicts), prints the variance of the OUT models' mean across points (what difficulty calibration removes), the
OUT models' variance within a point, the variance of a level shared by a model's points, and the mean member
effect. A Gaussian shift d = effect / sd gives AUC = Phi(d / sqrt(2)), printed with the within-point variance
and with it less the model level (what an attack that knows each model's level could reach). Then the AUC of
a logistic regression trained on the shadows (leave-one-out over victims, pooled) on every query's top and signed
logits, the model's median confidence over the points and the point's mean confidence over the models: a generic
reading of the same tensors, to compare the attacks with.
"""

import argparse
from statistics import NormalDist

import numpy as np
from sklearn.linear_model import LogisticRegression

from tmi_nlp.attacks.features import class_logits
from tmi_nlp.data.plan import Plan
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir


def decomposition(stat: np.ndarray, labels: np.ndarray) -> str:
    """stat [N, K]: variances and the member effect, with the AUC a Gaussian shift of that size gives."""
    out = np.where(~labels, stat, np.nan)
    point_mean = np.nanmean(out, 0)
    within = float(np.nanmean(np.nanvar(out, 0, ddof=1)))
    level = float(np.var(np.nanmean(out - point_mean, 1), ddof=1))
    effect = float(np.nanmean(np.nanmean(np.where(labels, stat, np.nan), 0) - point_mean))
    auc, levelled = (NormalDist().cdf(abs(effect) / np.sqrt(max(var, 1e-12)) / np.sqrt(2))
                     for var in (within, within - level))
    return (f"across points {np.var(point_mean):.3f}, within a point {within:.3f} (of it the model level "
            f"{level:.3f}), member effect {effect:+.3f}: Gaussian AUC {auc:.3f}, {levelled:.3f} less the level")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args()
    for path in args.runs:
        run = RunDir(path)
        recipe = run.recipe()
        queries = np.asarray(run.stacked(QUERIES, recipe.run.num_models))
        labels = Plan.load(run.plan).labels()
        f = class_logits(queries)  # [N, K, A, C]
        favoured = queries.mean((0, 2)).argmax(-1)
        signed = np.take_along_axis(f, np.broadcast_to(favoured[None, :, None, None], f.shape[:3] + (1,)), -1)[..., 0]
        top = f.max(-1)  # [N, K, A]
        print(f"{run.root.name}: {recipe.run.num_models} models, {recipe.run.num_points} points, "
              f"A = {queries.shape[2]}, {queries.shape[3]} classes")
        print(f"  signed logit of the favoured class: {decomposition(signed.mean(-1), labels)}")
        print(f"  top class logit (confidence):       {decomposition(top.mean(-1), labels)}")
        n, k, a = top.shape
        level = np.median(top.mean(-1), axis=1, keepdims=True)
        x = np.concatenate([top, signed, np.broadcast_to(level[..., None], (n, k, 1)),
                            np.broadcast_to(top.mean((0, 2))[None, :, None], (n, k, 1))], axis=-1)
        scores = np.empty((n, k))
        for victim in range(n):
            shadows = np.arange(n) != victim
            model = LogisticRegression(max_iter=1000).fit(x[shadows].reshape(-1, x.shape[-1]), labels[shadows].ravel())
            scores[victim] = model.predict_proba(x[victim])[:, 1]
        m = membership_metrics(labels, scores)
        print(f"  logistic regression on every query's top and signed logits, model level, point mean: AUC "
              f"{m['auc']:.3f}, TPR {100 * m['tpr@0.001']:.1f}% at 0.1% FPR, {100 * m['tpr@0.01']:.1f}% at 1%")


if __name__ == "__main__":
    main()
