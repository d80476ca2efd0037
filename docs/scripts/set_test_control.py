"""Why the shuffled-membership control does not apply to the two-sample set test (docs/RESULTS.md).

    python docs/scripts/set_test_control.py RUN [--shuffles 7,8,9]

The one-sample test's control shuffles every point's membership across models and tests each victim's
"members" under the shuffle. For the two-sample test the same control rejects far above 5% on some zoos. The
cause is a text property, not membership: under a shuffle, a text joins a victim's shuffled members with the
share of models that trained on it (the column count of the plan), and an attack trained on shuffled labels
scores texts by that count too. With the true labels (drawn independently per model and text), a victim's
label is independent of how many *other* models saw the text, so the real test is not confounded; its null is
a set of non-members against the victim's other non-members. For each shuffle, prints the two-sample test's
rejections at p < 0.05 (5 sets of 50 per victim, against all the victim's other texts): shuffled attack with
its own sets, with another shuffle's sets, and the real attack's scores with the shuffled sets; then the mean
correlation, over victims, of the shuffled attack's scores and of the shuffled membership with the column count,
and of the true membership with the count of the other models.
"""

import argparse

import numpy as np

from tmi_nlp.attacks import run_attack
from tmi_nlp.attacks.dataset import reference_p_value
from tmi_nlp.resolve import resolve
from tmi_nlp.stages.dataset import _inputs
from tmi_nlp.stages.prepare import open_run
from tmi_nlp.store import RunDir


def rejections(scores: np.ndarray, sets: np.ndarray, size: int = 50) -> float:
    p = []
    for v in range(len(sets)):
        members, others = np.flatnonzero(sets[v]), np.flatnonzero(~sets[v])
        for s in range(5):
            pick = np.random.default_rng([v, s]).choice(members, size, replace=False)
            p.append(reference_p_value(scores[v], pick, others, seed=[v, s])["p_value"])
    return float(np.mean(np.array(p) < 0.05))


def mean_corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(x, y, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--shuffles", default="7,8,9")
    args = parser.parse_args()
    run, recipe = open_run(resolve(RunDir(args.run).recipe()))
    queries, labels = _inputs(run, recipe)
    name = recipe.attack.dataset_statistic
    real = np.load(run.attack(name) / "scores.npy")
    count = labels.sum(0)

    def shuffle(seed: int) -> np.ndarray:
        rng = np.random.default_rng([recipe.run.seed, seed])
        return np.take_along_axis(labels, rng.random(labels.shape).argsort(axis=0), axis=0)

    print(f"{args.run}, statistic {name}: two-sample rejections at p < 0.05 of 50-text sets")
    print("shuffle  shuffled attack, its sets  another shuffle's sets  real scores, shuffled sets  "
          "corr(score, count)  corr(shuffled label, count)")
    for seed in map(int, args.shuffles.split(",")):
        shuffled, other = shuffle(seed), shuffle(seed + 100)
        scores = run_attack(name, queries, shuffled, recipe.attack, recipe.run.seed)
        print(f"{seed:7d}  {rejections(scores, shuffled):25.3f}  {rejections(scores, other):22.3f}  "
              f"{rejections(real, shuffled):26.3f}  {mean_corr(scores, np.tile(count, (len(labels), 1))):18.3f}  "
              f"{mean_corr(shuffled, np.tile(count, (len(labels), 1))):27.3f}")
    print(f"true labels: corr(victim's label, count of the other models) "
          f"{mean_corr(labels, count[None] - labels):.3f}; real attack: corr(score, count) "
          f"{mean_corr(real, np.tile(count, (len(labels), 1))):.3f}")


if __name__ == "__main__":
    main()
