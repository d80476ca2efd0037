"""The batched metaclassifiers against the one-at-a-time reference, leave-one-out and the control."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tmi_nlp.attacks import (
    ATTACKS,
    FAMILIES,
    READS,
    READS_ORIGINAL,
    batched_mlp,
    mlp_kernel,
    reference,
    run_attack,
    tmi,
)
from tmi_nlp.attacks.features import Roles, phi, shadow_training_sets, tmi_features
from tmi_nlp.config import AttackArguments
from tmi_nlp.metrics import membership_metrics


def planted(num_models=12, num_points=40, a=4, c=4, signal=1.0, seed=0):
    """Softmax queries in which members are shifted along a per-point direction."""
    rng = np.random.default_rng(seed)
    labels = rng.random((num_models, num_points)) < 0.5
    base = rng.normal(size=(1, num_points, 1, c)) * 2
    direction = rng.normal(size=(1, num_points, 1, c))
    logits = base + signal * labels[:, :, None, None] * direction + rng.normal(size=(num_models, num_points, a, c))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return probs.astype(np.float32), labels


def test_phi_and_clip():
    p = np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]], dtype=np.float32)
    assert np.allclose(phi(p)[0], [0.0, np.log(1 / 3), np.log(1 / 3)], atol=1e-6)
    assert np.isfinite(phi(p)).all()
    assert (np.linalg.norm(tmi_features(p), axis=-1) <= 1 + 1e-6).all()


# The kernel is built with the machine's C compiler; where there is none, the torch code runs alone.
HAS_COMPILER = any(shutil.which(c) for c in (os.environ.get("CC", "cc"), "cc", "gcc"))
BACKENDS = ["torch", pytest.param("kernel", marks=pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler"))]


@pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler")
def test_loading_the_kernel_keeps_subnormal_floats():
    # -ffast-math in a shared library switches on flush-to-zero for the whole process (it broke hypothesis).
    assert mlp_kernel.load() is not None
    assert np.float32(1e-40) * np.float32(1.0) > 0
    assert float(torch.tensor(1e-40) * 1.0) > 0


KERNEL_EQUALS_TORCH = """
import numpy as np, torch
from tmi_nlp.attacks import batched_mlp, mlp_kernel
assert mlp_kernel.load() is not None
rng = np.random.default_rng(1)
x, y = torch.as_tensor(rng.normal(size=(40, 30, 4)).astype(np.float32)), torch.as_tensor(rng.random((40, 30)) < 0.4)
out = {}
for backend in ("kernel", "torch"):
    settings = batched_mlp.MLPSettings(hidden_size=8, epochs=3, batch_size=8, dropout=0.0, backend=backend)
    torch.set_num_threads(2)
    out[backend] = batched_mlp.predict_in(batched_mlp.train(x, y, settings, torch.Generator().manual_seed(0)), x)
