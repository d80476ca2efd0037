"""Every attack side by side on finished runs' stored queries (docs/experiments.md, the attack x row table).

    python docs/scripts/attack_table.py RUN [RUN ...] [--attacks mlp,shared_calibrated,...]

Leave-one-out over each run's models, seed 0, the run's attack settings; prints per run the pooled AUC,
TPR at 0.1% and 1% FPR of each attack, the best TMI-family attack and the best baseline (by AUC), and the
victims' mean downstream accuracy. Nothing is written into the run folders.
"""

import argparse
import json
import time

import numpy as np

from tmi_nlp.attacks import FAMILIES, run_attack
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.store import QUERIES, RunDir

ATTACKS = ("mlp,mlp_paper,shared_centred,mlp_calibrated,shared_calibrated,shared_combined,shared_confidence,"
           "lira_shrunk,lira_online,lira_online_global_var,lira_offline,rmia,rmia_offline,label_only,"
           "calibrated_confidence,confidence,entropy,stability")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--attacks", default=ATTACKS)
    args = parser.parse_args()
    names = args.attacks.split(",")
    print("| run | victims' accuracy | " + " | ".join(names) + " | best TMI | best baseline |")
    print("|---" * (len(names) + 4) + "|", flush=True)
    for folder in args.runs:
        run = RunDir(folder)
        recipe = run.recipe()
        n = recipe.run.num_models
        queries, labels = np.asarray(run.stacked(QUERIES, n)), run.load_plan().labels()
        accuracy = np.mean([json.loads((run.finetuned(i) / "metrics.json").read_text())["eval_accuracy"]
                            for i in range(n)])
        cells, auc = [], {}
        for name in names:
            start = time.perf_counter()
            m = membership_metrics(labels, run_attack(name, queries, labels, recipe.attack, 0))
            auc[name] = m["auc"]
            cells.append(f"{m['auc']:.3f} ({100 * m['tpr@0.001']:.1f}%, {100 * m['tpr@0.01']:.1f}%)")
            print(f"  {run.root.name} {name}: {cells[-1]} {time.perf_counter() - start:.0f} s", flush=True)
        best = {fam: max((n for n in names if (FAMILIES[n] == "tmi") == (fam == "tmi")), key=auc.get)
                for fam in ("tmi", "baseline")}
        print(f"| {run.root.name} | {accuracy:.3f} | " + " | ".join(cells)
              + f" | {best['tmi']} {auc[best['tmi']]:.3f} | {best['baseline']} {auc[best['baseline']]:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
