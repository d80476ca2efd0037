"""Plots and the self-contained HTML report of a run (and a comparison across runs).

Figures are made with matplotlib's object API (`Figure`), never pyplot: no backend is switched and
no figure is left open in the caller's process.
"""

import base64
import html
import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from tmi_nlp.atomic import atomic_write_bytes, atomic_write_text
from tmi_nlp.tables import attack_table, by_family

FAMILY_STYLES = {"tmi": "-", "shadow": "--", "shadow-free": ":", "white-box": "-."}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "",
               styles: dict[str, str] | None = None) -> bytes:
    """PNG bytes of log-log ROC curves, {name: (labels, scores)}."""
    fig = Figure(figsize=(6.4, 5.6))
    ax = fig.subplots()
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels.ravel(), scores.ravel())
        ax.plot(fpr, tpr, (styles or {}).get(name, "-"), lw=1.3,
                label=f"{name} (AUC {roc_auc_score(labels.ravel(), scores.ravel()):.3f})")
    ax.plot([1e-4, 1], [1e-4, 1], "k", lw=0.6, alpha=0.5, label="chance")
    ax.set(xscale="log", yscale="log", xlim=(1e-3, 1), ylim=(1e-3, 1), xlabel="false positive rate",
           ylabel="true positive rate", title=title)
    ax.legend(loc="lower right", fontsize=7)
    return _png(fig)


def roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "",
             styles: dict[str, str] | None = None) -> None:
    """Log-log ROC curves saved as a PNG (atomically)."""
    atomic_write_bytes(path, roc_figure(curves, title, styles))