assert torch.allclose(out["kernel"], out["torch"], atol=1e-5)
print("equal")
"""


@pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler")
def test_the_kernel_builds_once_under_concurrency_and_without_openmp(tmp_path):
    # Three processes build into one empty cache at once: each loads the kernel, one library, no temporaries.
    env = {**os.environ, "TMI_NLP_CACHE": str(tmp_path / "shared")}
    procs = [subprocess.Popen([sys.executable, "-c", KERNEL_EQUALS_TORCH], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(3)]
    assert [p.communicate()[0].strip() for p in procs] == ["equal"] * 3
    files = sorted(p.name for p in (tmp_path / "shared").iterdir())
    assert len([f for f in files if f.endswith(".so")]) == 1 and not [f for f in files if f.endswith(".tmp")]
    # A compiler without OpenMP, named by $CC with arguments: the kernel still builds (one thread) and is right.
    wrapper = tmp_path / "cc-without-openmp"
    wrapper.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && { echo "no OpenMP" >&2; exit 1; }; '
                       'done\nexec cc "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "TMI_NLP_CACHE": str(tmp_path / "plain"), "CC": f"{wrapper} -DTMI_NLP_PLAIN_C=1"}
    result = subprocess.run([sys.executable, "-c", KERNEL_EQUALS_TORCH], env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "equal", result.stderr[-2000:]


def test_the_kernel_cache_key_holds_the_cpu_architecture(monkeypatch):
    here = mlp_kernel.library_path(["cc"], mlp_kernel.FLAGS)
    monkeypatch.setattr(mlp_kernel.platform, "machine", lambda: "riscv64")
    assert mlp_kernel.library_path(["cc"], mlp_kernel.FLAGS) != here


def test_every_registered_attack_is_defined_where_a_grep_finds_it():
    source = "".join(p.read_text() for p in Path(mlp_kernel.__file__).parent.glob("*.py"))
    assert all(f'register("{name}"' in source for name in ATTACKS)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("balanced, lr_step", [(True, 0), (False, 0), (False, 2)])
def test_batched_mlp_equals_one_at_a_time(balanced, lr_step, backend):
    rng = np.random.default_rng(1)
    num_problems, n, d = 6, 40, 5
    x = rng.normal(size=(num_problems, n, d)).astype(np.float32)
    y = rng.random((num_problems, n)) < 0.3
    settings = batched_mlp.MLPSettings(hidden_size=8, epochs=4, batch_size=16, dropout=0.0,
                                       class_balanced=balanced, backend=backend, lr_step_epochs=lr_step,
                                       lr_gamma=0.5)
    gen = torch.Generator().manual_seed(0)
    init = batched_mlp.init_params(num_problems, d, 8, gen)
    start = [p.detach().clone() for p in init]
    params = batched_mlp.train(torch.as_tensor(x), torch.as_tensor(y), settings,
                               torch.Generator().manual_seed(5), params=init)
    batched = batched_mlp.predict_in(params, torch.as_tensor(x))
    for b in range(num_problems):
        # The reference draws the same minibatch order from a generator seeded the same way.
        model = reference.train_one(x[b], y[b], settings, torch.Generator().manual_seed(5),
                                    init=[p[b] for p in start])
        with torch.no_grad():
            ref = torch.softmax(model(torch.as_tensor(x[b])), -1)[:, 1]
        assert torch.allclose(batched[b], ref, atol=1e-5), b


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dropout", [0.25, 0.5])
def test_dropout_drops_that_share_of_hidden_units(dropout, backend):
    # One Adam step on one example moves W2's row of a unit by lr exactly when the unit is active
    # (every unit's pre-activation is positive here), so the unmoved rows are the dropped units.
    problems, hidden = 400, 64
    settings = batched_mlp.MLPSettings(hidden_size=hidden, epochs=1, batch_size=1, dropout=dropout,
                                       learning_rate=0.1, weight_decay=0.0, backend=backend)
    init = batched_mlp.init_params(problems, 3, hidden, torch.Generator().manual_seed(0))
    with torch.no_grad():
        init[0].zero_()
        init[1].fill_(1.0)
    w2 = init[2].detach().clone()
    params = batched_mlp.train(torch.ones(problems, 1, 3), torch.ones(problems, 1, dtype=torch.bool), settings,
                               torch.Generator().manual_seed(1), params=init)
    moved = (params[2] - w2).abs().amax(-1) > 0.05  # [problems, hidden]
    # 25,600 units: the share's standard error is < 0.0032, so 0.015 is a 4.5-sigma band.
    assert abs(1 - moved.float().mean().item() - dropout) < 0.015


def test_batched_tmi_matches_reference_loop_in_quality():
    queries, labels = planted(num_models=8, num_points=20, signal=1.5)
    args = AttackArguments(epochs=10, bootstrap=0)
    fast = run_attack("mlp", queries, labels, args, seed=0)
    slow = reference.per_point_loop(queries, labels, batched_mlp.MLPSettings(epochs=10), seed=0)
    auc_fast = membership_metrics(labels, fast)["auc"]
    auc_slow = membership_metrics(labels, slow)["auc"]
    assert auc_fast > 0.7 and abs(auc_fast - auc_slow) < 0.08
    assert np.corrcoef(fast.ravel(), slow.ravel())[0, 1] > 0.6


def test_paper_mlp_is_the_official_recipe_min_maxed_per_victim():
    queries, labels = planted(num_models=6, num_points=12, signal=1.5)
    scores = run_attack("mlp_paper", queries, labels, AttackArguments(epochs=3, class_balanced=True), seed=0)
    # attack.* knobs do not reach it: the same scores as the official settings, scaled to [0, 1] per victim.
    raw = tmi.per_point_scores(queries, labels, tmi.PAPER_MLP, 0, Roles.leave_one_out(6), shuffle=False)
    low, high = raw.min(1, keepdims=True), raw.max(1, keepdims=True)
    np.testing.assert_allclose(scores, (raw - low) / (high - low), atol=1e-12)
    assert np.allclose(scores.min(1), 0) and np.allclose(scores.max(1), 1)
    assert tmi.PAPER_MLP.epoch_rates()[[0, 6, 7, 14, 19]].tolist() == pytest.approx(
        [5e-3, 5e-3, 4.5e-3, 4.05e-3, 4.05e-3])


def test_loo_sets_exclude_the_victim():
    queries, labels = planted(num_models=5, num_points=3)
    feats = tmi_features(queries)
    x, y = shadow_training_sets(feats, labels, False, np.random.default_rng(0))
    assert x.shape == (5, 3, 4 * 4, 4) and y.shape == (5, 3, 16)
    assert np.array_equal(y[2, 1], np.repeat(labels[[0, 1, 3, 4], 1], 4))


@pytest.mark.parametrize("name", ["mlp", "mlp_paper", "shared_centred", "logistic", "mlp_calibrated",
                                  "shared_calibrated", "shared_combined", "shared_confidence", "shared_direction",
                                  "shared_neighbourhood", "lira_shrunk"])
def test_victim_label_never_reaches_its_score(name):
    queries, labels = planted(num_models=6, num_points=10)
    args = AttackArguments(epochs=3, bootstrap=0)
    scores = run_attack(name, queries, labels, args, seed=0)
    flipped = labels.copy()
    flipped[3] = ~flipped[3]
    scores_flipped = run_attack(name, queries, flipped, args, seed=0)
    assert np.allclose(scores[3], scores_flipped[3])
    assert not np.allclose(np.delete(scores, 3, 0), np.delete(scores_flipped, 3, 0))


@pytest.mark.parametrize("name", ["mlp", "shared_centred", "mlp_calibrated", "shared_calibrated", "shared_combined",
                                  "shared_confidence", "shared_direction", "shared_neighbourhood"])
def test_shuffled_label_control_is_chance(name):
    # 16 x 500 records: the AUC's standard error is ~0.006, so 0.02 is a 3-sigma band.
    queries, labels = planted(num_models=16, num_points=500, a=4, signal=1.0, seed=2)
    args = AttackArguments(epochs=5, bootstrap=0)
    real = membership_metrics(labels, run_attack(name, queries, labels, args, seed=0))["auc"]
    args.shuffle_labels = True
    control = membership_metrics(labels, run_attack(name, queries, labels, args, seed=0))["auc"]
    assert real > 0.7
    assert abs(control - 0.5) < 0.02


@pytest.mark.parametrize("name", sorted(n for n in ATTACKS if FAMILIES[n] == "tmi"))
def test_every_metaclassifier_finds_a_planted_direction(name):
    queries, labels = planted(num_models=10, num_points=30, signal=2.0)
    scores = run_attack(name, queries, labels, AttackArguments(epochs=10, bootstrap=0), seed=0)
    assert scores.shape == labels.shape and np.isfinite(scores).all()
    assert membership_metrics(labels, scores)["auc"] > 0.65


def planted_confidence(num_models=10, num_points=30, a=4, c=4, signal=1.5, seed=0):
    """Softmax queries in which members are more confident in the point's usual class (as memorisation acts)."""
    rng = np.random.default_rng(seed)
    labels = rng.random((num_models, num_points)) < 0.5
    base = rng.normal(size=(1, num_points, 1, c)) * 1.5
    boost = signal * np.eye(c)[base[0, :, 0].argmax(-1)][None, :, None] * labels[:, :, None, None]
    logits = base + boost + rng.normal(size=(num_models, num_points, a, c))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return probs.astype(np.float32), labels


