"""Feature variants tried before `shared_confidence` was registered (docs/experiments.md), on stored tensors.

    python docs/scripts/confidence_variants.py RUN [--attacks shared_calibrated,shared_combined,mlp_calibrated]

Each variant replaces the class logits the calibrated attacks read (`calibrated.class_logits`, C columns per query)
by another per-query vector, which the attack then standardises per point against the OUT shadows as it does the
class logits. "median-centred" is over each model's challenge points, per query: a level shared by a model's points.
"""

import argparse

import numpy as np

from tmi_nlp.attacks import calibrated, run_attack
from tmi_nlp.data.plan import Plan
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir

LOGITS = calibrated.class_logits


def centred(x: np.ndarray) -> np.ndarray:
    return x - np.median(x, axis=1, keepdims=True)


VARIANTS = {
    "class logits (as registered)": LOGITS,
    "class logits, median-centred": lambda q: centred(LOGITS(q)),
    "class logits + sorted logits": lambda q: np.concatenate([LOGITS(q), np.sort(LOGITS(q), -1)[..., ::-1]], -1),
    "class logits + top logit": lambda q: np.concatenate([LOGITS(q), LOGITS(q).max(-1, keepdims=True)], -1),
    "class logits + top logit, median-centred (shared_confidence)":
        lambda q: np.concatenate([LOGITS(q), calibrated.relative_confidence(LOGITS(q))], -1),
    "... + the top logit's spread over the queries (stability)": lambda q: np.concatenate(
        [LOGITS(q), calibrated.relative_confidence(LOGITS(q)),
         np.broadcast_to(LOGITS(q).max(-1, keepdims=True).std(2, keepdims=True), q.shape[:3] + (1,))], -1),
    "top logit alone": lambda q: LOGITS(q).max(-1, keepdims=True),
    "top logit alone, median-centred": lambda q: calibrated.relative_confidence(LOGITS(q)),
    "sorted logits, median-centred": lambda q: centred(np.sort(LOGITS(q), -1)[..., ::-1]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--attacks", default="shared_calibrated,shared_combined,mlp_calibrated")
    args = parser.parse_args()
    run = RunDir(args.run)
    recipe = run.recipe()
    queries = np.asarray(run.stacked(QUERIES, recipe.run.num_models))
    labels = Plan.load(run.plan).labels()
    print(f"| features | {' | '.join(args.attacks.split(','))} |\n|---|{'---|' * len(args.attacks.split(','))}")
    try:
        for variant, logits in VARIANTS.items():
            calibrated.class_logits = logits
            cells = []
            for name in args.attacks.split(","):
                m = membership_metrics(labels, run_attack(name, queries, labels, recipe.attack, recipe.run.seed))
                cells.append(f"{m['auc']:.3f} ({100 * m['tpr@0.001']:.1f}% / {100 * m['tpr@0.01']:.1f}%)")
            print(f"| {variant} | {' | '.join(cells)} |", flush=True)
    finally:
        calibrated.class_logits = LOGITS


if __name__ == "__main__":
    main()
