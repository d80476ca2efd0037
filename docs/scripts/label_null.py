"""Is an AUC below 0.5 chance? Each attack on a run's stored outputs with random membership labels (docs/RESULTS.md).

    python docs/scripts/label_null.py RUN [--attacks shared_confidence,shared_centred] [--draws 20]

The outputs are the run's; the labels are drawn independently (p = 1/2 per model and point), as the plan draws the
true ones, so each draw's AUC is what the attack reads from outputs that carry no membership at all, with every
correlation of the real outputs (points, models, queries) kept. Prints the AUC with the true labels next to the
random draws' mean, spread and range, and the share of draws at or below it; then the same attack's mean AUC within a
point (the models that trained on the text against those that did not, averaged over the points): below 0.5 with
random labels too, where it can only come from how the attack is trained (leave-one-out), not from membership.
"""

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from tmi_nlp.attacks import run_attack
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir


def within_point_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean over the points that have members and non-members of the AUC across the models at that point."""
    mixed = [k for k in range(labels.shape[1]) if 0 < labels[:, k].sum() < len(labels)]
    return float(np.mean([roc_auc_score(labels[:, k], scores[:, k]) for k in mixed]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--attacks", default="shared_confidence,shared_centred")
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()
    run = RunDir(args.run)
    recipe = run.recipe()
    queries, labels = np.asarray(run.stacked(QUERIES, recipe.run.num_models)), run.load_plan().labels()
    for name in args.attacks.split(","):
        scores = run_attack(name, queries, labels, recipe.attack, 0)
        real, real_within = membership_metrics(labels, scores)["auc"], within_point_auc(labels, scores)
        null, null_within = [], []
        for draw in range(args.draws):
            fake = np.random.default_rng([7, draw]).random(labels.shape) < 0.5
            scores = run_attack(name, queries, fake, recipe.attack, 0)
            null.append(membership_metrics(fake, scores)["auc"])
            null_within.append(within_point_auc(fake, scores))
        null = np.array(null)
        print(f"{name}: true labels {real:.3f}; random labels mean {null.mean():.3f}, sd {null.std(ddof=1):.3f}, "
              f"range [{null.min():.3f}, {null.max():.3f}]; share at or below the true {np.mean(null <= real):.2f}; "
              f"within a point {real_within:.3f} (random labels {np.mean(null_within):.3f})", flush=True)


if __name__ == "__main__":
    main()
