"""Finetuning speed per method on a real encoder's shapes: tmi-nlp's code path against a plain HF Trainer run.

    make minilm
    python benchmarks/finetune_methods.py --checkpoint checkpoints/all-MiniLM-L6-v2 \
        --csv ../shared/data/ag_news/train_sample.csv --text-column description [--examples 1000] [--epochs 2]

The plain baseline is what a user writes from transformers' and peft's examples: texts padded to
`--length`, fp32, one process using every core; `full` trains BertForSequenceClassification, `lora`
wraps it with peft (r 8 on query and value, the classifier trained), `linear` freezes the encoder
and trains the classifier, reading every text through the encoder on every epoch. tmi-nlp's side is
the method's own `build` and `trainer` (dynamic padding, length-grouped batches; the linear probe
reads each text once), first in one process, then as a run executes it: W worker processes of 1
thread, each finetuning its own model. Time covers building the model (the probe's pooled states)
and training for `--epochs`; tokens/s counts real tokens over all epochs. Nothing is asserted.
"""

import argparse
import os

import torch
from common import cpu_name, run_children, table

CHILD = r"""
import json, sys, time, torch
import pandas
from transformers import BertForSequenceClassification, Trainer, TrainingArguments
from tmi_nlp.config import FinetuneArguments
from tmi_nlp.models.finetune import get_method, resolve_finetune
from tmi_nlp.models.tokenizer import load_tokenizer
from tmi_nlp.models.training import training_arguments
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
frame = pandas.read_csv(cfg["csv"]).dropna(subset=[cfg["text_column"]])
texts = frame[cfg["text_column"]].astype(str).tolist()[: cfg["examples"]]
labels = frame[cfg["label_column"]].tolist()[: cfg["examples"]]
classes = sorted(set(labels)); labels = [classes.index(y) for y in labels]
tok = load_tokenizer(cfg["checkpoint"])
ids = tok(texts, truncation=True, max_length=cfg["length"])["input_ids"]
torch.manual_seed(0)
start = time.perf_counter()
if cfg["plain"]:
    model = BertForSequenceClassification.from_pretrained(cfg["checkpoint"], num_labels=len(classes))
    if cfg["method"] == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"],
                                                 modules_to_save=["classifier"]))
    if cfg["method"] == "linear":
        model.bert.requires_grad_(False)
    enc = tok(texts, padding="max_length", truncation=True, max_length=cfg["length"])
    data = [{"input_ids": i, "attention_mask": m, "labels": y}
            for i, m, y in zip(enc["input_ids"], enc["attention_mask"], labels)]
    args = TrainingArguments("/tmp/bench-methods", per_device_train_batch_size=32, num_train_epochs=cfg["epochs"],
                             learning_rate=1e-4, save_strategy="no", report_to="none", disable_tqdm=True,
                             use_cpu=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=data)
else:
    fargs = resolve_finetune(FinetuneArguments(method=cfg["method"], epochs=cfg["epochs"], batch_size=32))
    method = get_method(cfg["method"])
    model = method.build(cfg["checkpoint"], len(classes), ids, tok, fargs)
    args = training_arguments("/tmp/bench-methods", epochs=cfg["epochs"], learning_rate=fargs.learning_rate,
                              batch_size=32, weight_decay=0.0, warmup_ratio=0.0, precision="fp32", seed=0, trainer={},
                              group_by_length=True)
    trainer = method.trainer(model, args, [{"input_ids": i, "labels": y} for i, y in zip(ids, labels)], tok, [],
                             fargs, 0)
trainer.train()
elapsed = time.perf_counter() - start
print(json.dumps({"tokens_per_s": sum(map(len, ids)) * cfg["epochs"] / elapsed, "seconds": elapsed}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--csv", required=True)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--methods", default="full,lora,linear")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    base = {"checkpoint": args.checkpoint, "csv": args.csv, "text_column": args.text_column,
            "label_column": args.label_column, "examples": args.examples, "epochs": args.epochs,
            "length": args.length, "threads": cores}
    rows = []
    for method in args.methods.split(","):
        plain = None
        for name, cfg, workers in [("plain HF Trainer (padded, 1 process)", dict(plain=True), 1),
                                   ("tmi-nlp, 1 process", dict(plain=False), 1),
                                   (f"tmi-nlp, {cores} processes x 1 thread", dict(plain=False, threads=1), cores)]:
            results = run_children(CHILD, {**base, **cfg, "method": method}, workers)
            speed = sum(r["tokens_per_s"] for r in results)
            plain = plain or speed
            rows.append([method, name, f"{speed:,.0f}", f"{speed / plain:.2f}x"])
    print(f"{args.checkpoint}, length <= {args.length}, batch 32, {args.epochs:g} epochs of {args.examples} texts "
          f"({args.csv}); {cores} cores ({cpu_name()}, {torch.backends.cpu.get_cpu_capability()}), fp32")
    print(table(rows, ["method", "configuration", "tokens/s", "vs plain"]))


if __name__ == "__main__":
    main()
