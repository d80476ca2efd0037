"""report: report/metrics.json, report/roc.png and the self-contained report/report.html of a run.

Reads only the run folder: the attacks' results (running the attacks not finished yet), the
finetuned models' metrics, the tokenised data's sizes, and the results against other zoos.
"""

import json
from pathlib import Path

import numpy as np

from tmi_nlp.atomic import atomic_write_json
from tmi_nlp.attacks import FAMILIES
from tmi_nlp.config import Recipe, RecipeError
from tmi_nlp.report import FAMILY_STYLES, roc_plot, write_report
from tmi_nlp.stages.attack import attack
from tmi_nlp.stages.dataset import dataset_power
from tmi_nlp.stages.prepare import open_run
from tmi_nlp.store import RunDir


def _spread(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def victim_warnings(accuracy: float, reference: dict | None) -> list[str]:
    """Why the victims' leakage figures may mean nothing: they are near chance, or far below what TF-IDF + logistic
    regression reaches on the same split (more than 10 points)."""
    if reference is None:
        return []
    chance, tfidf = reference["majority_class"], reference["tfidf_logistic"]
    if accuracy < chance + max(0.05, 0.25 * (tfidf - chance)):
        return [f"the victims are near chance: accuracy {accuracy:.3f}, majority class {chance:.3f}, TF-IDF + logistic "
                f"regression {tfidf:.3f} on the same split. A model that learned nothing is not a model anyone "
                f"releases: these leakage figures say little about a real one"]
    if accuracy < tfidf - 0.10:
        return [f"the victims are far below a simple reference: accuracy {accuracy:.3f} against TF-IDF + logistic "
                f"regression {tfidf:.3f} on the same split; a released model would be better trained"]
    return []


def report(recipe: Recipe) -> dict:
    """report/metrics.json, report/roc.png and report/report.html; returns the summary."""
    run, recipe = open_run(recipe)
    results = attack(recipe)
    victims = run.finetune_metrics(recipe.run.num_models)
    reference = json.loads(run.reference.read_text()) if run.reference.exists() else None
    accuracy = _spread([m["eval_accuracy"] for m in victims])
    summary = {"recipe": recipe.to_dict(), "method": recipe.finetune.method, "attacks": results,
               "victim_accuracy": accuracy, "reference_accuracy": reference,
               "warnings": victim_warnings(accuracy["mean"], reference)}
    epsilons = [m["epsilon"] for m in victims] if all("epsilon" in m for m in victims) else None
    if epsilons:
        summary["epsilon"] = _spread(epsilons)
        summary["delta"] = recipe.finetune.options["dp"]["delta"]
    if recipe.attack.dataset_sizes:
        summary["dataset"] = dataset_power(recipe)
    atomic_write_json(run.report / "metrics.json", summary)
    curves = {name: (np.load(run.attack(name) / "labels.npy"), np.load(run.attack(name) / "scores.npy"))
              for name in results}
    title = f"{recipe.run.name}: {recipe.finetune.method} finetuning"
    roc_plot(curves, run.report / "roc.png", title=title,
             styles={n: FAMILY_STYLES[FAMILIES.get(n, "tmi")] for n in curves})
    other_zoos = {}
    for folder in sorted((run.root / "victims").glob("*/victims.json")):
        label, other, outs = finished_results(folder.parent)
        other_zoos[label] = (other["attacks"], {name: (np.load(out / "labels.npy"), np.load(out / "scores.npy"))
                                                for name, out in outs.items()})
    write_report(run.report / "report.html", title=title, facts=_facts(recipe, run, summary), results=results,
                 curves=curves, accuracies=[m["eval_accuracy"] for m in victims], epsilons=epsilons,
                 recipe_yaml=recipe.to_yaml(), other_zoos=other_zoos, dataset=summary.get("dataset"))
    return summary


def _facts(recipe: Recipe, run: RunDir, summary: dict) -> dict[str, str]:
    r, d, f, q = recipe.run, recipe.data, recipe.finetune, recipe.query
    tokens = run.tokens()
    if f.method == "dp":
        dp = f.options["dp"]
        method = (f"dp over {dp['parameters']} parameters: epsilon spent {summary['epsilon']['max']:.2f} "
                  f"(target {dp['epsilon']:g}), delta {dp['delta']:g}, clipping norm {dp['max_grad_norm']:g}")
    else:
        method = f.method
    acc, ref = summary["victim_accuracy"], summary["reference_accuracy"]
    reference = (f"; TF-IDF + logistic regression {ref['tfidf_logistic']:.3f}, majority class "
                 f"{ref['majority_class']:.3f} on the same split" if ref else "")
    base = ""
    if recipe.base.checkpoint:
        info = json.loads((run.base / "base.json").read_text())
        base = f"continued from the public encoder {info['checkpoint']} ({info['parameters'] / 1e6:.1f}M parameters); "
    elif recipe.base.corpus:
        info = json.loads((run.base / "base.json").read_text())
        base = (f"continued from a base encoder ({info['parameters'] / 1e6:.1f}M parameters, "
                f"{info['tokens_seen'] / 1e6:.1f}M public tokens seen, held-out masked-LM loss "
                f"{info['heldout_mlm_loss']:.2f}); ")
    dose = (f"{recipe.pretrain.epochs:g} passes over the private half, which is {recipe.pretrain.private_share:.0%} "
            f"of the texts seen" if recipe.pretrain.private_share < 1 else f"{recipe.pretrain.epochs:g} epochs")
    facts = {"warning": " ".join(summary["warnings"])} if summary["warnings"] else {}
    return {**facts,
        "models": f"{r.num_models} (each the victim once, {r.num_models - 1} shadows)",
        "pretraining pool": f"{d.pool} — {d.pool_size} texts, each model pretrains on about half" + (
            f"; partial knowledge: {d.known_fraction:g} of the pool of {d.known_pool_of}, the rest other texts"
            if d.known_pool_of else ""),
        "challenge points": f"{r.num_points} (records scored: {r.num_models * r.num_points})",
        "model": (f"BERT, {recipe.model.num_hidden_layers} layers, hidden {recipe.model.hidden_size}, "
                  f"max length {recipe.model.max_length}; {base}masked LM for {dose}"),
        "downstream task": (f"{d.downstream} — {len(tokens['train'])} training and {len(tokens['eval'])} evaluation "
                            f"texts, {tokens['num_labels']} classes"
                            + (" (" + ", ".join(f"{i} = {c}" for i, c in enumerate(tokens["classes"])) + ")"
                               if "classes" in tokens else "")),
        "finetuning": f"{method}; {f.epochs:g} epochs, learning rate {f.learning_rate:g}, batch {f.batch_size}",
        "queries": (f"A = {q.num_queries} per point: token {q.augmentation} at rate {q.rate:g}"
                    + (", query 0 unaugmented" if q.include_original else "")),
        "victims' accuracy": f"mean {acc['mean']:.3f} (min {acc['min']:.3f}, max {acc['max']:.3f}){reference}",
        "seed": str(r.seed),
    }


def finished_results(folder: Path) -> tuple[str, dict, dict[str, Path]]:
    """(label, summary, attack folders) of a finished run, or of `attack --victims` results (RUN/victims/OTHER)."""
    if (folder / "victims.json").exists():
        record = json.loads((folder / "victims.json").read_text())
        victims_report = Path(record["victims"]) / "report" / "metrics.json"
        outs = {m.parent.name: m.parent for m in sorted(folder.glob("*/metrics.json"))}
        attacks = {name: json.loads((out / "metrics.json").read_text()) for name, out in outs.items()}
        summary = {"attacks": attacks, "method": next(iter(attacks.values()))["method"] if attacks else "-"}
        if victims_report.exists():
            victims_summary = json.loads(victims_report.read_text())
            summary.update({k: victims_summary[k] for k in ("victim_accuracy", "epsilon") if k in victims_summary})
        return f"{folder.parent.parent.name} -> {folder.name}", summary, outs
    run = RunDir(folder)
    if not (run.report / "metrics.json").exists():
        raise RecipeError(f"{folder}: no report/metrics.json; run `tmi-nlp report {folder}` first")
    summary = json.loads((run.report / "metrics.json").read_text())
    return run.root.name, summary, {name: run.attack(name) for name in summary["attacks"]}
