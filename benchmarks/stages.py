"""Wall time, peak memory and query throughput of each stage of a small run, each in a fresh process.

    python benchmarks/stages.py [--models 4] [--points 200] [--queries 8]

Runs the demo recipe shrunk to `--models` models in a scratch folder: prepare, pretrain (one
model), signals, finetune with queries (one model), attack; and measures queries per second of
a finetuned classifier (softmax over every augmented challenge text).
"""

import argparse
import tempfile

from common import run_child, table

STAGE = r"""
import json, time, torch
torch.set_num_threads(1)
from tmi_nlp.stages import attack, prepare, train
from tmi_nlp.config import Recipe, recipe_from_dict, apply_overrides
recipe = recipe_from_dict(apply_overrides(Recipe().to_dict(), {overrides!r}))
start = time.perf_counter()
stage = "{stage}"
if stage == "prepare":
    prepare.prepare(recipe)
elif stage in ("pretrain", "signals", "finetune"):
    train.train_models(recipe, stages=(stage,), models=[0], progress=False)
elif stage == "attack":
    attack.attack(recipe)
elif stage == "queries":
    import numpy as np
    from tmi_nlp.callbacks import predict_proba, query_ids
    from tmi_nlp.models.finetune import load_finetuned
    from tmi_nlp.models.tokenizer import load_tokenizer
    from tmi_nlp.store import RunDir
    run = RunDir(recipe.run_dir)
    tok = load_tokenizer(run.tokenizer)
    tokens = run.tokens()
    q = recipe.query
    texts = query_ids(tokens["challenge"], tok, num_queries=q.num_queries, augmentation=q.augmentation,
                      rate=q.rate, include_original=q.include_original, seed=(0,))
    model = load_finetuned(run.finetuned(0))
    start = time.perf_counter()
    predict_proba(model, texts, tok.pad_token_id, q.batch_size)
    elapsed = time.perf_counter() - start
    print(json.dumps({{"seconds": elapsed, "queries_per_s": len(texts) / elapsed}}))
    raise SystemExit
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--queries", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        overrides = [f"run.output_dir={root}", f"run.num_models={args.models}", f"run.num_points={args.points}",
                     f"query.num_queries={args.queries}", "attack.baselines=[]"]
        rows = []
        for stage in ("prepare", "pretrain", "signals", "finetune", "queries"):
            result, mem = run_child(STAGE.format(overrides=overrides, stage=stage))
            extra = f"{result['queries_per_s']:,.0f} queries/s" if "queries_per_s" in result else ""
            rows.append([stage + (" (1 model)" if stage in ("pretrain", "signals", "finetune") else ""),
                         f"{result['seconds']:.1f}", f"{mem:.0f}", extra])
        # The attack needs every model: train the rest, then time the attack stage alone.
        run_child(STAGE.format(overrides=overrides, stage="prepare").replace(
            "prepare.prepare(recipe)", "train.train_models(recipe, progress=False)"))
        result, mem = run_child(STAGE.format(overrides=overrides, stage="attack"))
        rows.append([f"attack (mlp + shared_centred, {args.models} victims)", f"{result['seconds']:.1f}", f"{mem:.0f}",
                     ""])
    print(f"demo recipe with {args.models} models, {args.points} points, A={args.queries}; one thread per process")
    print(table(rows, ["stage", "seconds", "peak RSS MiB (max so far)", ""]))


if __name__ == "__main__":
    main()
