"""The metaclassifiers on a finished run's stored query tensor, C kernel against batched torch code.

    python benchmarks/kernel_vs_torch.py runs/agnews-linear [runs/agnews-full ...] [--attacks mlp,shared_centred]

Both backends draw the same initialisation and minibatch orders; only the dropout masks come
from different random streams, so the scores differ by that noise alone. Prints, side by side,
AUC and TPR at 0.1% / 1% FPR of each backend, the correlation of their scores and their times.
"""

import argparse
import dataclasses
import time

import numpy as np

from tmi_nlp.attacks import run_attack
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir


def scored(name: str, queries: np.ndarray, labels: np.ndarray, recipe, kernel: bool) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    args = dataclasses.replace(recipe.attack, backend="kernel" if kernel else "torch")
    scores = run_attack(name, queries, labels, args, recipe.run.seed)
    return scores, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--attacks", default="mlp,shared_centred")
    args = parser.parse_args()
    print("| run | attack | kernel AUC | TPR@0.1% / 1% | seconds | torch AUC | TPR@0.1% / 1% | seconds | "
          "score correlation |\n|---|---|---|---|---|---|---|---|---|")
    for folder in args.runs:
        run = RunDir(folder)
        recipe = run.recipe()
        queries = np.asarray(run.stacked(QUERIES, recipe.run.num_models))
        labels = run.load_plan().labels()
        for name in args.attacks.split(","):
            cells, scores = [], []
            for kernel in (True, False):
                s, seconds = scored(name, queries, labels, recipe, kernel)
                m = membership_metrics(labels, s)
                cells.append(f"{m['auc']:.3f} | {100 * m['tpr@0.001']:.1f}% / {100 * m['tpr@0.01']:.1f}% | "
                             f"{seconds:.1f}")
                scores.append(s.ravel())
            corr = np.corrcoef(*scores)[0, 1]
            print(f"| {run.root.name} | {name} | {cells[0]} | {cells[1]} | {corr:.3f} |", flush=True)


if __name__ == "__main__":
    main()
