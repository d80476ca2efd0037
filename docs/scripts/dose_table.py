"""The leakage-against-dose table of docs/RESULTS.md, one row per finished run (report/metrics.json).

    python docs/scripts/dose_table.py runs/cont-agnews-full-e1 runs/cont-agnews-full-e4 ...

Columns: dose (passes over the private half), victims' accuracy next to TF-IDF + logistic regression on the
same split, the white-box masked-LM-loss LiRA (AUC, TPR at 0.1% and 1% FPR), every TMI-family attack's AUC
with its interval and TPRs, and the best baseline by AUC.
"""

import json
import sys
from pathlib import Path


def cell(m: dict) -> str:
    lo, hi = m.get("auc_ci95", [float("nan")] * 2)
    return (f"{m['auc']:.3f} [{lo:.3f}, {hi:.3f}] ({100 * m['tpr@0.001']:.1f}% / {100 * m['tpr@0.01']:.1f}%)")


def main() -> None:
    summaries = [(folder, json.loads((folder / "report" / "metrics.json").read_text()))
                 for folder in map(Path, sys.argv[1:])]
    tmi = list(dict.fromkeys(name for _, s in summaries for name, m in s["attacks"].items() if m["family"] == "tmi"))
    print("| run | dose E | victims' accuracy (TF-IDF+LR) | white-box MLM-loss LiRA AUC (TPR@0.1% / 1%) | "
          + " | ".join(f"{name} AUC (TPR@0.1% / 1%)" for name in tmi) + " | best baseline |")
    print("|" + "---|" * (5 + len(tmi)))
    for folder, s in summaries:
        a, ref = s["attacks"], s.get("reference_accuracy") or {}
        baselines = {k: v for k, v in a.items() if v["family"] in ("shadow", "shadow-free")}
        best = max(baselines, key=lambda k: baselines[k]["auc"])
        wb = a["mlm_loss_lira"]
        print(f"| {folder.name} | {s['recipe']['pretrain']['epochs']:g} | {s['victim_accuracy']['mean']:.3f} "
              f"({ref.get('tfidf_logistic', float('nan')):.3f}) | {wb['auc']:.3f} ({100 * wb['tpr@0.001']:.1f}% / "
              f"{100 * wb['tpr@0.01']:.1f}%) | " + " | ".join(cell(a[n]) if n in a else "-" for n in tmi)
              + f" | {best} {cell(baselines[best])} |")


if __name__ == "__main__":
    main()
