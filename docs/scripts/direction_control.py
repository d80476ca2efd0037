"""Does membership move every model's class logits the same way? The control behind `shared_direction`.

    python docs/scripts/direction_control.py RUN

On a finished run: each model's class logits (mean over the A queries), calibrated per point against the OUT models
other than itself (less their mean, over their shrunk sd, as the calibrated attacks do), and less the model's median
over its points. Per model, the member effect is the mean calibrated vector of its members less that of its non-
members (read with its labels: a control, not an attack). Printed per model: the effect's size, the cosine between
the effect and the mean effect over all models (1 where membership moves every model alike), the cosine between the
effect and `model_direction` (read without labels), and the AUC of the calibrated logits projected on each. Then how
often label-free readings of the direction fall within 90 degrees of the effect, and the pooled AUC of the
projection on the true effect (an oracle), on `model_direction`, and on the mean effect.
"""

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from tmi_nlp.attacks.calibrated import loo_moments, model_direction
from tmi_nlp.attacks.features import class_logits
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir


def calibrated(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """x [N, K, C] per point against the other models' OUT values (the calibrated attacks' leave-one-out moments,
    `loo_moments`), less each model's median over its points."""
    mean, std = loo_moments(x[:, :, None], ~labels, ~labels, 1)
    z = (x - mean) / std
    return z - np.median(z, axis=1, keepdims=True)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    args = parser.parse_args()
    run = RunDir(args.run)
    n = run.recipe().run.num_models
    labels = run.load_plan().labels()
    f = class_logits(np.asarray(run.stacked(QUERIES, n)))
    z = calibrated(f.mean(2), labels)
    f = f - f.mean(-1, keepdims=True)  # softmax ignores a shift common to all classes
    z = z - z.mean(-1, keepdims=True)
    effect = np.stack([z[i][labels[i]].mean(0) - z[i][~labels[i]].mean(0) for i in range(n)])
    estimated, mean = model_direction(f), unit(effect.mean(0))
    projections = {"true effect (oracle)": np.einsum("nkc,nc->nk", z, unit(effect)),
                   "model_direction": np.einsum("nkc,nc->nk", z, estimated),
                   "mean effect over models": np.einsum("nkc,c->nk", z, mean)}
    auc = {k: [roc_auc_score(labels[i], p[i]) for i in range(n)] for k, p in projections.items()}
    print("| model | effect size | cos(effect, mean effect) | cos(effect, model_direction) | AUC along effect | "
          "AUC along model_direction |\n|---|---|---|---|---|---|")
    for i in np.argsort(-np.linalg.norm(effect, axis=-1)):
        print(f"| {i} | {np.linalg.norm(effect[i]):.2f} | {unit(effect[i]) @ mean:+.2f} | "
              f"{unit(effect[i]) @ estimated[i]:+.2f} | {auc['true effect (oracle)'][i]:.3f} | "
              f"{auc['model_direction'][i]:.3f} |")
    # Other label-free readings of a model's direction: its median class logits over its points, and its lean
    # (mean over points) against the other models' mean on each point.
    readings = {"model_direction": estimated, "median class logits": unit(np.median(f.mean(2), axis=1)),
                "lean against the other models": unit((f.mean(2) - f.mean((0, 2))[None]).mean(1))}
    print()
    for k, d in readings.items():
        agree = np.mean(np.einsum("nc,nc->n", unit(effect), d) > 0)
        print(f"{k} within 90 degrees of the true effect: {agree:.0%} of {n} models")
    for k, p in projections.items():
        m = membership_metrics(labels, p)
        print(f"pooled AUC along {k}: {m['auc']:.3f} (TPR {100 * m['tpr@0.001']:.1f}% / {100 * m['tpr@0.01']:.1f}% "
              f"at 0.1% / 1% FPR)")


if __name__ == "__main__":
    main()
