"""Finetune models 0 and 1 of a finished run under several settings; print downstream accuracy (and epsilon).

    python docs/scripts/finetune_scan.py runs/demo dp        # the DP-SGD rows of docs/experiments.md
    python docs/scripts/finetune_scan.py runs/demo methods   # learning rates of full and LoRA

Writes only under /tmp/finetune-scan; the run folder is read, never changed.
"""

import json
import sys
import time
from pathlib import Path

from tmi_nlp.config import FinetuneArguments, QueryArguments
from tmi_nlp.models.finetune import finetune_model
from tmi_nlp.models.tokenizer import load_tokenizer

SETTINGS = {
    "dp": [("linear, batch 32, 3 epochs, lr 5e-3", dict(method="linear"))] + [
        (f"dp-linear, batch {b}, {e} epochs, lr {lr:g}",
         dict(method="dp", options={"dp": {"parameters": "linear"}}, batch_size=b, epochs=float(e), learning_rate=lr))
        for b, e, lr in [(64, 3, 5e-3), (256, 10, 2e-2), (256, 10, 5e-3), (512, 20, 2e-2)]],
    "methods": [(f"{m}, lr {lr:g}", dict(method=m, learning_rate=lr))
                for m, lr in [("lora", 5e-3), ("lora", 2e-2), ("full", 5e-4), ("full", 1e-4)]],
}


def main() -> None:
    run, which = Path(sys.argv[1]), sys.argv[2]
    tokenizer = load_tokenizer(run / "tokenizer")
    tokens = json.loads((run / "data" / "tokens.json").read_text())
    for name, kwargs in SETTINGS[which]:
        for i in (0, 1):
            start = time.perf_counter()
            metrics = finetune_model(run / "models" / str(i) / "pretrained", tokens["train"], tokens["train_labels"],
                                     tokens["eval"], tokens["eval_labels"], tokens["num_labels"], tokenizer,
                                     FinetuneArguments(**kwargs), QueryArguments(), tokens["challenge"], seed=i,
                                     model_index=i, output=Path(f"/tmp/finetune-scan/{i}"),
                                     queries_path=Path("/tmp/finetune-scan/queries.npy"))
            epsilon = f"  epsilon {metrics['epsilon']:.2f}" if "epsilon" in metrics else ""
            print(f"{name:44s} model {i}: accuracy {metrics['eval_accuracy']:.3f}{epsilon}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
