"""Why some victims leak less than others: per-victim AUC beside what each victim's training did (docs/RESULTS.md).

    python docs/scripts/victim_leakage.py RUN [--attack shared_confidence]

On a finished run, per victim: the AUC of the attack's stored scores over that victim's challenge points, the
white-box reference's (`mlm_loss_lira`: how much the pretrained encoder memorised, before finetuning), the
finetuned classifier's eval accuracy and final training loss, how far finetuning moved the encoder (relative L2
distance of the encoder's weights from the pretrained ones), and its mean top-class probability on the challenge
queries. Then the Spearman correlation of the attack's per-victim AUC with each.
"""

import argparse

import numpy as np
import torch
from safetensors.torch import load_file
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from tmi_nlp.store import QUERIES, RunDir


def encoder_change(run: RunDir, i: int) -> float:
    """||encoder after finetuning - before|| / ||before||, over the weights both checkpoints name alike."""
    before = {k.removeprefix("bert."): v for k, v in load_file(run.pretrained(i) / "model.safetensors").items()}
    after = {k.removeprefix("bert.").removeprefix("base_model.model.bert."): v
             for k, v in load_file(run.finetuned(i) / "model.safetensors").items()}
    shared = [k for k in before if k in after and before[k].shape == after[k].shape and "encoder" in k]
    if not shared:
        return float("nan")
    diff = torch.sqrt(sum(((after[k].float() - before[k].float()) ** 2).sum() for k in shared))
    norm = torch.sqrt(sum((before[k].float() ** 2).sum() for k in shared))
    return float(diff / norm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--attack", default="shared_confidence")
    args = parser.parse_args()
    run = RunDir(args.run)
    n = run.recipe().run.num_models
    labels = run.load_plan().labels()
    scores = np.load(run.attack(args.attack) / "scores.npy")
    whitebox = np.load(run.attack("mlm_loss_lira") / "scores.npy")
    metrics = run.finetune_metrics(n)
    queries = np.asarray(run.stacked(QUERIES, n))
    columns = {
        f"{args.attack} AUC": [roc_auc_score(labels[i], scores[i]) for i in range(n)],
        "white-box AUC": [roc_auc_score(labels[i], whitebox[i]) for i in range(n)],
        "eval accuracy": [m["eval_accuracy"] for m in metrics],
        "train loss": [m["train_loss"] for m in metrics],
        "encoder change": [encoder_change(run, i) for i in range(n)],
        "mean top prob": list(queries.max(-1).mean((1, 2))),
    }
    names = list(columns)
    print("| victim | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for i in np.argsort(columns[names[0]]):
        print(f"| {i} | " + " | ".join(f"{columns[k][i]:.3f}" for k in names) + " |")
    print(f"\nSpearman correlation with the per-victim {names[0]} over {n} victims:")
    for k in names[1:]:
        rho, p = spearmanr(columns[names[0]], columns[k], nan_policy="omit")
        print(f"  {k:<15} rho {rho:+.2f} (p {p:.3f})")


if __name__ == "__main__":
    main()
