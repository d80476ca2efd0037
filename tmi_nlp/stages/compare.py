"""compare: one markdown table and an overlaid ROC of chosen attacks across finished runs."""

from pathlib import Path

import numpy as np

from tmi_nlp.atomic import atomic_write_text
from tmi_nlp.report import roc_plot
from tmi_nlp.stages.report import finished_results
from tmi_nlp.tables import metric_cells, metric_headers, table

KEYS = ("auc", "tpr@0.001", "tpr@0.01")


def compare(folders: list[str | Path], attacks: list[str], output: str | Path) -> str:
    """compare.md and compare.png in `output`, over run folders or RUN/victims/OTHER folders of
    `tmi-nlp attack RUN --victims OTHER`; returns the table."""
    rows, curves = [], {}
    for folder in folders:
        label, summary, outs = finished_results(Path(folder))
        eps = f"{summary['epsilon']['max']:.2f}" if "epsilon" in summary else "-"
        acc = f"{summary['victim_accuracy']['mean']:.3f}" if "victim_accuracy" in summary else "-"
        for name in attacks:
            if name not in summary["attacks"]:
                continue
            rows.append([label, summary["method"], acc, eps, name,
                         *metric_cells(summary["attacks"][name], KEYS, "markdown")])
            curves[f"{label}: {name}"] = (np.load(outs[name] / "labels.npy"), np.load(outs[name] / "scores.npy"))
    text = table(["run", "method", "victims' acc.", "epsilon", "attack", *metric_headers(KEYS, "markdown")], rows,
                 "markdown")
    output = Path(output)
    atomic_write_text(output / "compare.md", text + "\n")
    roc_plot(curves, output / "compare.png", title="comparison")
    return text
