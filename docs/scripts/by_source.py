"""Attack metrics split by where each challenge point came from, for a run whose pool mixes sources.

    python docs/scripts/by_source.py runs/agnews-linear-mixed ../shared/data/wikitext-2-raw/wiki.test.raw

A challenge point belongs to the named source when its text is one of that source's pool texts
(the run's own chunking); the rest form the other group.
"""

import dataclasses
import sys

import numpy as np

from tmi_nlp.data.loading import _source_texts
from tmi_nlp.data.plan import Plan
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import RunDir


def main() -> None:
    folder, source = sys.argv[1], sys.argv[2]
    recipe, run = RunDir(folder).recipe(), RunDir(folder)
    plan = Plan.load(run.plan)
    texts = set(_source_texts(dataclasses.replace(recipe.data, pool=source), recipe.run.seed, 0))
    in_source = np.array([plan.pool[j] in texts for j in plan.challenge])
    print(f"{in_source.sum()} of {len(in_source)} challenge points from {source}\n")
    print("| attack | points from | AUC [95% CI] | TPR@0.1% | TPR@1% |\n|---|---|---|---|---|")
    for name in ("mlp", "shared_centred", "lira_online", "mlm_loss_lira"):
        scores, labels = np.load(run.attack(name) / "scores.npy"), np.load(run.attack(name) / "labels.npy")
        for group, cols in ((source, in_source), ("the other source", ~in_source)):
            m = membership_metrics(labels[:, cols], scores[:, cols], bootstrap=200, seed=0)
            lo, hi = m["auc_ci95"]
            print(f"| {name} | {group} | {m['auc']:.3f} [{lo:.3f}, {hi:.3f}] | {100 * m['tpr@0.001']:.1f}% | "
                  f"{100 * m['tpr@0.01']:.1f}% |")


if __name__ == "__main__":
    main()
