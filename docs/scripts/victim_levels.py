"""How much of an attack's pooled AUC is lost to a level shared by all of a victim's scores? (docs/RESULTS.md)

    python docs/scripts/victim_levels.py RUN [RUN ...] [--attacks shared_centred,shared_calibrated,mlp,rmia_offline]

The pooled AUC ranks (victim, point) records of all victims together, so an attack whose scores carry a
per-victim level (a victim that memorised more scores higher on every point) loses AUC that a per-victim
ranking would keep. RMIA as implemented here ranks each point against the victim's other challenge points,
so it carries no such level. On each finished run's stored scores (attacks/<name>/scores.npy), prints the
pooled AUC and TPR at 0.1% FPR of each attack as stored, with each victim's scores less their median over the
challenge points, and as ranks within the victim. Centring and ranking read only the victim's own scores, no
membership, but they use that about half of the challenge points are each victim's members, as RMIA's
population of other challenge points does.
"""

import argparse

import numpy as np

from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--attacks", default="shared_centred,shared_calibrated,shared_combined,mlp,rmia_offline,"
                                             "lira_online_global_var")
    args = parser.parse_args()
    print(f"{'run':<16} {'attack':<24} {'AUC: stored':>11} {'centred':>8} {'ranked':>7}   "
          f"{'TPR@0.1%: stored':>16} {'centred':>8} {'ranked':>7}")
    for path in args.runs:
        run = RunDir(path)
        labels = run.load_plan().labels()
        for name in args.attacks.split(","):
            scores_path = run.attack(name) / "scores.npy"
            if not scores_path.exists():
                continue
            scores = np.load(scores_path)
            variants = (scores, scores - np.median(scores, axis=1, keepdims=True),
                        np.argsort(np.argsort(scores, axis=1), axis=1) / scores.shape[1])
            m = [membership_metrics(labels, s) for s in variants]
            print(f"{run.root.name:<16} {name:<24} {m[0]['auc']:>11.3f} {m[1]['auc']:>8.3f} {m[2]['auc']:>7.3f}   "
                  f"{m[0]['tpr@0.001']:>16.3f} {m[1]['tpr@0.001']:>8.3f} {m[2]['tpr@0.001']:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
