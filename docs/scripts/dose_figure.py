"""The leakage-against-dose figure of docs/RESULTS.md, from finished runs' own report/metrics.json.

    python docs/scripts/dose_figure.py OUT.png runs/minilm-agnews-linear-e1 runs/minilm-agnews-linear-e4 ...

One panel per base encoder (the checkpoint, or the base trained on public text), AUC against the dose (passes
over the private half): the white-box masked-LM-loss LiRA, the best TMI attack and the best baseline, one line
style per finetuning method and task. Each point is one run; its 95% interval is drawn where the run has one.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"white-box": "0.4", "best TMI": "tab:red", "best baseline": "tab:blue"}


def readings(summary: dict) -> dict[str, dict]:
    """The three readings of one run: white-box, the best TMI attack and the best baseline, by AUC."""
    attacks = summary["attacks"]
    tmi = {k: v for k, v in attacks.items() if v["family"] == "tmi"}
    baselines = {k: v for k, v in attacks.items() if v["family"] in ("shadow", "shadow-free")}
    return {"white-box": attacks["mlm_loss_lira"], "best TMI": tmi[max(tmi, key=lambda k: tmi[k]["auc"])],
            "best baseline": baselines[max(baselines, key=lambda k: baselines[k]["auc"])]}


def main() -> None:
    out, folders = Path(sys.argv[1]), [Path(f) for f in sys.argv[2:]]
    panels: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for folder in folders:
        s = json.loads((folder / "report" / "metrics.json").read_text())
        recipe = s["recipe"]
        base = recipe["base"].get("checkpoint") or "base trained on public text"
        task = Path(recipe["data"]["downstream"]).parent.name
        line = f"{task} {recipe['finetune']['method']} ({s['victim_accuracy']['mean']:.2f} acc.)"
        panels[Path(base).name][line].append((recipe["pretrain"]["epochs"], readings(s)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, (base, lines) in zip(axes[0], sorted(panels.items()), strict=True):
        for style, (line, points) in zip(styles, sorted(lines.items()), strict=False):
            points.sort(key=lambda p: p[0])
            doses = [p[0] for p in points]
            for kind, colour in COLOURS.items():
                aucs = [p[1][kind]["auc"] for p in points]
                ax.plot(doses, aucs, style, marker="o", color=colour, label=f"{kind}, {line}")
                intervals = [p[1][kind].get("auc_ci95") for p in points]
                if all(intervals):
                    ax.fill_between(doses, [i[0] for i in intervals], [i[1] for i in intervals], color=colour,
                                    alpha=0.12)
        doses = sorted({p[0] for points in lines.values() for p in points})
        ax.set_xscale("log")
        ax.set_xticks(doses, [f"{d:g}" for d in doses])
        ax.minorticks_off()
        ax.axhline(0.5, color="black", lw=0.6)
        ax.set(xlabel="dose: passes over the private half", ylabel="membership AUC",
               title=base, ylim=(0.4, 1.02))
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
