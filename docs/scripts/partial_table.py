"""The partial-knowledge table of docs/RESULTS.md from `tmi-nlp attack SHADOWS --victims VICTIMS` results.

    python docs/scripts/partial_table.py runs/agnews-linear runs/agnews-linear-known100 runs/agnews-linear-known50 ...

For each shadow run, the attacks' metrics against the victims (its victims/<victims' name>/ folder),
next to the victims' own leave-one-out attack on the same points (restricted to the points that
shadow run knows, so that rows with fewer points compare like with like).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from tmi_nlp.data.plan import Plan
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.stages.victims import shared_points


def cell(m: dict) -> str:
    lo, hi = m["auc_ci95"]
    tlo, thi = m["tpr@0.001_ci95"]
    return (f"{m['auc']:.3f} [{lo:.3f}, {hi:.3f}] | {100 * m['tpr@0.001']:.1f}% [{100 * tlo:.1f}, {100 * thi:.1f}] | "
            f"{100 * m['tpr@0.01']:.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("victims")
    parser.add_argument("shadow_runs", nargs="+")
    parser.add_argument("--attacks", default="mlp,shared_centred,lira_online,rmia_offline,mlm_loss_lira")
    args = parser.parse_args()
    victims = Path(args.victims)
    victim_plan = Plan.load(victims / "plan")
    print("| shadows' pool | points | attack | AUC [95% CI] | TPR@0.1% [95% CI] | TPR@1% | leave-one-out on the "
          "victims, same points: AUC [95% CI] | TPR@0.1% [95% CI] | TPR@1% |\n|---|---|---|---|---|---|---|---|---|")
    for folder in map(Path, args.shadow_runs):
        out = folder / "victims" / victims.name
        record = json.loads((out / "victims.json").read_text())
        _, cols = shared_points(Plan.load(folder / "plan"), victim_plan)
        for name in args.attacks.split(","):
            if not (out / name / "metrics.json").exists():
                continue
            m = membership_metrics(np.load(out / name / "labels.npy"), np.load(out / name / "scores.npy"),
                                   bootstrap=200, seed=0)
            loo = membership_metrics(np.load(victims / "attacks" / name / "labels.npy")[:, cols],
                                     np.load(victims / "attacks" / name / "scores.npy")[:, cols], bootstrap=200, seed=0)
            print(f"| {folder.name} (f = {record['known_fraction']:g}) | {record['points']} | {name} | {cell(m)} | "
                  f"{cell(loo)} |")


if __name__ == "__main__":
    main()
