"""One formatter for metrics tables: plain text (the terminal), markdown (compare, the Hub model card,
docs/scripts) and HTML (the report).

    table(["attack", *metric_headers(KEYS)], [[name, *metric_cells(m, KEYS, "markdown")] ...], "markdown")
"""

import html

# Metric keys of `metrics.membership_metrics`, and their column headers.
HEADERS = {"auc": "AUC", "tpr@0.001": "TPR@0.1%FPR", "tpr@0.01": "TPR@1%FPR", "tpr@0.1": "TPR@10%FPR",
           "balanced_accuracy": "bal.acc"}
ALL_METRICS = tuple(HEADERS)
TPRS = ("tpr@0.001", "tpr@0.01", "tpr@0.1")
FAMILY_ORDER = ("tmi", "shadow", "shadow-free", "white-box")
STYLES = ("text", "markdown", "html")


def metric_headers(keys: tuple[str, ...], style: str) -> list[str]:
    """Column headers; markdown and HTML say that TPRs are percentages and that intervals follow."""
    if style == "text":
        return [HEADERS[k] for k in keys]
    return [HEADERS[k].replace("TPR@", "TPR % at ").replace("%FPR", "% FPR") + (" [95% CI]" if k == "auc" else "")
            for k in keys]


def metric_cell(m: dict, key: str, style: str) -> str:
    """One metric: text shows fractions and AUC's interval; markdown and HTML show TPRs in percent, and the
    interval of every metric that has one (HTML), or of AUC (markdown)."""
    percent = style != "text" and key in TPRS
    scale, fmt = (100, "{:.1f}") if percent else (1, "{:.3f}")
    value = fmt.format(m[key] * scale)
    interval = m.get(f"{key}_ci95")
    if interval is None or (style != "html" and key != "auc"):
        return value
    lo, hi = (fmt.format(x * scale) for x in interval)
    if style == "html":
        return f'{value} <span class="ci">[{lo}, {hi}]</span>'
    return f"{value} [{lo},{hi}]" if style == "text" else f"{value} [{lo}, {hi}]"


def metric_cells(m: dict, keys: tuple[str, ...], style: str) -> list[str]:
    return [metric_cell(m, key, style) for key in keys]


def by_family(results: dict[str, dict]) -> list[str]:
    """Attack names grouped by family (TMI first), the best AUC first within each."""
    return sorted(results, key=lambda n: (FAMILY_ORDER.index(results[n].get("family", "tmi")), -results[n]["auc"]))


def table(header: list[str], rows: list[list[str]], style: str) -> str:
    """Lay out cells: text columns padded (the first left-aligned), markdown pipes, or an HTML table (cells are
    escaped by the caller where needed: metric cells carry markup)."""
    if style not in STYLES:
        raise ValueError(f"style = {style!r}: expected one of {STYLES}")
    if style == "markdown":
        lines = [header, ["---"] * len(header), *rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
    if style == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in rows)
        return f"<table><tr>{head}</tr>{body}</table>"
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    widths[0] = max(widths[0], 24)
    return "\n".join(" ".join(str(cell).ljust(w) if c == 0 else str(cell).rjust(w)
                              for c, (cell, w) in enumerate(zip(cells, widths, strict=True))).rstrip()
                     for cells in [header, *rows])


def attack_table(results: dict[str, dict], style: str, keys: tuple[str, ...] = ALL_METRICS,
                 family: bool = False, seconds: bool = False) -> str:
    """The attacks of one run (or one victims folder), a row each, in the order given."""
    header = ["attack", *(["family"] if family else []), *metric_headers(keys, style),
              *(["seconds"] if seconds else [])]
    escape = html.escape if style == "html" else str
    rows = [[escape(name), *([escape(m.get("family", "tmi"))] if family else []), *metric_cells(m, keys, style),
             *([f"{m.get('seconds', 0):.2f}"] if seconds else [])] for name, m in results.items()]
    return table(header, rows, style)