def histogram_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """PNG bytes: per attack, the score histograms of IN and OUT records."""
    cols = 4
    rows = max(1, -(-len(curves) // cols))
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (name, (labels, scores)) in zip(axes.ravel(), curves.items(), strict=False):
        labels, scores = labels.ravel().astype(bool), scores.ravel()
        finite = np.isfinite(scores)
        lo, hi = np.percentile(scores[finite], [0.5, 99.5]) if finite.any() else (0, 1)
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
        ax.hist(scores[labels & finite], bins, alpha=0.55, density=True, label="IN", color="tab:red")
        ax.hist(scores[~labels & finite], bins, alpha=0.55, density=True, label="OUT", color="tab:blue")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(curves):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    return _png(fig)


def accuracy_figure(accuracies: list[float], epsilons: list[float] | None = None) -> bytes:
    """PNG bytes: the victims' downstream accuracy, model by model."""
    fig = Figure(figsize=(6.4, 2.6))
    ax = fig.subplots()
    ax.bar(range(len(accuracies)), accuracies, color="tab:green")
    ax.set(xlabel="model", ylabel="downstream accuracy", ylim=(0, 1),
           title="victims' downstream accuracy" + (f" (DP-SGD, epsilon {max(epsilons):.2f})" if epsilons else ""))
    return _png(fig)


def summary_table(results: dict[str, dict], accuracy: dict | None = None, reference: dict | None = None,
                  warnings: list[str] | None = None) -> str:
    """A plain-text table of every attack's metrics (AUC with its 95% interval), the victims' accuracy next to the
    reference classifier's, and the warnings that qualify the figures."""
    text = attack_table(results, "text")
    if accuracy:
        text += (f"\nvictims' downstream accuracy: mean {accuracy['mean']:.3f} "
                 f"(min {accuracy['min']:.3f}, max {accuracy['max']:.3f})")
    if reference:
        text += (f"; TF-IDF + logistic regression {reference['tfidf_logistic']:.3f}, majority class "
                 f"{reference['majority_class']:.3f}")
    for warning in warnings or []:
        text += f"\nWARNING: {warning}"
    return text


def dataset_warning(record: dict) -> str:
    """Where a set test rejects clearly more than 5% of non-member sets at p < 0.05: its p-values are too small on
    this run. (Seen before the null drew a model-level shift, on zoos whose models memorise by different amounts;
    a guard for what the null may still miss.)"""
    bad = {f"{size}-text{' (against a reference)' if prefix else ''}": r[f"{prefix}non_members_p_below_0.05"]
           for size, r in record["sizes"].items() for prefix, sets in (("", "sets"), ("reference_", "reference_sets"))
           if r.get(sets, 0) >= 20 and r[f"{prefix}non_members_p_below_0.05"] > 0.10}
    if not bad:
        return ""
    return ("WARNING: on this run the set test rejects " + ", ".join(f"{v:.0%} of {k}" for k, v in bad.items())
            + " non-member sets at p < 0.05 (expected 5%): its p-values are too small here and do not support a "
              "conclusion")


# The two set tests, as the power record's key prefix and the tables' label.
SET_TESTS = (("", "one-sample"), ("reference_", "vs reference"))


def _set_test_rows(record: dict) -> list[tuple[str, str, dict]]:
    """(set size, test label, that test's rates without the prefix) for every test the record measured."""
    return [(size, label, {"control_p_below_0.05": None, "control_ks_p": None, "reference_texts": r.get(
                "reference_texts")} | {k[len(prefix):]: v for k, v in r.items() if k.startswith(prefix)})
            for size, r in record["sizes"].items() for prefix, label in SET_TESTS
            if f"{prefix}members_p_below_0.01" in r]


def _rate(value: float | None) -> str:
    """A share or a p-value, or - where the test does not measure it (the two-sample test has no shuffled control)."""
    return "-" if value is None else f"{value:.2f}"


def _control_cell(rates: dict) -> str:
    if rates["control_p_below_0.05"] is None:
        return "-"
    return f"{rates['control_p_below_0.05']:.2f} ({rates['control_ks_p']:.2f})"


def _reference_cell(label: str, rates: dict) -> str:
    """How many known non-members the two-sample test compared with (mean over sets), or - for the one-sample."""
    return "-" if label == "one-sample" else f"{rates['reference_texts']:.0f}"


def dataset_table(record: dict) -> str:
    """The set tests' power and level (dataset/<statistic>.json) as a text table."""
    lines = [f"set tests on the run's victims, statistic {record['settings']['statistic']} "
             f"({record['settings']['sets']} sets per victim and size; vs reference: against the victim's known "
             f"non-members, as many as the reference column says; its null is the non-member sets, the shuffled "
             f"control does not apply to it)",
             f"{'texts':>6} {'test':>13} {'reference':>9} {'members p<0.01':>15} {'members p<0.05':>15} "
             f"{'non-members p<0.05':>19} {'(KS p)':>7} {'control p<0.05':>15} {'(KS p)':>7}"]
    for size, label, r in _set_test_rows(record):
        lines.append(f"{size:>6} {label:>13} {_reference_cell(label, r):>9} {r['members_p_below_0.01']:>15.2f} "
                     f"{r['members_p_below_0.05']:>15.2f} {r['non_members_p_below_0.05']:>19.2f} "
                     f"{r['non_members_ks_p']:>7.2f} {_rate(r['control_p_below_0.05']):>15} "
                     f"{_rate(r['control_ks_p']):>7}")
    return "\n".join(lines + ([dataset_warning(record)] if dataset_warning(record) else []))


def _bootstrap_unit(results: dict[str, dict]) -> str:
    """What the intervals resampled: whole challenge points (runs of this version) or single records (older)."""
    units = {m.get("bootstrap_unit", "records") for m in results.values() if "auc_ci95" in m}
    if units == {"challenge points"}:
        return "over challenge points (all of a point's records resampled together)"
    return "over records (resampled one by one: narrower than over points)" if units == {"records"} else \
        "over challenge points, or over records for attacks scored by an older version"


def metrics_html(results: dict[str, dict]) -> str:
    """The attacks as an HTML table, grouped by family, every metric with its interval."""
    return attack_table({name: results[name] for name in by_family(results)}, "html", family=True, seconds=True)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:14px}td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}
