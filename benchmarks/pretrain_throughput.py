"""Shadow pretraining throughput: tmi-nlp's masked-LM training vs a plain HF Trainer run, same model and data.

    python benchmarks/pretrain_throughput.py [--steps 60] [--hidden 128] [--layers 2] [--length 64]
    python benchmarks/pretrain_throughput.py --checkpoint checkpoints/all-MiniLM-L6-v2   # a real encoder's shapes

Prints tokens/s of: the plain baseline (BertForMaskedLM, full-vocabulary head, fp32, one process
using every core), each of tmi-nlp's changes in turn (masked-positions-only head; W worker processes of
1 thread, each training its own model, as the run executes it), then the same with `precision: bf16`
(autocast: faster on CPUs with native bf16, about 10x slower on CPUs without), with ratios and model
FLOP utilisation against the CPU's measured matmul peak. With --checkpoint, the model is that checkpoint (its
weights, sizes and tokenizer, a masked-LM head built where it has none) and the texts are public text.
Nothing here is asserted: the figures are the point.
"""

import argparse
import os

import torch
from common import cpu_name, matmul_peak_gflops, run_children, table

CHILD = r"""
import json, sys, time, torch
from transformers import BertForMaskedLM, DataCollatorForLanguageModeling
from tmi_nlp.config import ModelArguments, PretrainArguments
from tmi_nlp.data.synthetic import synthetic_pool
from tmi_nlp.models.pretrain import BertForMaskedLMSparse, bert_config
from tmi_nlp.models.tokenizer import train_wordpiece
from tmi_nlp.models.training import quiet_trainer, training_arguments
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
texts = synthetic_pool(max(2000, 32 * cfg["steps"]), 0)
cls = BertForMaskedLMSparse if cfg["sparse"] else BertForMaskedLM
if cfg["checkpoint"]:
    from tmi_nlp.models.tokenizer import load_tokenizer
    tok = load_tokenizer(cfg["checkpoint"])
    torch.manual_seed(0)
    model = cls.from_pretrained(cfg["checkpoint"], use_safetensors=True)
else:
    tok = train_wordpiece(texts, 4000)
    model_args = ModelArguments(hidden_size=cfg["hidden"], num_hidden_layers=cfg["layers"], num_attention_heads=2,
                                intermediate_size=4 * cfg["hidden"], max_length=cfg["length"])
    model = cls(bert_config(model_args, tok))
ids = tok(texts, truncation=True, max_length=cfg["length"])["input_ids"]
args = training_arguments("/tmp/bench-pretrain", epochs=1, learning_rate=1e-3, batch_size=32, weight_decay=0.01,
                          warmup_ratio=0.0, precision="bf16" if cfg["bf16"] else "fp32", seed=0,
                          trainer={"max_steps": cfg["steps"]})
trainer = quiet_trainer(model=model, args=args, train_dataset=[{"input_ids": x} for x in ids],
                        data_collator=DataCollatorForLanguageModeling(tok, mlm_probability=0.15))
start = time.perf_counter()
trainer.train()
elapsed = time.perf_counter() - start
tokens = sum(len(x) for x in ids[: 32 * cfg["steps"]])
params = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n and "cls.predictions" not in n)
h, v, layers = model.config.hidden_size, len(tok), model.config.num_hidden_layers
# Training FLOPs per token: 6 x encoder weights + attention (6 x 2 x L x h per layer) + the head
# (transform h x h on every projected token, h x V projection on 15% or on every token).
head_tokens = 0.15 if cfg["sparse"] else 1.0
flops = 6 * params + 12 * layers * cfg["length"] * h + 6 * head_tokens * (h * h + h * v)
print(json.dumps({"tokens_per_s": tokens / elapsed, "flops_per_token": flops,
                  "bf16": cfg["bf16"]}))
"""


def run(cfg: dict, workers: int = 1) -> dict:
    results = run_children(CHILD, cfg, workers)
    return {"tokens_per_s": sum(r["tokens_per_s"] for r in results), "flops_per_token": results[0]["flops_per_token"],
            "bf16": results[0]["bf16"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--checkpoint", default="", help="a checkpoint folder: its sizes, weights and tokenizer")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    base = {"steps": args.steps, "hidden": args.hidden, "layers": args.layers, "length": args.length,
            "checkpoint": args.checkpoint}
    variants = [
        ("plain HF Trainer MLM (full head, fp32, 1 process)", dict(sparse=False, bf16=False, threads=cores), 1),
        ("+ masked-positions-only head", dict(sparse=True, bf16=False, threads=cores), 1),
        (f"+ {cores} worker processes x 1 thread (as runs execute)", dict(sparse=True, bf16=False, threads=1), cores),
    ]
    native_bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if native_bf16:  # emulated bf16 is ~10x slower (docs/performance.md): not worth the minutes where it is
        variants.append(("  the same with precision: bf16", dict(sparse=True, bf16=True, threads=1), cores))
    peak32 = matmul_peak_gflops(cores)
    peak16 = matmul_peak_gflops(cores, dtype=torch.bfloat16)
    rows, plain = [], None
    for name, cfg, workers in variants:
        r = run({**base, **cfg}, workers)
        plain = plain or r["tokens_per_s"]
        peak = peak16 if r["bf16"] else peak32
        mfu = r["tokens_per_s"] * r["flops_per_token"] / 1e9 / peak
        rows.append([name, f"{r['tokens_per_s']:,.0f}", f"{r['tokens_per_s'] / plain:.2f}x", f"{100 * mfu:.1f}%"])
    shape = args.checkpoint or f"BERT hidden {args.hidden}, {args.layers} layers"
    print(f"{shape}, length <= {args.length}, batch 32, {args.steps} steps; {cores} cores ({cpu_name()}, "
          f"{torch.backends.cpu.get_cpu_capability()}); measured matmul peak {peak32:.0f} GFLOP/s fp32, "
          f"{peak16:.0f} GFLOP/s bf16")
    print(table(rows, ["configuration", "tokens/s", "vs plain", "MFU"]))
    if not native_bf16:
        print("bf16: not native on this CPU (emulated, ~10x slower than fp32): not measured; fp32 is the default")


if __name__ == "__main__":
    main()
