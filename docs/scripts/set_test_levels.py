"""Why the set test needs a model-level shift in its null, and what other centrings would give (docs/RESULTS.md).

    python docs/scripts/set_test_levels.py RUN [--centre mean|none|median|lower-half] [--sizes 10,50]

On a finished run, with the set test's statistic (`attack.dataset_statistic`, held-out scores as
`tmi-nlp dataset` computes them), prints per victim the variance across its null models of their mean
centred z over their OUT texts, less its own noise (the model-level variance), and the pooled per-text
variance; then, for member, non-member and shuffled-membership control sets drawn as the report draws
them (5 per victim and size), the share of p-values below 0.01 / 0.05 under two nulls: per-text draws
only (each text from a different OUT model: the null before 2026-12-02), the library's (a model-level
shift, Student's t over the null models, plus per-text residuals), and the least favourable one (per-text
residuals around level 0: a victim that memorised nothing). `--centre` changes how each model's
z-scores are centred before all three.
"""

import argparse

import numpy as np

from tmi_nlp.attacks.dataset import exchangeable_z, model_level_variance
from tmi_nlp.resolve import resolve
from tmi_nlp.stages.dataset import _inputs, _statistic
from tmi_nlp.stages.prepare import open_run
from tmi_nlp.store import RunDir

# The third null is the least favourable one: a victim that memorised none of its texts (level 0), whose
# centred OUT texts then sit where a set of non-members of any victim that memorised some sits or above.
NULLS = ("per-text draws", "+ model-level shift", "least favourable")

CENTRES = {
    "mean": lambda z: np.nanmean(z, axis=-1, keepdims=True),
    "none": lambda z: np.zeros(z.shape[:-1] + (1,)),
    "median": lambda z: np.nanmedian(z, axis=-1, keepdims=True),
    "lower-half": lambda z: np.nanmean(np.where(z <= np.nanmedian(z, axis=-1, keepdims=True), z, np.nan),
                                       axis=-1, keepdims=True),
}


def p_values(stat, labels, victim, shadows, points, centre, draws=2000, seed=0):
    """p-values of one set under the per-text null and the model-level one, and that victim's variances."""
    rng = np.random.default_rng(seed)
    out = ~labels[shadows]
    z, z_victim = exchangeable_z(stat[shadows], out, stat[victim], rng)
    z_null = np.where(out, z, np.nan)
    usable = points[~np.isnan(z_victim[points]) & (~np.isnan(z_null[:, points])).any(0)]
    z_victim = z_victim - centre(z_victim[None])[0]
    z_null = z_null - centre(z)
    observed = np.mean(z_victim[usable])
    level = np.nanmean(z_null, axis=1)
    residual = z_null - level[:, None]
    tau2 = model_level_variance(level, residual)
    per_text, residuals = np.zeros(draws), np.zeros(draws)
    for k in usable:
        rows = np.flatnonzero(~np.isnan(z_null[:, k]))
        pick = rows[rng.integers(0, len(rows), draws)]
        per_text += z_null[pick, k] / len(usable)
        residuals += residual[pick, k] / len(usable)
    model_level = residuals + level.mean() + np.sqrt(tau2) * rng.standard_t(len(level) - 1, draws)
    within = np.nanvar(residual)
    nulls = (per_text, model_level, residuals)
    return [(1 + np.sum(null >= observed)) / (draws + 1) for null in nulls], tau2, within


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--centre", choices=sorted(CENTRES), default="mean")
    parser.add_argument("--sizes", default="10,50")
    args = parser.parse_args()
    run, recipe = open_run(resolve(RunDir(args.run).recipe()))
    queries, labels = _inputs(run, recipe)
    sizes = [int(x) for x in args.sizes.split(",")]
    rng = np.random.default_rng([recipe.run.seed, 7])
    shuffled = np.take_along_axis(labels, rng.random(labels.shape).argsort(axis=0), axis=0)
    found = {(size, kind): [] for size in sizes for kind in ("members", "non-members", "control")}
    for v in range(labels.shape[0]):
        stat, null = _statistic(recipe, queries, labels, v)
        stat_shuffled, null_shuffled = _statistic(recipe, queries, shuffled, v)
        members, others, control = (np.flatnonzero(x) for x in (labels[v], ~labels[v], shuffled[v]))
        for size in sizes:
            for s in range(recipe.attack.dataset_sets):
                seed = [recipe.run.seed, v, size, s]
                pick, other_pick, control_pick = (np.random.default_rng(seed + [i]).choice(t, size, replace=False)
                                                  for i, t in enumerate((members, others, control)))
                p, tau2, within = p_values(stat, labels, v, null, pick, CENTRES[args.centre])
                found[(size, "members")].append(p)
                found[(size, "non-members")].append(p_values(stat, labels, v, null, other_pick,
                                                             CENTRES[args.centre])[0])
                found[(size, "control")].append(p_values(stat_shuffled, shuffled, v, null_shuffled, control_pick,
                                                         CENTRES[args.centre])[0])
        print(f"victim {v:2d}: model-level variance {tau2:.3f}, per-text variance {within:.3f}", flush=True)
    print(f"\n{args.run}, centring: {args.centre}")
    print("texts  null                  members p<0.01  non-members p<0.05  control p<0.05")
    for size in sizes:
        for j, name in enumerate(NULLS):
            m, n, c = (np.array(found[(size, k)])[:, j] for k in ("members", "non-members", "control"))
            print(f"{size:5d}  {name:20s}  {np.mean(m < 0.01):14.2f}  {np.mean(n < 0.05):18.2f}  "
                  f"{np.mean(c < 0.05):14.2f}")


if __name__ == "__main__":
    main()
