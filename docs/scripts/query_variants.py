"""Which queries carry the most membership signal: re-query a finished run's finetuned models, then attack.

    python docs/scripts/query_variants.py RUN [--variants delete:0.05:8,mask:0.15:8,...] [--attacks ...]

Each variant is augmentation:rate:A (A queries per point, the first unaugmented, as `query.include_original`).
The finetuned classifiers are reloaded from RUN/models/<i>/finetuned and queried exactly as the QueryCallback
does at train end, with the same per-model seed, so the run's own setting reproduces its stored tensor (checked
and printed); every other variant asks the same victims different questions. Tensors are cached under
RUN/query_variants/. No training: the table isolates the queries from the victims.
"""

import argparse

import numpy as np

from tmi_nlp.atomic import atomic_save_npy
from tmi_nlp.attacks import run_attack
from tmi_nlp.callbacks import predict_proba, query_ids
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.models.finetune import load_finetuned
from tmi_nlp.models.tokenizer import load_tokenizer
from tmi_nlp.stages.train import model_seed
from tmi_nlp.store import QUERIES, RunDir

ATTACKS = ("shared_confidence,shared_calibrated,stability,entropy,lira_offline_global_var,lira_online_global_var,"
           "rmia_offline")


def requery(run: RunDir, augmentation: str, rate: float, num_queries: int) -> np.ndarray:
    """[models, points, A, C] softmax vectors of every finetuned model on the variant's queries (cached)."""
    path = run.root / "query_variants" / f"{augmentation}-{rate:g}-{num_queries}.npy"
    if path.exists():
        return np.load(path)
    recipe, tokens = run.recipe(), run.tokens()
    tokenizer = load_tokenizer(run.tokenizer)
    out = []
    for i in range(recipe.run.num_models):
        ids = query_ids(tokens["challenge"], tokenizer, num_queries=num_queries, augmentation=augmentation,
                        rate=rate, include_original=recipe.query.include_original,
                        seed=(model_seed(recipe, i), 3, i))
        probs = predict_proba(load_finetuned(run.finetuned(i)), ids, tokenizer.pad_token_id, recipe.query.batch_size)
        out.append(probs.reshape(len(tokens["challenge"]), num_queries, -1))
    path.parent.mkdir(exist_ok=True)
    atomic_save_npy(path, np.stack(out))
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--variants", default="delete:0.05:8,delete:0.05:32,mask:0.05:8,mask:0.15:8,mask:0.15:32")
    parser.add_argument("--attacks", default=ATTACKS)
    args = parser.parse_args()
    run = RunDir(args.run)
    recipe = run.recipe()
    labels = run.load_plan().labels()
    stored = np.asarray(run.stacked(QUERIES, recipe.run.num_models))
    q = recipe.query
    own = requery(run, q.augmentation, q.rate, q.num_queries)
    print(f"stored tensor reproduced by re-querying ({q.augmentation}:{q.rate:g}:{q.num_queries}): "
          f"max |difference| {np.abs(own - stored).max():.2e}\n")
    names = args.attacks.split(",")
    print(f"| queries | {' | '.join(names)} |\n|---|{'---|' * len(names)}")
    for variant in args.variants.split(","):
        augmentation, rate, num_queries = variant.split(":")
        queries = requery(run, augmentation, float(rate), int(num_queries))
        cells = []
        for name in names:
            m = membership_metrics(labels, run_attack(name, queries, labels, recipe.attack, recipe.run.seed))
            cells.append(f"{m['auc']:.3f} ({100 * m['tpr@0.001']:.1f}% / {100 * m['tpr@0.01']:.1f}%)")
        print(f"| {variant} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
