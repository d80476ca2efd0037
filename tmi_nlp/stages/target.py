"""Attack a model tmi-nlp did not train: score candidate texts against a given finetuned classifier.

The zoo is a finished run whose challenge points are the candidates (`data.challenge`) and whose
shadows were trained to mimic the target (same kind of pretraining data, downstream task and
finetuning). The target is queried on the same kind of augmentations as the shadows, then
stacked as row N after the N shadows, which attack it with separate roles: every attack is
trained on exactly the N shadows with their true labels, and the target's label row is never
read. The decision threshold at a chosen false-positive rate comes from the shadows' own
leave-one-out scores of non-members. Each attack's scores are kept under targets/<name>/<attack>/
(a rerun skips them, unless the target answered differently).

    predict = load_target("path/or/hub-id")        # or any callable: list[str] -> probabilities [n, C]
    result = attack_target(recipe, predict, fpr=0.01)
"""

import csv
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tmi_nlp.atomic import atomic_save_npy, atomic_write_json, atomic_write_text
from tmi_nlp.attacks import READS
from tmi_nlp.attacks.features import Roles
from tmi_nlp.callbacks import query_ids
from tmi_nlp.config import Recipe, RecipeError
from tmi_nlp.models.tokenizer import load_tokenizer
from tmi_nlp.stages.attack import attack, attack_loop
from tmi_nlp.stages.prepare import open_run
from tmi_nlp.store import QUERIES, RunDir

Predict = Callable[[list[str]], np.ndarray]


def load_target(spec: str | Path, batch_size: int = 64) -> Predict:
    """A Hugging Face sequence classifier (local folder or Hub id; safetensors, no remote code) as a function."""
    spec = str(spec)
    local = spec.startswith((".", "/", "~")) or Path(spec).exists()
    if local and not Path(spec).expanduser().is_dir():
        raise RecipeError(f"--target = {spec!r}: no such folder; expected a finetuned classifier's folder or a Hub id")
    source = str(Path(spec).expanduser()) if local else spec
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(source, trust_remote_code=False,
                                                                   use_safetensors=True).eval()
    except (OSError, ValueError) as err:  # missing files, no safetensors weights, an unreachable Hub
        raise RecipeError(f"--target = {spec!r}: cannot be loaded as a safetensors sequence classifier "
                          f"({err})") from err

    @torch.no_grad()
    def predict(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, return_tensors="pt")
            out.append(torch.softmax(model(**batch).logits.float(), -1).numpy())
        return np.concatenate(out)

    return predict


def query_texts(run: RunDir, recipe: Recipe, seed: tuple[int, ...]) -> list[str]:
    """The A augmented queries of every challenge point, as text (the target has its own tokenizer)."""
    tokenizer = load_tokenizer(run.tokenizer)
    q = recipe.query
    ids = query_ids(run.tokens()["challenge"], tokenizer, num_queries=q.num_queries, augmentation=q.augmentation,
                    rate=q.rate, include_original=q.include_original, seed=seed)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def attack_target(recipe: Recipe, predict: Predict, name: str = "target", fpr: float = 0.01,
                  attacks: list[str] | None = None) -> dict:
    """Scores and decisions for every candidate; writes targets/<name>/{queries.npy,scores.csv,result.json} and
    targets/<name>/<attack>/scores.npy."""
    if not 0 < fpr < 1:
        raise ValueError(f"fpr = {fpr!r}: expected a number in (0, 1)")
    run, recipe = open_run(recipe)
    run.verify(recipe.run.num_models)
    plan = run.load_plan()
    n = recipe.run.num_models
    shadow_queries = run.stacked(QUERIES, n)
    k, a, c = shadow_queries.shape[1:]
    out = run.root / "targets" / name
    texts = query_texts(run, recipe, seed=(recipe.run.seed, 9, n))
    probs = np.asarray(predict(texts), dtype=np.float32)
    if probs.shape != (k * a, c):
        raise ValueError(f"target {name!r}: returned probabilities of shape {probs.shape}; expected ({k * a}, {c}) "
                         f"({k} candidates x {a} queries, {c} classes like the shadows)")
    if (out / "queries.npy").exists() and not np.array_equal(np.load(out / "queries.npy"), probs.reshape(k, a, c)):
        for stale in out.iterdir():  # another model under the same name: its scores are recomputed
            if stale.is_dir():
                shutil.rmtree(stale)
    atomic_save_npy(out / "queries.npy", probs.reshape(k, a, c))
    queries = np.concatenate([shadow_queries, probs.reshape(1, k, a, c)])
    # The shadows attack the target (separate roles): its label row is never read; any value will do.
    labels = np.concatenate([plan.labels(), np.zeros((1, k), bool)])
    shadow_results = attack(recipe)  # the shadows' own leave-one-out scores calibrate the thresholds
    names = [x for x in (attacks or recipe.attack.names) if READS[x] == QUERIES]
    attack_loop(out, names, lambda reads: queries, labels, Roles.separate(n, 1), recipe, grade=False)
    columns, result = {}, {"target": name, "fpr": fpr, "attacks": {}}
    for attack_name in names:
        score = np.load(out / attack_name / "scores.npy")[0]
        shadow_scores = np.load(run.attack(attack_name) / "scores.npy")
        threshold = float(np.quantile(shadow_scores[~plan.labels()], 1 - fpr))
        columns[attack_name] = score
        columns[f"{attack_name}_member"] = score > threshold
        result["attacks"][attack_name] = {"threshold": threshold, "members": int((score > threshold).sum()),
                                          "shadow_auc": shadow_results[attack_name]["auc"]}
    candidates = [plan.pool[j] for j in plan.challenge]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", *columns])
    for i, text in enumerate(candidates):
        writer.writerow([text, *[f"{v[i]:.6g}" if v.dtype != bool else str(bool(v[i])) for v in columns.values()]])
    atomic_write_text(out / "scores.csv", buffer.getvalue())
    atomic_write_json(out / "result.json", result)
    result["scores_csv"] = str(Path(out / "scores.csv"))
    return result