BASELINE_REFERENCES = {
    "lira_online": lambda q, y: reference.lira_loop(q, y, online=True, global_std=False),
    "lira_online_global_var": lambda q, y: reference.lira_loop(q, y, online=True, global_std=True),
    "lira_offline": lambda q, y: reference.lira_loop(q, y, online=False, global_std=False),
    "lira_offline_global_var": lambda q, y: reference.lira_loop(q, y, online=False, global_std=True),
    "lira_shrunk": reference.lira_shrunk_loop,
    "rmia": lambda q, y: reference.rmia_loop(q, y, online=True),
    "rmia_offline": lambda q, y: reference.rmia_loop(q, y, online=False),
    "label_only": lambda q, y: reference.calibrated_loop(q, y, "label_agreement"),
    "calibrated_confidence": lambda q, y: reference.calibrated_loop(q, y, "log_max_probability"),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(BASELINE_REFERENCES))
def test_vectorised_baseline_equals_per_example_loop(name, seed):
    # Property-style: random shapes and planted strengths, including points with no IN shadow.
    rng = np.random.default_rng(seed)
    n, k, a, c = int(rng.integers(3, 7)), int(rng.integers(2, 9)), int(rng.integers(1, 4)), int(rng.integers(2, 5))
    queries, labels = planted_confidence(n, k, a, c, signal=float(rng.uniform(0, 3)), seed=seed)
    fast = run_attack(name, queries, labels, AttackArguments(bootstrap=0), seed=0)
    slow = BASELINE_REFERENCES[name](queries, labels)
    assert np.allclose(fast, slow, atol=1e-6), np.abs(fast - slow).max()


