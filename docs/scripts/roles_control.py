"""Control for the partial-knowledge table: separate roles inside one zoo against leave-one-out.

    python docs/scripts/roles_control.py runs/agnews-linear-64

Splits a 64-model run into halves (same seed, same plan) and scores each half with the other
half's 32 models as shadows, next to leave-one-out within each half. If separate roles cost
nothing by themselves, the two agree, and what the partial-knowledge rows lose comes from the
shadows being another zoo (another seed) and from what the adversary does not know.
"""

import sys

import numpy as np

from tmi_nlp.attacks import run_attack
from tmi_nlp.attacks.features import Roles
from tmi_nlp.data.plan import Plan
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir


def cells(scores: np.ndarray, labels: np.ndarray) -> str:
    m = membership_metrics(labels, scores, bootstrap=200, seed=0)
    lo, hi = m["tpr@0.001_ci95"]
    return f"{m['auc']:.3f} | {100 * m['tpr@0.001']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] | {100 * m['tpr@0.01']:.1f}%"


def main() -> None:
    folder = sys.argv[1]
    recipe, run = RunDir(folder).recipe(), RunDir(folder)
    n = recipe.run.num_models
    queries, labels = np.asarray(run.stacked(QUERIES, n)), Plan.load(run.plan).labels()
    first, second = np.arange(n // 2), np.arange(n // 2, n)
    print("| attack | victims | shadows | AUC | TPR@0.1% [95% CI] | TPR@1% |\n|---|---|---|---|---|---|")
    for name in ("mlp", "shared_centred"):
        for victims, shadows in ((first, second), (second, first)):
            order = np.r_[shadows, victims]
            scores = run_attack(name, queries[order], labels[order], recipe.attack, recipe.run.seed,
                                Roles.separate(len(shadows), len(victims)))
            span = f"{victims[0]}-{victims[-1]}"
            print(f"| {name} | {span} | {shadows[0]}-{shadows[-1]} (separate roles) | "
                  f"{cells(scores, labels[victims])} |")
            loo = run_attack(name, queries[victims], labels[victims], recipe.attack, recipe.run.seed)
            print(f"| {name} | {span} | the other {len(victims) - 1} of {span} (leave-one-out) | "
                  f"{cells(loo, labels[victims])} |")


if __name__ == "__main__":
    main()
