"""Dataset-level inference on a finished run: power against set size, and the controls (docs/RESULTS.md).

    python docs/scripts/dataset_power.py RUN [--sizes 10,50,100] [--sets 5] [--attack shared_combined]

For each victim (leave-one-out) and set size n: `--sets` sets of n of its member texts and as many of its
non-member texts, each tested with `tmi_nlp.attacks.dataset.dataset_p_value` (the victim's shadows only) on
the per-text statistic: the confidence statistic, or with `--attack` that attack's held-out scores.
Prints the share of victims' member sets at p < 0.01 and p < 0.05, the share of non-member sets at p < 0.05
(expected 0.05) with a Kolmogorov-Smirnov test of their uniformity, and the same for member sets with the
shadows' membership shuffled (the control: it must look uniform too). Reads the run folder only.
"""

import argparse

import numpy as np
from scipy.stats import kstest

from tmi_nlp.attacks.dataset import confidence_statistic, dataset_p_value, held_out_scores
from tmi_nlp.store import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--sets", type=int, default=5)
    parser.add_argument("--attack", default="", help="per-text statistic: this attack's held-out scores")
    args = parser.parse_args()
    run = RunDir(args.run)
    labels = run.load_plan().labels()
    n = labels.shape[0]
    queries = np.asarray(run.stacked("queries", n))
    rng = np.random.default_rng(0)
    shuffled = np.take_along_axis(labels, rng.random(labels.shape).argsort(axis=0), axis=0)
    attack_args = run.recipe().attack
    cache: dict[int, tuple] = {}

    def statistics(v: int) -> tuple:
        """(statistic, null models) of victim v under the true and the shuffled membership (computed once)."""
        if v not in cache:
            cache[v] = ((held_out_scores(args.attack, queries, labels, v, attack_args),
                         held_out_scores(args.attack, queries, shuffled, v, attack_args)) if args.attack
                        else ((confidence_statistic(queries), np.delete(np.arange(n), v)),) * 2)
        return cache[v]

    print(f"{args.run}: {n} victims, {labels.shape[1]} texts, statistic: {args.attack or 'confidence'}")
    print("| texts per set | member sets p < 0.01 | member sets p < 0.05 | non-member sets p < 0.05 (KS p) "
          "| control: shuffled membership, p < 0.05 (KS p) |")
    print("|---|---|---|---|---|")
    for size in map(int, args.sizes.split(",")):
        seen, unseen, control = [], [], []
        for v in range(n):
            (stat, shadows), (stat_shuffled, shuffled_shadows) = statistics(v)
            members, others = np.flatnonzero(labels[v]), np.flatnonzero(~labels[v])
            if min(len(members), len(others)) < size:
                continue
            for _ in range(args.sets):
                pick = rng.choice(members, size, replace=False)
                seen.append(dataset_p_value(stat, labels, v, shadows, pick)["p_value"])
                control.append(dataset_p_value(stat_shuffled, shuffled, v, shuffled_shadows, pick)["p_value"])
                unseen.append(dataset_p_value(stat, labels, v, shadows, rng.choice(others, size,
                                                                                   replace=False))["p_value"])
        if not seen:
            print(f"| {size} | no victim has {size} members and non-members | | | |")
            continue
        seen, unseen, control = map(np.array, (seen, unseen, control))
        print(f"| {size} | {np.mean(seen < 0.01):.2f} | {np.mean(seen < 0.05):.2f} | {np.mean(unseen < 0.05):.2f} "
              f"({kstest(unseen, 'uniform').pvalue:.2f}) | {np.mean(control < 0.05):.2f} "
              f"({kstest(control, 'uniform').pvalue:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