# Members more confident on every query alike: the neighbourhood comparison reads the original against the other
# queries by design, so it has its own test (test_neighbourhood_attacks_read_the_exact_text_against_its_neighbours).
@pytest.mark.parametrize("name", sorted(n for n in ATTACKS if FAMILIES[n] in ("shadow", "shadow-free")
                                        and n not in READS_ORIGINAL))
def test_every_baseline_detects_members_made_more_confident(name):
    queries, labels = planted_confidence(num_models=10, num_points=30, a=8)  # label-only needs a few queries
    scores = run_attack(name, queries, labels, AttackArguments(epochs=10, bootstrap=0), seed=0)
    assert scores.shape == labels.shape and np.isfinite(scores).all()
    assert membership_metrics(labels, scores)["auc"] > 0.65


@pytest.mark.parametrize("name", sorted(n for n in ATTACKS if FAMILIES[n] in ("shadow", "white-box")))
def test_shadow_baselines_never_read_the_victims_label(name):
    rng = np.random.default_rng(3)
    queries, labels = planted_confidence(num_models=6, num_points=12)
    signal = queries if READS[name] == "queries" else rng.normal(size=labels.shape) - labels
    args = AttackArguments(bootstrap=0)
    scores = run_attack(name, signal, labels, args, seed=0)
    flipped = labels.copy()
    flipped[2] = ~flipped[2]
    assert np.allclose(scores[2], run_attack(name, signal, flipped, args, seed=0)[2])


def test_mlm_loss_lira_finds_members_with_lower_loss():
    rng = np.random.default_rng(0)
    labels = rng.random((16, 200)) < 0.5
    losses = rng.normal(3, 0.3, size=(1, 200)) + rng.normal(0, 0.1, size=labels.shape) - 0.15 * labels
    scores = run_attack("mlm_loss_lira", losses, labels, AttackArguments(bootstrap=0), seed=0)
    assert membership_metrics(labels, scores)["auc"] > 0.75


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_separate_roles_never_read_the_victims_labels(name):
    # Shadows 0..7 attack victims 8..11: flipping every victim label changes no score.
    rng = np.random.default_rng(4)
    queries, labels = planted_confidence(num_models=12, num_points=10, a=4)
    signal = queries if READS[name] == "queries" else rng.normal(size=labels.shape) - labels
    roles = Roles.separate(8, 4)
    args = AttackArguments(epochs=3, bootstrap=0)
    scores = run_attack(name, signal, labels, args, seed=0, roles=roles)
    flipped = labels.copy()
    flipped[8:] = ~flipped[8:]
    assert scores.shape == (4, 10) and np.isfinite(scores).all()
    assert np.allclose(scores, run_attack(name, signal, flipped, args, seed=0, roles=roles))


@pytest.mark.parametrize("name", sorted(n for n in ATTACKS if FAMILIES[n] != "tmi"))
def test_separate_roles_equal_leave_one_out_on_each_stack(name):
    # Closed-form attacks: victim i under separate roles = the last row of leave-one-out on shadows + victim i.
    rng = np.random.default_rng(5)
    queries, labels = planted_confidence(num_models=9, num_points=7, a=3)
    signal = queries if READS[name] == "queries" else rng.normal(size=labels.shape) - labels
    args = AttackArguments(bootstrap=0)
    scores = run_attack(name, signal, labels, args, seed=0, roles=Roles.separate(6, 3))
    for i in range(3):
        stack = np.r_[0:6, 6 + i]
        assert np.allclose(scores[i], run_attack(name, signal[stack], labels[stack], args, seed=0)[-1])


