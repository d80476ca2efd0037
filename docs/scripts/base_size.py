"""The base encoder's size and training against downstream accuracy and cost (docs/experiments.md, base rows).

    python docs/scripts/base_size.py RECIPE [--bases 128x2:1:5e-4,...] [--methods full:1e-3:3,...]
                                            [--tasks agnews,sst2] [--random-init]

Methods are METHOD:LR:EPOCHS (linear-mean: the linear probe on mean-pooled features). Each base is
HIDDENxLAYERS:EPOCHS:LR (trained once: bases are cached by content, so a rerun only
finetunes). On each base (or a randomly initialised encoder of its size, with --random-init) one
classifier is finetuned per task and METHOD:LR:EPOCHS, straight from the base (no private
continued pretraining), and a row prints the base's parameters, tokens seen, time and held-out
masked-LM loss, and each classifier's eval accuracy next to TF-IDF + logistic regression on the
same split. Run folders go under /tmp/base-size; bases under the recipe's base.cache_dir.
"""

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from transformers import BertConfig, BertForMaskedLM

from tmi_nlp.config import QueryArguments, load_recipe
from tmi_nlp.models.finetune import finetune_model, resolve_finetune
from tmi_nlp.models.tokenizer import load_tokenizer
from tmi_nlp.models.training import quiet_transformers
from tmi_nlp.stages.base import base_info
from tmi_nlp.stages.prepare import prepare

TASKS = {"agnews": [],
         "sst2": ["data.downstream=../shared/data/sst2/train.tsv", "data.downstream_text_column=sentence"]}
WORK = Path("/tmp/base-size")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--bases", default="128x2:1:5e-4")
    parser.add_argument("--methods", default="full:1e-3:3,linear:5e-3:3")
    parser.add_argument("--tasks", default="agnews")
    parser.add_argument("--random-init", action="store_true")
    args = parser.parse_args()
    methods = [(m, float(lr), float(e)) for m, lr, e in (x.split(":") for x in args.methods.split(","))]
    print("| base (hidden x layers, epochs, lr) | parameters | tokens seen | base s | held-out MLM loss | task | "
          "TF-IDF+LR | " + " | ".join(f"{m} lr {lr:g}, {e:g} ep" for m, lr, e in methods) + " |", flush=True)
    for spec in args.bases.split(","):
        size, epochs, lr = spec.split(":")
        hidden, layers = map(int, size.split("x"))
        for task in args.tasks.split(","):
            recipe = load_recipe(args.recipe, [
                f"run.name={task}-{spec.replace(':', '-')}", f"run.output_dir={WORK}",
                f"model.hidden_size={hidden}", f"model.num_hidden_layers={layers}",
                f"model.num_attention_heads={max(1, hidden // 64)}", f"model.intermediate_size={4 * hidden}",
                f"base.epochs={epochs}", f"base.learning_rate={lr}", "base.cache_dir=runs/bases", *TASKS[task]])
            run = prepare(recipe)
            info, reference = base_info(run.base), json.loads(run.reference.read_text())
            start_from = run.base
            if args.random_init:
                start_from = WORK / "random-init"
                BertForMaskedLM(BertConfig.from_pretrained(run.base)).save_pretrained(start_from)
            tokens, tokenizer = run.tokens(), load_tokenizer(run.tokenizer)
            cells = []
            for method, rate, method_epochs in methods:
                start = time.perf_counter()
                name, _, pooling = method.partition("-")  # linear-mean: the probe on mean-pooled features
                # The method's own batch size and options (dp: batch 256, its privacy settings), the given rate.
                finetune = resolve_finetune(dataclasses.replace(
                    recipe.finetune, method=name, learning_rate=rate, epochs=method_epochs, batch_size=None,
                    options={"linear": {"pooling": pooling}} if pooling else {}))
                with quiet_transformers():
                    metrics = finetune_model(start_from, tokens["train"], tokens["train_labels"], tokens["eval"],
                                             tokens["eval_labels"], tokens["num_labels"], tokenizer, finetune,
                                             QueryArguments(), tokens["challenge"][:8], seed=0, model_index=0,
                                             output=WORK / "finetuned", queries_path=WORK / "queries.npy")
                cells.append(f"{metrics['eval_accuracy']:.3f} ({time.perf_counter() - start:.0f} s)")
                shutil.rmtree(WORK / "finetuned")
            name = f"{hidden} x {layers}, {float(epochs):g}, {float(lr):g}" + (" (random init)" * args.random_init)
            print(f"| {name} | {info['parameters'] / 1e6:.1f}M | {info['tokens_seen'] / 1e6:.1f}M "
                  f"| {info['seconds']:.0f} | {info['heldout_mlm_loss']:.3f} | {task} "
                  f"| {reference['tfidf_logistic']:.3f} | "
                  + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
