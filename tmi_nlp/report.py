"""Plots and tables of a run's results."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from tmi_nlp.store import atomic_write_bytes  # noqa: E402


def roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "") -> None:
    """Log-log ROC curves, {name: (labels, scores)}, saved as a PNG (atomically)."""
    import io

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels.ravel(), scores.ravel())
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(labels.ravel(), scores.ravel()):.3f})")
    ax.plot([1e-4, 1], [1e-4, 1], "k--", lw=0.8, label="chance")
    ax.set(xscale="log", yscale="log", xlim=(1e-3, 1), ylim=(1e-3, 1), xlabel="false positive rate",
           ylabel="true positive rate", title=title)
    ax.legend(loc="lower right", fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def summary_table(results: dict[str, dict], accuracy: dict | None = None) -> str:
    """A plain-text table of every attack's metrics with 95% intervals where present."""
    rows = [f"{'attack':<24} {'AUC':>18} {'TPR@0.1%FPR':>12} {'TPR@1%FPR':>10} {'TPR@10%FPR':>10} {'bal.acc':>8}"]
    for name, m in results.items():
        ci = m.get("auc_ci95")
        auc = f"{m['auc']:.3f}" + (f" [{ci[0]:.3f},{ci[1]:.3f}]" if ci else "")
        rows.append(f"{name:<24} {auc:>18} {m['tpr@0.001']:>12.3f} {m['tpr@0.01']:>10.3f} "
                    f"{m['tpr@0.1']:>10.3f} {m['balanced_accuracy']:>8.3f}")
    if accuracy:
        rows.append(f"victims' downstream accuracy: mean {accuracy['mean']:.3f} "
                    f"(min {accuracy['min']:.3f}, max {accuracy['max']:.3f})")
    return "\n".join(rows)
