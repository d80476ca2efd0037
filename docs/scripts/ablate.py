"""Ablations on a finished run's stored tensors, no retraining: number of models, queries per point, metaclassifier.

    python docs/scripts/ablate.py runs/agnews-linear [--attacks mlp,shared_centred,lira_online]

Models: the first n models of the run (the plan of an n-model run is the first n rows of a larger
one with the same seed, so this equals running with run.num_models = n, minus retraining).
Queries: the first a queries of every point (query 0 is the unaugmented text). Metaclassifiers:
every TMI metaclassifier on the full tensor. Prints markdown tables with 95% bootstrap intervals.
"""

import argparse
import time

import numpy as np

from tmi_nlp.attacks import run_attack
from tmi_nlp.data.plan import Plan
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir


def row(label: str, name: str, queries: np.ndarray, labels: np.ndarray, recipe) -> str:
    start = time.perf_counter()
    scores = run_attack(name, queries, labels, recipe.attack, recipe.run.seed)
    m = membership_metrics(labels, scores, bootstrap=200, seed=recipe.run.seed)
    lo, hi = m["auc_ci95"]
    return (f"| {label} | {name} | {m['auc']:.3f} [{lo:.3f}, {hi:.3f}] | {100 * m['tpr@0.001']:.1f}% | "
            f"{100 * m['tpr@0.01']:.1f}% | {time.perf_counter() - start:.0f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--attacks", default="mlp,shared_centred,lira_online")
    parser.add_argument("--metaclassifiers", default="mlp,shared_centred,logistic,knn,svm,sklearn_mlp")
    args = parser.parse_args()
    recipe = RunDir(args.run).recipe()
    run = RunDir(args.run)
    queries = np.asarray(run.stacked(QUERIES, recipe.run.num_models))
    labels = Plan.load(run.plan).labels()
    head = "| {} | attack | AUC [95% CI] | TPR@0.1% | TPR@1% | time |\n|---|---|---|---|---|---|"
    names = args.attacks.split(",")
    print(f"run {args.run}: {recipe.run.num_models} models, {recipe.run.num_points} points, "
          f"A = {recipe.query.num_queries}, {recipe.finetune.method} finetuning\n")
    print(head.format("models (victims and shadows)"))
    n = recipe.run.num_models
    for models in [m for m in (8, 16, 32, 64) if m < n] + [n]:
        for name in names:
            print(row(str(models), name, queries[:models], labels[:models], recipe), flush=True)
    print("\n" + head.format("queries per point"))
    a = queries.shape[2]
    for count in [c for c in (1, 2, 4, 8, 16) if c < a] + [a]:
        for name in names:
            print(row(str(count), name, queries[:, :, :count], labels, recipe), flush=True)
    print("\n" + head.format("metaclassifier"))
    for name in args.metaclassifiers.split(","):
        print(row("all", name, queries, labels, recipe), flush=True)


if __name__ == "__main__":
    main()
