"""Is an AUC below 0.5 chance? Each attack on a run's stored outputs with random membership labels (docs/RESULTS.md).

    python docs/scripts/label_null.py RUN [--attacks shared_confidence,shared_centred] [--draws 20] [--splits 3]

The outputs are the run's; the labels are drawn independently (p = 1/2 per model and point), as the plan draws the
true ones, so each draw's AUC is what the attack reads from outputs that carry no membership at all, with every
correlation of the real outputs (points, models, queries) kept. First, for the run: whether the member effects of
two disjoint halves of the zoo agree point by point (the correlation over points of each half's IN-less-OUT mean of
the phi-score of the class most models predict, averaged over the queries; mean over 200 random splits, with the
true labels and, for its spread, with random labels). Then per attack, three lines:

- leave-one-out (as `tmi-nlp attack` scores): the AUC with the true labels next to the random draws' mean, spread and
  range, the share of draws at or below it, and the mean of the per-victim AUCs (a model-level offset correlated
  with how many members a victim has moves the pooled AUC, not these);
- disjoint halves: the models split at random into two halves, each half's models the shadows of the other's
  victims, so that no victim's label or output reaches its own shadows (`--splits` splits, and the random-label
  null of the first split);
- within a point: the mean AUC across the models at one point (those that trained on the text against those that
  did not). With random labels it is below 0.5 under both roles, because the victims at one point are graded
  against references built from the other victims' labels there (leave-one-out: one fewer of the victim's own
  group; halves: the other half's labels), so it is a diagnostic, not a bias of the pooled figure.
"""

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from tmi_nlp.attacks import run_attack
from tmi_nlp.attacks.baselines import class_column, predicted_class
from tmi_nlp.attacks.features import Roles, phi
from tmi_nlp.config import AttackArguments
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir


def within_point_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean over the points that have members and non-members of the AUC across the models at that point."""
    mixed = [k for k in range(labels.shape[1]) if 0 < labels[:, k].sum() < len(labels)]
    return float(np.mean([roc_auc_score(labels[:, k], scores[:, k]) for k in mixed]))


def per_victim_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean([roc_auc_score(y, s) for y, s in zip(labels, scores, strict=True)]))


def halves_scores(name: str, queries: np.ndarray, labels: np.ndarray, args: AttackArguments,
                  split: int) -> np.ndarray:
    """Scores [N, K] with each random half of the models the shadows of the other half."""
    order = np.random.default_rng([11, split]).permutation(len(labels))
    first, second = order[: len(order) // 2], order[len(order) // 2:]
    scores = np.empty(labels.shape)
    for shadows, victims in ((first, second), (second, first)):
        roles = Roles(victims, np.tile(shadows, (len(victims), 1)))
        scores[victims] = run_attack(name, queries, labels, args, 0, roles)
    return scores


def halves_effect_correlation(queries: np.ndarray, labels: np.ndarray, splits: int = 200) -> float:
    """Mean over random splits of the correlation over points between the two halves' member effects."""
    classes = predicted_class(queries)
    majority = np.array([np.bincount(classes[:, k], minlength=queries.shape[-1]).argmax()
                         for k in range(queries.shape[1])])
    x = phi(class_column(queries, majority)).mean(-1)  # [N, K]

    def effect(rows: np.ndarray) -> np.ndarray:
        y, v = labels[rows], x[rows]
        return (v * y).sum(0) / np.maximum(y.sum(0), 1) - (v * ~y).sum(0) / np.maximum((~y).sum(0), 1)

    correlations = []
    for split in range(splits):
        order = np.random.default_rng([13, split]).permutation(len(labels))
        half = len(order) // 2
        correlations.append(np.corrcoef(effect(order[:half]), effect(order[half:]))[0, 1])
    return float(np.mean(correlations))


def random_labels(shape: tuple[int, int], draw: int) -> np.ndarray:
    return np.random.default_rng([7, draw]).random(shape) < 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--attacks", default="shared_confidence,shared_centred")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--splits", type=int, default=3)
    args = parser.parse_args()
    run = RunDir(args.run)
    recipe = run.recipe()
    queries, labels = np.asarray(run.stacked(QUERIES, recipe.run.num_models)), run.load_plan().labels()
    random_effect = [halves_effect_correlation(queries, random_labels(labels.shape, d), 20) for d in range(args.draws)]
    print(f"member effects of two disjoint halves, correlation over points: true labels "
          f"{halves_effect_correlation(queries, labels):+.3f}; random labels {np.mean(random_effect):+.3f} "
          f"+- {np.std(random_effect, ddof=1):.3f}", flush=True)
    for name in args.attacks.split(","):
        scores = run_attack(name, queries, labels, recipe.attack, 0)
        real, real_within = membership_metrics(labels, scores)["auc"], within_point_auc(labels, scores)
        real_victim = per_victim_auc(labels, scores)
        null, null_within = [], []
        for draw in range(args.draws):
            fake = random_labels(labels.shape, draw)
            scores = run_attack(name, queries, fake, recipe.attack, 0)
            null.append(membership_metrics(fake, scores)["auc"])
            null_within.append(within_point_auc(fake, scores))
        null = np.array(null)
        halves = [halves_scores(name, queries, labels, recipe.attack, split) for split in range(args.splits)]
        halves_null = []
        for draw in range(min(args.draws, 5)):
            fake = random_labels(labels.shape, draw)
            scores = halves_scores(name, queries, fake, recipe.attack, 0)
            halves_null.append((membership_metrics(fake, scores)["auc"], within_point_auc(fake, scores)))
        halves_null = np.array(halves_null)
        halves_auc = ", ".join(f"{membership_metrics(labels, s)['auc']:.3f}" for s in halves)
        print(f"{name}\n  leave-one-out: true labels {real:.3f} (mean per victim {real_victim:.3f}); "
              f"random labels mean {null.mean():.3f}, sd {null.std(ddof=1):.3f}, range [{null.min():.3f}, "
              f"{null.max():.3f}]; share at or below the true {np.mean(null <= real):.2f}\n"
              f"  disjoint halves: true labels {halves_auc} (mean per victim "
              f"{np.mean([per_victim_auc(labels, s) for s in halves]):.3f}); random labels mean "
              f"{halves_null[:, 0].mean():.3f}, sd {halves_null[:, 0].std(ddof=1):.3f} ({len(halves_null)} draws)\n"
              f"  within a point: leave-one-out {real_within:.3f} (random labels {np.mean(null_within):.3f}); "
              f"halves {np.mean([within_point_auc(labels, s) for s in halves]):.3f} "
              f"(random labels {halves_null[:, 1].mean():.3f})", flush=True)


if __name__ == "__main__":
    main()