td:first-child,th:first-child,td:nth-child(2){text-align:left}.ci{color:#777;font-size:12px}td{white-space:nowrap}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dt{font-weight:600}img{max-width:100%}
pre{background:#f6f6f6;padding:1em;overflow:auto}"""


def _other_zoos_html(other_zoos: dict[str, tuple[dict[str, dict], dict]]) -> str:
    if not other_zoos:
        return ""
    parts = ["<h2>Against other zoos (separate roles)</h2><p>This run's models are the shadows and another "
             "run's models the victims (<code>tmi-nlp attack RUN --victims OTHER</code>), scored on the challenge "
             "texts both runs share.</p>"]
    for label, (results, curves) in other_zoos.items():
        styles = {name: FAMILY_STYLES.get(results[name].get("family", "tmi"), "-") for name in curves}
        parts.append(f"<h3>{html.escape(label)}</h3>{metrics_html(results)}"
                     f"{_img(roc_figure(curves, label, styles), f'ROC curves against {label}')}")
    return "".join(parts)


def _dataset_html(record: dict | None) -> str:
    if not record or not record["sizes"]:
        return ""
    rows = "".join(f"<tr><td>{size}</td><td>{label}</td>"
                   f"<td>{_reference_cell(label, r)}</td>"
                   f"<td>{r['members_p_below_0.01']:.2f}</td><td>{r['members_p_below_0.05']:.2f}</td>"
                   f"<td>{r['non_members_p_below_0.05']:.2f} ({r['non_members_ks_p']:.2f})</td>"
                   f"<td>{_control_cell(r)}</td></tr>"
                   for size, label, r in _set_test_rows(record))
    return (f"<h2>Was this set of texts used? (dataset-level inference)</h2><p>For each victim, sets of its member "
            f"texts and of its non-member texts are tested (H0: the victim saw none of them) on the per-text "
            f"statistic <code>{html.escape(record['settings']['statistic'])}</code>, {record['settings']['sets']} "
            f"sets per victim and size. One-sample: against a null built from other models only. Vs reference: "
            f"two-sample, against a reference set of texts known unused (the victim's other non-members), with a "
            f"permutation p-value. A calibrated test rejects about 5% of non-member sets at p &lt; 0.05, and the "
            f"one-sample test as many when membership is shuffled (the control, which does not apply to the "
            f"two-sample test); KS p: the uniformity of those p-values. "
            f"<code>tmi-nlp dataset RUN --texts FILE [--reference FILE]</code> tests your own set.</p><table><tr>"
            f"<th>texts per set</th><th>test</th><th>reference texts</th><th>member sets p &lt; 0.01</th><th>member "
            f"sets p &lt; 0.05</th><th>non-member sets p &lt; 0.05 (KS p)</th><th>control p &lt; 0.05 (KS p)</th>"
            f"</tr>{rows}</table>" + (f"<p><strong>{html.escape(dataset_warning(record))}</strong></p>"
                                      if dataset_warning(record) else ""))


def report_html(title: str, facts: dict[str, str], results: dict[str, dict],
                curves: dict[str, tuple[np.ndarray, np.ndarray]], accuracies: list[float],
                epsilons: list[float] | None, recipe_yaml: str,
                other_zoos: dict[str, tuple[dict[str, dict], dict]] | None = None,
                dataset: dict | None = None) -> str:
    """The whole report as one HTML string, every plot embedded.

    `other_zoos`: label -> (results, curves) of `tmi-nlp attack --victims` against other runs.
    """
    styles = {name: FAMILY_STYLES.get(results[name].get("family", "tmi"), "-") for name in curves}
    facts_html = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Membership inference on the <em>pretraining</em> data of finetuned classifiers (TMI, Abascal et al.,
PETS 2024). Every model is the victim once; the other models are its shadows. Scores of all victims are
pooled; intervals are 95% bootstrap intervals {html.escape(_bootstrap_unit(results))}.</p>
<h2>Setting</h2><dl>{facts_html}</dl>
<h2>Attacks</h2>{metrics_html(results)}
<h2>ROC (log-log)</h2>{_img(roc_figure(curves, title, styles), "ROC curves of every attack")}
<h2>Scores of members (IN) and non-members (OUT)</h2>{_img(histogram_figure(curves), "score histograms")}
<h2>Victims</h2>{_img(accuracy_figure(accuracies, epsilons), "victims' downstream accuracy")}
{_dataset_html(dataset)}
{_other_zoos_html(other_zoos or {})}
<details><summary>Recipe (as run)</summary><pre>{html.escape(recipe_yaml)}</pre></details>
</body></html>
"""


def write_report(path: str | Path, **kwargs) -> None:
    atomic_write_text(path, report_html(**kwargs))