@pytest.mark.parametrize("name", ["mlp", "shared_centred", "logistic"])
def test_metaclassifiers_with_separate_roles_find_the_planted_direction(name):
    queries, labels = planted(num_models=20, num_points=40, signal=2.0)
    scores = run_attack(name, queries, labels, AttackArguments(epochs=10, bootstrap=0), seed=0,
                        roles=Roles.separate(12, 8))
    assert membership_metrics(labels[12:], scores)["auc"] > 0.7


def test_roles_refuse_a_victim_among_its_shadows():
    with pytest.raises(ValueError, match="among its own shadows"):
        Roles(np.array([0, 1]), np.array([[1, 2], [1, 2]]))
    assert Roles.separate(3, 2).common_shadows and not Roles.leave_one_out(4).common_shadows


@pytest.mark.parametrize("name", ["logistic", "svm", "knn"])
def test_per_point_sklearn_scores_are_member_probabilities_on_one_scale(name):
    queries, labels = planted(num_models=8, num_points=12)
    labels[:, :3] = True  # points 0-2: every model IN, so every victim's shadows are on one side
    labels[:, 3] = False
    scores = run_attack(name, queries, labels, AttackArguments(), 0, Roles.leave_one_out(8))
    assert scores.shape == (8, 12) and (scores >= 0).all() and (scores <= 1).all()
    # One-sided points get the smoothed prior of 7 shadows: 8/9 IN, 1/9 OUT; never a log-odds or a certainty.
    np.testing.assert_allclose(scores[:, :3], 8 / 9)
    np.testing.assert_allclose(scores[:, 3], 1 / 9)


def confident(num_classes: int, num_models=16, num_points=200, a=8, shift=0.8, noise=0.5, seed=0):
    """Every model is confident (top-class logit ~ 3 over the rest) on every point; a member's is `shift` higher.
    Membership shows only in how confident the model is, never in which class it predicts."""
    rng = np.random.default_rng(seed)
    labels = rng.random((num_models, num_points)) < 0.5
    top = rng.integers(0, num_classes, size=num_points)
    logit = rng.normal(3.0, 1.0, size=(1, num_points, 1)) + shift * labels[:, :, None] + noise * rng.normal(
        size=(num_models, num_points, a))
    z = np.zeros((num_models, num_points, a, num_classes))
    np.put_along_axis(z, np.broadcast_to(top[None, :, None, None], z.shape[:3] + (1,)), logit[..., None], axis=-1)
    return (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).astype(np.float32), labels


@pytest.mark.parametrize("num_classes", [2, 4])
def test_calibrated_attacks_read_confidence_where_the_papers_features_saturate(num_classes):
    queries, labels = confident(num_classes)
    auc = {name: membership_metrics(labels, run_attack(name, queries, labels, AttackArguments(), 0))["auc"]
           for name in ("mlp", "mlp_paper", "mlp_calibrated", "shared_calibrated", "shared_combined",
                        "shared_confidence", "shared_direction", "shared_neighbourhood", "lira_shrunk")}
    # The mean of A = 8 queries moves by 0.8 against a noise of 0.5 / sqrt(8): d' = 4.5, so a per-point
    # threshold reaches AUC = Phi(4.5 / sqrt(2)) = 0.9993; 7-8 OUT shadows estimate each point's statistics.
    assert min(auc[n] for n in ("mlp_calibrated", "shared_calibrated", "shared_combined", "shared_confidence",
                                "shared_direction", "shared_neighbourhood", "lira_shrunk")) > 0.95
    if num_classes == 2:
        # phi = (z, -z) clipped to norm 1: past p ~ 0.67 only the label survives
        assert auc["mlp"] < 0.6 and auc["mlp_paper"] < 0.6


