"""Finetuning throughput: tmi-nlp's full finetuning vs a plain HF Trainer run, same model, data and epochs.

    python benchmarks/finetune_throughput.py [--csv FILE --text-column COL --label-column COL]
                                             [--hidden 256] [--layers 4] [--length 64] [--examples 2000]

The plain baseline is what transformers' run_glue.py does by default: texts padded to the maximum
length, fp32, one process using every core. Then tmi-nlp's changes in turn: dynamic padding (each
batch padded to its longest text), length-grouped batches (train_sampling_strategy: group_by_length), bf16
autocast (finetune.precision), and the whole of it as a run executes it (W worker processes of 1
thread, each finetuning its own model). Tokens/s counts real tokens (no padding) over one epoch of
training; the query tensor of the challenge points is not included. Default data: the built-in
synthetic task; the figures in docs/performance.md use AG News (--csv ../shared/data/ag_news/train_sample.csv
--text-column description). Nothing here is asserted: the figures are the point.
"""

import argparse
import os

from common import run_children, table

CHILD = r"""
import json, sys, time, torch
from transformers import BertForSequenceClassification, Trainer, TrainingArguments
from tmi_nlp.config import ModelArguments
from tmi_nlp.models.pretrain import bert_config
from tmi_nlp.models.tokenizer import train_wordpiece
from tmi_nlp.models.training import quiet_trainer, training_arguments
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
if cfg["csv"]:
    import pandas
    frame = pandas.read_csv(cfg["csv"]).dropna(subset=[cfg["text_column"]])
    texts = frame[cfg["text_column"]].astype(str).tolist()[: cfg["examples"]]
    labels = frame[cfg["label_column"]].tolist()[: cfg["examples"]]
    classes = sorted(set(labels)); labels = [classes.index(y) for y in labels]
else:
    from tmi_nlp.data.synthetic import synthetic_downstream
    texts, labels = synthetic_downstream(cfg["examples"], 0)
tok = train_wordpiece(texts, 8000)
model_args = ModelArguments(hidden_size=cfg["hidden"], num_hidden_layers=cfg["layers"],
                            num_attention_heads=max(1, cfg["hidden"] // 64), intermediate_size=4 * cfg["hidden"],
                            max_length=cfg["length"])
config = bert_config(model_args, tok, num_labels=max(labels) + 1)
torch.manual_seed(0)
model = BertForSequenceClassification(config)
if cfg["plain"]:
    enc = tok(texts, padding="max_length", truncation=True, max_length=cfg["length"])
    data = [{"input_ids": i, "attention_mask": m, "labels": y}
            for i, m, y in zip(enc["input_ids"], enc["attention_mask"], labels)]
    args = TrainingArguments("/tmp/bench-finetune", per_device_train_batch_size=32, num_train_epochs=1,
                             learning_rate=1e-4, save_strategy="no", report_to="none", disable_tqdm=True,
                             use_cpu=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=data)
else:
    from transformers import DataCollatorWithPadding
    ids = tok(texts, truncation=True, max_length=cfg["length"])["input_ids"]
    data = [{"input_ids": i, "labels": y} for i, y in zip(ids, labels)]
    args = training_arguments("/tmp/bench-finetune", epochs=1.0, learning_rate=1e-4, batch_size=32, weight_decay=0.0,
                              warmup_ratio=0.0, precision=cfg["precision"], seed=0,
                              trainer={"train_sampling_strategy": cfg["sampling"]})
    trainer = quiet_trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok))
start = time.perf_counter()
trainer.train()
elapsed = time.perf_counter() - start
real = sum(min(len(x), cfg["length"]) for x in tok(texts, truncation=True, max_length=cfg["length"])["input_ids"])
print(json.dumps({"tokens_per_s": real / elapsed, "seconds": elapsed}))
"""


def run(cfg: dict, workers: int = 1) -> dict:
    return {"tokens_per_s": sum(r["tokens_per_s"] for r in run_children(CHILD, cfg, workers))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default="")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--length", type=int, default=64)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    base = {"csv": args.csv, "text_column": args.text_column, "label_column": args.label_column,
            "examples": args.examples, "hidden": args.hidden, "layers": args.layers, "length": args.length,
            "plain": False, "precision": "fp32", "sampling": "random", "threads": cores}
    variants = [
        ("plain HF Trainer (padded to max length, fp32, 1 process)", dict(plain=True), 1),
        ("+ dynamic padding", {}, 1),
        ("+ length-grouped batches", dict(sampling="group_by_length"), 1),
        ("+ bf16 autocast", dict(sampling="group_by_length", precision="bf16"), 1),
        (f"{cores} worker processes x 1 thread, grouped, fp32",
         dict(sampling="group_by_length", precision="fp32", threads=1), cores),
        (f"{cores} worker processes x 1 thread, grouped, bf16",
         dict(sampling="group_by_length", precision="bf16", threads=1), cores),
    ]
    rows, plain = [], None
    for name, cfg, workers in variants:
        r = run({**base, **cfg}, workers)
        plain = plain or r["tokens_per_s"]
        rows.append([name, f"{r['tokens_per_s']:,.0f}", f"{r['tokens_per_s'] / plain:.2f}x"])
    print(f"BERT hidden {args.hidden}, {args.layers} layers, length <= {args.length}, batch 32, 1 epoch of "
          f"{args.examples} examples ({args.csv or 'synthetic'}); {cores} cores")
    print(table(rows, ["configuration", "tokens/s", "vs plain"]))


if __name__ == "__main__":
    main()
