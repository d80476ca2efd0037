"""Print the markdown tables of docs/RESULTS.md from finished runs' report/metrics.json, or from the
results of `tmi-nlp attack RUN --victims OTHER` (a folder RUN/victims/OTHER).

    python docs/scripts/results_table.py runs/agnews-linear runs/agnews-full ...
    python docs/scripts/results_table.py runs/agnews-linear-known50/victims/agnews-linear
"""

import json
import sys
from pathlib import Path


def ci(m: dict, key: str, percent: bool) -> str:
    scale, fmt = (100, "{:.1f}") if percent else (1, "{:.3f}")
    value = fmt.format(scale * m[key])
    if f"{key}_ci95" in m:
        lo, hi = m[f"{key}_ci95"]
        value += f" [{fmt.format(scale * lo)}, {fmt.format(scale * hi)}]"
    return value


def attack_rows(attacks: dict[str, dict]) -> None:
    print("| attack | family | AUC [95% CI] | TPR % at 0.1% FPR | TPR % at 1% FPR |\n|---|---|---|---|---|")
    families = ["tmi", "shadow", "shadow-free", "white-box"]
    order = sorted(attacks.items(), key=lambda kv: (families.index(kv[1].get("family", "tmi")), -kv[1]["auc"]))
    for name, m in order:
        print(f"| {name} | {m.get('family', 'tmi')} | {ci(m, 'auc', False)} | {ci(m, 'tpr@0.001', True)} | "
              f"{ci(m, 'tpr@0.01', True)} |")
    print()


def main() -> None:
    for folder in map(Path, sys.argv[1:]):
        if (folder / "victims.json").exists():
            record = json.loads((folder / "victims.json").read_text())
            attacks = {m.parent.name: json.loads(m.read_text()) for m in sorted(folder.glob("*/metrics.json"))}
            seconds = sum(m.get("seconds", 0) for m in attacks.values())
            print(f"### {folder.parent.parent.name} ({record['num_shadows']} shadows, known fraction "
                  f"{record['known_fraction']}) against {folder.name} ({record['num_victims']} victims)\n")
            print(f"{record['points']} shared challenge points; attack stage {seconds:.0f} s.\n")
            attack_rows(attacks)
            continue
        summary = json.loads((folder / "report" / "metrics.json").read_text())
        recipe = summary["recipe"]
        acc = summary["victim_accuracy"]
        eps = (f"; DP epsilon spent {summary['epsilon']['max']:.2f} (delta {summary['delta']:g})"
               if "epsilon" in summary else "")
        seconds = sum(m.get("seconds", 0) for m in summary["attacks"].values())
        task = Path(recipe["data"]["downstream"]).parent.name
        print(f"### {folder.name}: {summary['method']} finetuning on {task}\n")
        queries = recipe["query"].get("num_queries", recipe["query"].get("num_augmentations"))  # older runs
        print(f"{recipe['run']['num_models']} models, {recipe['run']['num_points']} points, "
              f"A = {queries}; victims' downstream accuracy {acc['mean']:.3f} "
              f"(min {acc['min']:.3f}, max {acc['max']:.3f}){eps}; attack stage {seconds:.0f} s.\n")
        attack_rows(summary["attacks"])


if __name__ == "__main__":
    main()
