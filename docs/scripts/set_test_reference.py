"""The two-sample set test on other attacks' scores and transforms of them (docs/RESULTS.md, the reference rows).

    python docs/scripts/set_test_reference.py RUN [--attacks shared_confidence,shared_centred] [--size 50]

Reads each attack's leave-one-out scores from RUN/attacks/<name>/ (finished by `tmi-nlp attack`), and for every
victim draws 5 sets of `--size` of its members and tests each against all of its non-members and against 50 of
them (`reference_p_value`), on the raw scores, their logit and their ranks within the victim (each a monotone map
of the victim's own scores, so the test stays exact). Prints the share of member sets at p < 0.01 and p < 0.05, and
each victim's AUC, lowest first: a victim whose members barely outscore its non-members caps every test.
"""

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from tmi_nlp.attacks.dataset import reference_p_value

TRANSFORMS = {
    "raw": lambda x: x,
    "logit": lambda x: np.log(np.clip(x, 1e-6, 1 - 1e-6) / (1 - np.clip(x, 1e-6, 1 - 1e-6))),
    "rank": lambda x: x.argsort().argsort() / len(x),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--attacks", default="shared_confidence,shared_centred,shared_direction")
    parser.add_argument("--size", type=int, default=50)
    args = parser.parse_args()
    print("attack                 transform  reference  members p<0.01  p<0.05")
    for name in args.attacks.split(","):
        scores = np.load(f"{args.run}/attacks/{name}/scores.npy")
        labels = np.load(f"{args.run}/attacks/{name}/labels.npy").astype(bool)
        for transform, f in TRANSFORMS.items():
            for reference_size in (0, 50):
                p = []
                for v in range(len(scores)):
                    members, others = np.flatnonzero(labels[v]), np.flatnonzero(~labels[v])
                    for s in range(5):
                        rng = np.random.default_rng([v, s])
                        pick = rng.choice(members, args.size, replace=False)
                        reference = others if reference_size == 0 else rng.choice(others, reference_size, replace=False)
                        p.append(reference_p_value(f(scores[v]), pick, reference, seed=s)["p_value"])
                p = np.array(p)
                print(f"{name:22s} {transform:9s}  {reference_size or 'all':>9}  {np.mean(p < 0.01):14.3f}  "
                      f"{np.mean(p < 0.05):6.3f}")
        auc = sorted(roc_auc_score(labels[v], scores[v]) for v in range(len(scores)))
        print(f"{name}: per-victim AUC, lowest five: {', '.join(f'{a:.2f}' for a in auc[:5])}")


if __name__ == "__main__":
    main()
