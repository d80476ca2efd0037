"""Does a null from every other model give the set test more power? A control (docs/RESULTS.md).

    python docs/scripts/set_test_crossfit.py RUN [--statistic shared_confidence] [--size 50]

The library's set test (`tmi_nlp.attacks.dataset.held_out_scores`) trains the attack on a random half A of the
other models and scores the victim and the other half B, which forms the null: 15 null models out of 31. Cross-
fitting also trains on B and scores A, so that all 31 are null models, each scored by an attack it did not train.
Per victim, 5 sets of `size` members and 5 of non-members are tested both ways (the library's draws); prints the
share of member sets at p < 0.01 and 0.05 and of non-member sets at p < 0.05, then, for the library's way, each
victim's count of member sets at p < 0.01 and its median p-value.
"""

import argparse

import numpy as np

from tmi_nlp.attacks import run_attack
from tmi_nlp.attacks.dataset import dataset_p_value, held_out_scores
from tmi_nlp.attacks.features import Roles
from tmi_nlp.store import QUERIES, RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--statistic", default="shared_confidence")
    parser.add_argument("--size", type=int, default=50)
    args = parser.parse_args()
    run = RunDir(args.run)
    recipe = run.recipe()
    n, seed = recipe.run.num_models, recipe.run.seed
    queries, labels = np.asarray(run.stacked(QUERIES, n)), run.load_plan().labels()

    def scores(scored: np.ndarray, shadows: np.ndarray) -> np.ndarray:
        roles = Roles(scored, np.tile(shadows, (len(scored), 1)))
        return run_attack(args.statistic, queries, labels, recipe.attack, seed, roles)

    p = {way: {"members": [], "non_members": []} for way in ("half", "cross-fitted")}
    for v in range(n):
        # The library's scores: trained on half a of the other models, scoring the victim and the null half b.
        half, b = held_out_scores(args.statistic, queries, labels, v, recipe.attack, seed)
        others = np.delete(np.arange(n), v)
        a = np.setdiff1d(others, b)
        cross = half.copy()
        cross[a] = scores(a, b)
        members, non_members = np.flatnonzero(labels[v]), np.flatnonzero(~labels[v])
        for s in range(5):
            draw = [seed, v, args.size, s]
            sets = {"members": np.random.default_rng(draw + [0]).choice(members, args.size, replace=False),
                    "non_members": np.random.default_rng(draw + [1]).choice(non_members, args.size, replace=False)}
            for way, stat, null in (("half", half, b), ("cross-fitted", cross, others)):
                for kind, texts in sets.items():
                    p[way][kind].append(dataset_p_value(stat, labels, v, null, texts)["p_value"])
    for way, values in p.items():
        m, o = np.array(values["members"]), np.array(values["non_members"])
        nulls = len(b) if way == "half" else n - 1
        print(f"{way:<13} ({nulls} null models): member sets p < 0.01 {np.mean(m < 0.01):.2f}, "
              f"p < 0.05 {np.mean(m < 0.05):.2f}; non-member sets p < 0.05 {np.mean(o < 0.05):.2f}")
    m = np.array(p["half"]["members"]).reshape(n, 5)
    print("per victim, member sets at p < 0.01 (of 5):", (m < 0.01).sum(1).tolist())
    print("per victim, median p:", np.round(np.median(m, 1), 4).tolist())


if __name__ == "__main__":
    main()
