"""The TMI stage: batched per-point metaclassifiers vs the one-at-a-time reference loop, same tensor.

    python benchmarks/attack_speed.py [--models 32] [--points 1000] [--queries 8] [--classes 4] [--ref-pairs 24]

Times every attack on a planted query tensor [models, points, A, C], each in a fresh process
(so its peak memory is its own), the metaclassifiers with the C kernel and with the batched torch
code, and the reference loop (`attacks/reference.py`: one
`torch.nn` MLP per (victim, point)) on `--ref-pairs` pairs, extrapolated to all of them.
"""

import argparse
import os

from common import run_child, table

CHILD = r"""
import json, os, time, numpy as np, torch
torch.set_num_threads({threads})
from tmi_nlp.attacks import run_attack, reference, batched_mlp
from tmi_nlp.config import AttackArguments
rng = np.random.default_rng(0)
n, k, a, c = {models}, {points}, {queries}, {classes}
labels = rng.random((n, k)) < 0.5
logits = rng.normal(size=(1, k, 1, c)) * 2 + labels[:, :, None, None] * rng.normal(size=(1, k, 1, c)) \
    + rng.normal(size=(n, k, a, c))
queries = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
name = "{name}".split("[")[0]
start = time.perf_counter()
if name == "reference":
    pairs = {ref_pairs}
    sub_points = max(1, pairs // n)
    reference.per_point_loop(queries[:, :sub_points], labels[:, :sub_points], batched_mlp.MLPSettings(), seed=0)
    elapsed = (time.perf_counter() - start) / (n * sub_points) * n * k
else:
    run_attack(name, queries, labels, AttackArguments(backend="{backend}"), seed=0)
    elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--ref-pairs", type=int, default=64, help="(victim, point) pairs the reference loop trains")
    parser.add_argument("--attacks", default="lira_online,lira_shrunk,rmia,calibrated_confidence,shared_centred,mlp,"
                                             "mlp_paper,mlp_calibrated,shared_calibrated,shared_combined,shared_confidence,"
                                             "shared_direction,shared_centred[torch],mlp[torch]",
                        help="attack names; NAME[torch] trains the metaclassifiers with the batched torch code "
                             "instead of the C kernel")
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    shape = dict(models=args.models, points=args.points, queries=args.queries, classes=args.classes,
                 ref_pairs=args.ref_pairs, threads=threads)
    results = {}
    # Smallest first: a child's peak memory is read as the largest so far.
    for name in ["reference", *args.attacks.split(",")]:
        backend = "torch" if name.endswith("[torch]") else "kernel"
        results[name] = run_child(CHILD.format(name=name, backend=backend, **shape))
    loop = results["reference"][0]["seconds"]
    rows = [[name, f"{r['seconds']:.1f}" + (" (extrapolated)" if name == "reference" else ""),
             f"{loop / r['seconds']:.0f}x" if name != "reference" else "1x", f"{mem:.0f}"]
            for name, (r, mem) in results.items()]
    print(f"{args.models} victims x {args.points} points, A={args.queries}, C={args.classes}; {threads} threads; "
          f"per-point MLP {args.models - 1} shadows x A examples, 20 epochs")
    print(table(rows, ["attack", "seconds", "vs one-at-a-time loop", "peak RSS MiB"]))


if __name__ == "__main__":
    main()