def top_class_softmax(size: np.ndarray, top: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 softmax vectors [N, K, A, C] whose class top [N, K] has logit `size` [N, K, A] and every other 0."""
    z = np.zeros(size.shape + (num_classes,))
    np.put_along_axis(z, np.broadcast_to(top[:, :, None, None], z.shape[:3] + (1,)), size[..., None], axis=-1)
    return (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).astype(np.float32)


def disagreeing(num_classes: int, num_models=16, num_points=200, a=8, shift=0.8, level=1.0, noise=0.5, seed=0):
    """Each model predicts its own class for a point (as models do on out-of-domain text) with a confidence (top
    logit over the rest) of 3, plus the point's difficulty, plus the model's level on every point (sd `level`),
    plus `shift` for a member, plus per-query noise: membership shows only in the size of the confidence."""
    rng = np.random.default_rng(seed)
    labels = rng.random((num_models, num_points)) < 0.5
    top = rng.integers(0, num_classes, size=(num_models, num_points))
    size = (3.0 + rng.normal(0, 0.3, size=(1, num_points, 1)) + level * rng.normal(size=(num_models, 1, 1))
            + shift * labels[:, :, None] + noise * rng.normal(size=(num_models, num_points, a)))
    return top_class_softmax(size, top, num_classes), labels


@pytest.mark.parametrize("num_classes", [2, 4])
def test_shared_confidence_reads_confidence_relative_to_the_models_level(num_classes):
    queries, labels = disagreeing(num_classes)
    auc = {name: membership_metrics(labels, run_attack(name, queries, labels, AttackArguments(), 0))["auc"]
           for name in ("shared_calibrated", "lira_shrunk", "shared_confidence")}
    # The model's level (sd 1) is shared by its 200 points, whose median measures it; less the level, the mean
    # of 8 queries moves by 0.8 against sqrt(0.3^2 + 0.5^2 / 8) = 0.35 (the difficulty left to calibration):
    # AUC >= Phi(0.8 / 0.35 / sqrt(2)) = 0.95. Reading one (model, point) alone, the level stays in the noise:
    # 0.8 against sqrt(1 + 0.5^2 / 8) = 1.02, AUC <= Phi(0.8 / 1.02 / sqrt(2)) = 0.71.
    assert auc["shared_confidence"] > 0.95
    assert auc["shared_calibrated"] < 0.75 and auc["lira_shrunk"] < 0.75


def directed(num_classes: int, num_models=16, num_points=200, a=8, shift=2.0, push=0.3, noise=0.5, seed=0):
    """Models disagree about a point's class (each sees it with its own logits, sd 1, around the point's, sd 1), and
    membership moves each model's class logits by `shift` along a unit direction of its own (random), plus `push`
    towards the class it predicts: a member effect whose mean over models is near zero but for the push."""
    rng = np.random.default_rng(seed)
    labels = rng.random((num_models, num_points)) < 0.5
    direction = rng.normal(size=(num_models, 1, 1, num_classes))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    logits = rng.normal(size=(1, num_points, 1, num_classes)) + rng.normal(size=(num_models, num_points, 1,
                                                                                 num_classes))
    logits = logits + labels[:, :, None, None] * (shift * direction + push * np.eye(num_classes)[logits.argmax(-1)])
    logits = logits + noise * rng.normal(size=(num_models, num_points, a, num_classes))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).astype(np.float32), labels


@pytest.mark.parametrize("num_classes", [2, 4])
def test_shared_direction_reads_each_models_own_direction_of_membership(num_classes):
    queries, labels = directed(num_classes)
    auc = {name: membership_metrics(labels, run_attack(name, queries, labels, AttackArguments(), 0))["auc"]
           for name in ("shared_confidence", "shared_direction")}
    # Knowing each model's direction, the member shift along it is 2 (+ the push) against the model's own view of
    # the point, sd 1 along a unit vector, and the queries' 0.5 / sqrt(8): a threshold reaches at most about
    # Phi(2 / 1.02 / sqrt(2)) = 0.92. Blind to the direction, a statistic sees members spread both ways around the
    # OUT mean; measured 0.67-0.71 for shared_confidence (seeds 0-2), 0.76-0.84 for shared_direction.
    assert auc["shared_direction"] > 0.74
    assert auc["shared_direction"] > auc["shared_confidence"] + 0.05


def neighbourly(num_classes: int, num_models=16, num_points=200, a=8, shift=0.8, level=1.0, noise=0.3, seed=0):
    """Each model predicts its own class for a point with a confidence (top logit over the rest) of 3 plus a
    (model, point) level of sd `level` shared by all of its queries; a member's query 0 (the exact text) is `shift`
    more confident, its other queries (the neighbours) are not; per-query noise `noise`."""
    rng = np.random.default_rng(seed)
    labels = rng.random((num_models, num_points)) < 0.5
    top = rng.integers(0, num_classes, size=(num_models, num_points))
    size = 3.0 + level * rng.normal(size=(num_models, num_points, 1)) + noise * rng.normal(size=(num_models,
                                                                                                 num_points, a))
    size[:, :, 0] += shift * labels
    return top_class_softmax(size, top, num_classes), labels


@pytest.mark.parametrize("num_classes", [2, 4])
def test_neighbourhood_attacks_read_the_exact_text_against_its_neighbours(num_classes):
    queries, labels = neighbourly(num_classes)
    auc = {name: membership_metrics(labels, run_attack(name, queries, labels, AttackArguments(), 0))["auc"]
           for name in ("neighbourhood", "shared_neighbourhood", "shared_confidence", "lira_offline_global_var")}
    # The original less the mean of 7 neighbours moves by 0.8 against 0.3 * sqrt(1 + 1/7) = 0.32 (the level cancels):
    # AUC = Phi(0.8 / 0.32 / sqrt(2)) = 0.96. Reading the queries without the contrast, the (model, point) level
    # stays in the noise: even query 0 alone moves by 0.8 against sqrt(1 + 0.3^2) = 1.04, AUC <= Phi(0.54) = 0.71.
    assert auc["neighbourhood"] > 0.93 and auc["shared_neighbourhood"] > 0.93
    assert auc["shared_confidence"] < 0.75 and auc["lira_offline_global_var"] < 0.75


@pytest.mark.parametrize("attack", ["", "shared_confidence"])
def test_dataset_p_values_are_uniform_for_unseen_sets_and_small_for_seen_ones(attack):
    from scipy.stats import kstest

    from tmi_nlp.attacks.dataset import confidence_statistic, dataset_p_value, held_out_scores

    queries, labels = confident(4, shift=0.8, seed=1)
    args = AttackArguments(epochs=5)
    rng = np.random.default_rng(0)
    seen, unseen = [], []
    for v in range(16):
        stat, shadows = (held_out_scores(attack, queries, labels, v, args) if attack
                         else (confidence_statistic(queries), np.delete(np.arange(16), v)))
        for _ in range(4):
            seen.append(dataset_p_value(stat, labels, v, shadows, rng.choice(np.flatnonzero(labels[v]), 10,
                                                                             replace=False))["p_value"])
            unseen.append(dataset_p_value(stat, labels, v, shadows, rng.choice(np.flatnonzero(~labels[v]), 10,
                                                                               replace=False))["p_value"])
    assert np.mean(np.array(seen) < 0.01) > 0.95
    assert kstest(unseen, "uniform").pvalue > 0.01 and np.mean(np.array(unseen) < 0.05) < 0.1
    # The victim's own row is never read: flipping it leaves its statistic and p-value as they were.
    flipped = labels.copy()
    flipped[0] = ~flipped[0]
    points = np.arange(10)
    stat, shadows = (held_out_scores(attack, queries, labels, 0, args) if attack
                     else (confidence_statistic(queries), np.arange(1, 16)))
    if attack:
        np.testing.assert_array_equal(stat, held_out_scores(attack, queries, flipped, 0, args)[0])
        # The attack that scores the victim and the null was trained on neither.
        assert len(shadows) == 7 and np.isnan(np.delete(stat, [0, *shadows], 0)).all()
    assert (dataset_p_value(stat, labels, 0, shadows, points) == dataset_p_value(stat, flipped, 0, shadows, points))


def test_set_test_holds_its_level_when_models_memorise_by_different_amounts():
    """Each model's members rise by its own amount (0 to 3 sd): centred on its mean over every text, a model's
    non-members then sit below 0 by half that amount, together. A null that draws each text from a different
    model averages that shared shift away and rejected 50-text non-member sets far above 5%."""
    from tmi_nlp.attacks.dataset import dataset_p_value

    rng = np.random.default_rng(0)
    num_models, num_points = 48, 200
    labels = rng.random((num_models, num_points)) < 0.5
    strength = rng.uniform(0, 3, num_models)[:, None]
    stat = rng.normal(size=(num_models, num_points)) + labels * strength
    unseen, seen = [], []
    for v in range(num_models):
        shadows = np.delete(np.arange(num_models), v)
        for texts, found in ((~labels[v], unseen), (labels[v], seen)):
            points = rng.choice(np.flatnonzero(texts), 50, replace=False)
            found.append(dataset_p_value(stat, labels, v, shadows, points, seed=v)["p_value"])
    # One set per victim, so the 48 p-values are independent: at the level, 2.4 are expected below 0.05 and 7 or
    # more happen with probability 0.01 (the old null: 17).
    assert np.mean(np.array(unseen) < 0.05) <= 0.13
    # Members of a model that memorised by 1.5 sd or more are told at p < 0.01.
    assert np.mean(np.array(seen)[strength[:, 0] > 1.5] < 0.01) > 0.9


def test_reference_test_matches_the_exact_permutation_test_and_checks_its_sets():
    """The sampled permutation p-value agrees with the one counted over every split of a small pair of sets."""
    from itertools import combinations

    from tmi_nlp.attacks.dataset import reference_p_value

    scores = np.array([0.9, 0.7, 0.75, 0.2, 0.6, 0.5, 0.1, 0.8, 0.4])
    points, reference = np.array([0, 1, 2]), np.array([3, 4, 5, 6])
    pooled = scores[np.r_[points, reference]]
    observed = pooled[:3].mean() - pooled[3:].mean()
    splits = [pooled[list(c)].mean() - np.delete(pooled, list(c)).mean() for c in combinations(range(7), 3)]
    exact = np.mean(np.array(splits) >= observed - 1e-12)  # 1 of 35 splits: the observed one is the largest
    result = reference_p_value(scores, points, reference, draws=40000, seed=3)
    # 40,000 draws: the sampled p has standard error sqrt(p (1 - p) / 40000) < 0.001 around the exact one.
    assert abs(result["p_value"] - exact) < 0.004 and result["texts"] == 3 and result["reference_texts"] == 4
    assert result["statistic"] == pytest.approx(observed)
    with pytest.raises(ValueError, match="reference: 1 of its texts are also in the tested set"):
        reference_p_value(scores, points, np.array([2, 3]))
    with pytest.raises(ValueError, match="scores: nan"):
        reference_p_value(np.where(np.arange(9) == 8, np.nan, scores), points, np.array([8]))


def test_reference_test_holds_its_level_and_tells_members_whatever_each_models_level_and_spread():
    """Each model has its own level on every text (sd 1), its own spread (x 0.5 to 2) and memorises by its own
    amount s ~ U(0, 2). Against 50 of its known non-members, the level cancels and the spread is the model's own:
    the mean difference of 50 against 50 texts has sd 0.2 x spread, so members of a model with s / spread > 1 sit
    5 sd above the null and are told at p < 0.01 with probability Phi(5 - 2.33) > 0.99. No other model is read."""
    from scipy.stats import kstest

    from tmi_nlp.attacks.dataset import reference_p_value

    rng = np.random.default_rng(0)
    num_models, num_points = 48, 300
    labels = rng.random((num_models, num_points)) < 0.5
    strength, spread = rng.uniform(0, 2, (num_models, 1)), rng.uniform(0.5, 2, (num_models, 1))
    stat = spread * rng.normal(size=(num_models, num_points)) + labels * strength + rng.normal(size=(num_models, 1))
    seen, unseen = [], []
    for v in range(num_models):
        members, others = np.flatnonzero(labels[v]), np.flatnonzero(~labels[v])
        reference = rng.choice(others, 100, replace=False)
        seen.append(reference_p_value(stat[v], rng.choice(members, 50, replace=False), reference[:50],
                                      seed=v)["p_value"])
        unseen.append(reference_p_value(stat[v], reference[50:], reference[:50], seed=v)["p_value"])
    told = (strength / spread)[:, 0] > 1
    assert told.sum() >= 10 and np.mean(np.array(seen)[told] < 0.01) > 0.9
    # Non-member sets against non-members: one p-value per victim, uniform (48 draws: 2.4 expected below 0.05, 7 or
    # more with probability 0.01).
    assert kstest(unseen, "uniform").pvalue > 0.01 and np.mean(np.array(unseen) < 0.05) <= 0.13
