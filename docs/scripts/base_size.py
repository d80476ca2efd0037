"""The base encoder's size against downstream accuracy and cost: the curve behind the realistic recipes' base.

    python docs/scripts/base_size.py recipes/real/continued-agnews-full.yaml

For each base size (hidden, layers) and base epochs, trains the base (once: bases are cached by content, so a
rerun only finetunes), then finetunes one classifier on the base itself (no private continued pretraining) per
task and method, and prints base parameters, tokens seen, time, held-out masked-LM loss and eval accuracy next
to TF-IDF + logistic regression on the same split. Run folders go under /tmp/base-size; bases under the
recipe's base cache.
"""

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

from tmi_nlp.config import QueryArguments, load_recipe
from tmi_nlp.models.finetune import finetune_model
from tmi_nlp.models.tokenizer import load_tokenizer
from tmi_nlp.stages.base import base_info
from tmi_nlp.stages.prepare import prepare

SIZES = [(128, 2, 1.0), (256, 4, 1.0), (128, 2, 3.0), (256, 4, 3.0)]  # hidden, layers, base epochs
TASKS = {"agnews": [],
         "sst2": ["data.downstream=../shared/data/sst2/train.tsv", "data.downstream_text_column=sentence"]}
METHODS = [("full", 1e-4), ("full", 3e-4), ("linear", 5e-3)]


def main() -> None:
    recipe_path = sys.argv[1]
    print("| base (hidden x layers, epochs) | parameters | tokens seen | base s | held-out MLM loss | task | "
          "TF-IDF+LR | " + " | ".join(f"{m} lr {lr:g}" for m, lr in METHODS) + " |", flush=True)
    for hidden, layers, epochs in SIZES:
        for task, extra in TASKS.items():
            recipe = load_recipe(recipe_path, [
                f"run.name={task}-{hidden}x{layers}-e{epochs:g}", "run.output_dir=/tmp/base-size",
                f"model.hidden_size={hidden}", f"model.num_hidden_layers={layers}",
                f"model.num_attention_heads={hidden // 64}", f"model.intermediate_size={4 * hidden}",
                f"base.epochs={epochs}", "base.cache_dir=runs/bases", *extra])
            run = prepare(recipe)
            info, reference = base_info(run.base), json.loads(run.reference.read_text())
            tokens, tokenizer = run.tokens(), load_tokenizer(run.tokenizer)
            cells = []
            for method, lr in METHODS:
                start = time.perf_counter()
                args = dataclasses.replace(recipe.finetune, method=method, learning_rate=lr, options={})
                metrics = finetune_model(run.base, tokens["train"], tokens["train_labels"], tokens["eval"],
                                         tokens["eval_labels"], tokens["num_labels"], tokenizer,
                                         args, QueryArguments(),
                                         tokens["challenge"][:8], seed=0, model_index=0,
                                         output=Path(f"/tmp/base-size/ft-{method}"),
                                         queries_path=Path("/tmp/base-size/queries.npy"))
                cells.append(f"{metrics['eval_accuracy']:.3f} ({time.perf_counter() - start:.0f} s)")
                shutil.rmtree(f"/tmp/base-size/ft-{method}")
            print(f"| {hidden} x {layers}, {epochs:g} | {info['parameters'] / 1e6:.1f}M "
                  f"| {info['tokens_seen'] / 1e6:.1f}M | {info['seconds']:.0f} | {info['heldout_mlm_loss']:.3f} "
                  f"| {task} | "
                  f"{reference['tfidf_logistic']:.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
