"""Python API on your own text: lists, pandas DataFrames or `datasets.Dataset`s, no files needed.

    from tmi_nlp.api import run_experiment

    summary = run_experiment(
        pool=my_private_corpus,                      # list[str], DataFrame or Dataset
        downstream=(texts, labels),                  # (list[str], list[int]), DataFrame or Dataset
        overrides=["run.name=mine", "run.num_models=16", "finetune.method=lora"])
    summary["attacks"]["mlp"]["auc"]
    summary["warnings"]                              # e.g. the victims are near chance: the figures mean little

In-memory data is written once into the run folder (`inputs/pool.jsonl`, `inputs/downstream.jsonl`)
and the recipe points at those files, so the run stays self-describing and resumable like any
other; texts that are in both the pool and the downstream data are removed from the downstream
side when the run is prepared. After that, nothing reads `inputs/` again: the run folder alone is
reported, attacked or pushed to the Hub.

It works from a plain script without `if __name__ == "__main__":`: models train in worker
processes that start `tmi_nlp` itself, never the calling script.
"""

import json
import numbers
from pathlib import Path
from typing import Any

from tmi_nlp.atomic import atomic_write_text
from tmi_nlp.config import Recipe, apply_overrides, recipe_from_dict
from tmi_nlp.data.loading import DataError
from tmi_nlp.resolve import resolve
from tmi_nlp.stages import run_all
from tmi_nlp.stages.base import base_info, build_base
from tmi_nlp.stages.dataset import dataset_power, dataset_test, target_set_test
from tmi_nlp.stages.target import Predict, load_target
from tmi_nlp.store import RunDir


def _rows(data: Any, text_column: str, label_column: str | None, field: str) -> list[dict]:
    """Rows {"text", ["label"]} from a list of strings, a (texts, labels) pair, a DataFrame or a Dataset."""
    if isinstance(data, tuple) and len(data) == 2 and label_column is not None:
        texts, labels = data
        if len(texts) != len(labels):
            raise DataError(f"{field}: {len(texts)} texts but {len(labels)} labels; expected as many")
        return [{"text": t, "label": y} for t, y in zip(texts, labels, strict=True)]
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas DataFrame
        columns = list(data.columns)
        data = {c: data[c].tolist() for c in columns}
    elif hasattr(data, "column_names"):  # datasets.Dataset
        data = data.to_dict()
    if isinstance(data, dict):
        needed = [text_column] + ([label_column] if label_column else [])
        missing = [c for c in needed if c not in data]
        if missing:
            raise DataError(f"{field}: no column(s) {missing}; columns are {sorted(data)}")
        return [{"text": t, **({"label": y} if label_column else {})}
                for t, y in zip(data[text_column], data[label_column] if label_column else data[text_column],
                                strict=True)]
    if label_column is None and isinstance(data, (list, tuple)):
        return [{"text": t} for t in data]
    raise DataError(f"{field}: expected a list of texts{' and labels' if label_column else ''}, a pandas "
                    f"DataFrame or a datasets.Dataset; got {type(data).__name__}")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    for i, row in enumerate(rows):
        if not isinstance(row["text"], str):
            raise DataError(f"row {i}: text {row['text']!r} is not a string")
        if isinstance(row.get("label"), numbers.Integral) and not isinstance(row["label"], bool):
            row["label"] = int(row["label"])  # numpy integers are not JSON; anything else is checked later
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def prepare_inputs(recipe: Recipe, pool: Any = None, downstream: Any = None,
                   text_column: str = "text", label_column: str = "label") -> Recipe:
    """Write in-memory pool and downstream data into the run folder; return the recipe that reads them."""
    raw = recipe.to_dict()
    inputs = recipe.run_dir / "inputs"
    if pool is not None:
        _write_jsonl(inputs / "pool.jsonl", _rows(pool, text_column, None, "pool"))
        raw["data"].update(pool=str(inputs / "pool.jsonl"), pool_text_column="text", pool_split="train")
    if downstream is not None:
        _write_jsonl(inputs / "downstream.jsonl", _rows(downstream, text_column, label_column, "downstream"))
        raw["data"].update(downstream=str(inputs / "downstream.jsonl"), downstream_text_column="text",
                           downstream_label_column="label", downstream_split="train", downstream_eval_split="")
    return recipe_from_dict(raw)


def base_encoder(recipe: Recipe | None = None, overrides: list[str] | None = None) -> dict:
    """Train (once) the public base encoder of `base.corpus`; returns its base.json with its `folder`.

    Bases are stored by content hash under `base.cache_dir`: the same corpus and settings return the stored one.
    """
    recipe = recipe or Recipe()
    if overrides:
        recipe = recipe_from_dict(apply_overrides(recipe.to_dict(), overrides))
    folder = build_base(resolve(recipe))
    return {**base_info(folder), "folder": str(folder)}


def dataset_inference(run_folder: str | Path, texts: list[str] | None = None,
                      overrides: list[str] | None = None, reference: list[str] | None = None,
                      target: str | Path | Predict | None = None) -> dict:
    """Was this set of texts in a victim's pretraining data? On a finished run folder.

    With `texts` (challenge texts of the run): one p-value per victim (H0: it saw none of them); with `reference`
    too (texts known unused, from the same distribution), the two-sample test against them; with `target` too (a
    classifier's folder or Hub id, or a function texts -> probabilities), one p-value for that model instead.
    Without `texts`: both tests' power and level on the run's own victims, per set size (`attack.dataset_sizes`).
    `overrides` set the test's fields (e.g. ["attack.dataset_statistic=confidence"]); the run's other fields
    must stay as they were.
    """
    recipe = RunDir(run_folder).recipe()
    if overrides:
        recipe = recipe_from_dict(apply_overrides(recipe.to_dict(), overrides))
    recipe = resolve(recipe)
    if reference is not None and texts is None:
        raise ValueError("reference: given without texts; expected the candidate set to test against it")
    if target is not None:
        if texts is None or reference is None:
            raise ValueError("target: given without texts and reference; expected the candidate set and texts "
                             "known unused to test it against")
        return target_set_test(recipe, target if callable(target) else load_target(target), texts, reference)
    return dataset_test(recipe, texts, reference) if texts is not None else dataset_power(recipe)


def run_experiment(pool: Any = None, downstream: Any = None, recipe: Recipe | None = None,
                   overrides: list[str] | None = None, text_column: str = "text", label_column: str = "label",
                   progress: bool = True) -> dict:
    """Every stage on your own data (or the recipe's), skipping finished work; returns the summary."""
    recipe = recipe or Recipe()
    if overrides:
        recipe = recipe_from_dict(apply_overrides(recipe.to_dict(), overrides))
    recipe = resolve(recipe)  # names and options checked before any file is written
    recipe = prepare_inputs(recipe, pool, downstream, text_column, label_column)
    return run_all(recipe, progress=progress)
