"""Is an attack short of a target for want of shadows or for want of signal? AUC against the number of shadows.

    python docs/scripts/shadow_curve.py RUN [RUN ...] [--attacks shared_combined,lira_shrunk,entropy]
                                        [--shadows 4,8,16,31]

On each finished run's stored outputs, every model is the victim once and its attack is trained on S other
models drawn at random (seeded by the victim; S = N - 1 is leave-one-out, as the report runs it). Prints the
pooled AUC and TPR at 1% FPR for each S. A curve still rising at S = N - 1 says more shadows would help; a
flat one says the outputs carry no more than that. Shadow-free attacks (entropy, confidence) give one value.
"""

import argparse

import numpy as np

from tmi_nlp.attacks import READS, run_attack
from tmi_nlp.attacks.features import Roles
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--attacks", default="shared_combined,lira_shrunk,entropy")
    parser.add_argument("--shadows", default="4,8,16,31")
    args = parser.parse_args()
    print(f"{'run':<28} {'attack':<18} {'shadows':>7} {'AUC':>6} {'TPR@1%':>7}")
    for path in args.runs:
        run = RunDir(path)
        recipe = run.recipe()
        n = recipe.run.num_models
        labels = run.load_plan().labels()
        victims = np.arange(n)
        for name in args.attacks.split(","):
            data = np.asarray(run.stacked(READS[name], n))
            for s in sorted({min(int(x), n - 1) for x in args.shadows.split(",")}):
                shadows = np.stack([np.sort(np.random.default_rng([s, v]).choice(np.delete(victims, v), s,
                                                                                  replace=False))
                                    for v in victims])
                scores = run_attack(name, data, labels, recipe.attack, 0, Roles(victims, shadows))
                m = membership_metrics(labels, scores)
                print(f"{path:<28} {name:<18} {s:>7} {m['auc']:>6.3f} {m['tpr@0.01']:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
