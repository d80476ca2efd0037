"""How the project's `mlp` departs from the official TMI metaclassifier, one departure at a time (docs/attacks.md).

    python docs/scripts/mlp_departures.py RUN [RUN ...]

On each finished run's stored queries (leave-one-out, seed 0), prints the pooled AUC and TPR at 0.1% and 1%
FPR of: the official recipe (`mlp_paper`: plain cross-entropy, StepLR(7, 0.9), scores min-max scaled per
victim), the official recipe with each of the three changed to the project's choice, and the project's
`mlp` with the run's attack settings (class-balanced, constant rate, unscaled scores).
"""

import dataclasses
import sys

import numpy as np

from tmi_nlp.attacks.features import Roles
from tmi_nlp.attacks.tmi import PAPER_MLP, min_max_per_victim, per_point_scores
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir

VARIANTS = {
    "official (mlp_paper)": (PAPER_MLP, True),
    "+ class-balanced loss": (dataclasses.replace(PAPER_MLP, class_balanced=True), True),
    "+ constant rate": (dataclasses.replace(PAPER_MLP, lr_step_epochs=0), True),
    "+ unscaled scores": (PAPER_MLP, False),
    "project's mlp (all three)": (dataclasses.replace(PAPER_MLP, class_balanced=True, lr_step_epochs=0), False),
}


def main() -> None:
    print("| run | variant | AUC | TPR at 0.1% FPR | TPR at 1% FPR |\n|---|---|---|---|---|")
    for folder in sys.argv[1:]:
        run = RunDir(folder)
        n = run.recipe().run.num_models
        queries, labels = np.asarray(run.stacked(QUERIES, n)), run.load_plan().labels()
        for name, (settings, min_max) in VARIANTS.items():
            scores = per_point_scores(queries, labels, settings, 0, Roles.leave_one_out(n), shuffle=False)
            if min_max:
                scores = min_max_per_victim(scores)
            m = membership_metrics(labels, scores)
            print(f"| {run.root.name} | {name} | {m['auc']:.3f} | {m['tpr@0.001']:.3f} | "
                  f"{m['tpr@0.01']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
