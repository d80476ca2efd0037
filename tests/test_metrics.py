import numpy as np
import pytest

from tmi_nlp.metrics import membership_metrics, tpr_at_fpr


def pairwise_auc(labels, scores):
    pos, neg = scores[labels], scores[~labels]
    return np.mean((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None]))


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.4
    scores = rng.normal(size=300) + labels * 0.7
    m = membership_metrics(labels, scores, bootstrap=100)
    assert m["auc"] == pytest.approx(pairwise_auc(labels, scores), abs=1e-12)
    lo, hi = m["auc_ci95"]
    assert lo < m["auc"] < hi and hi - lo < 0.2
    assert m["num_records"] == 300 and m["num_members"] == labels.sum()


def test_tpr_at_fpr_and_separable_case():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    scores = np.array([0.9, 0.8, 0.1, 0.7, 0.3, 0.2, 0.2, 0.1, 0.0, 0.0])
    assert tpr_at_fpr(labels, scores, 0.0) == pytest.approx(2 / 3)
    assert tpr_at_fpr(labels, scores, 4 / 7) == pytest.approx(2 / 3)
    assert tpr_at_fpr(labels, scores, 5 / 7 + 1e-9) == pytest.approx(1.0)
    perfect = membership_metrics(labels, labels.astype(float))
    assert perfect["auc"] == 1 and perfect["tpr@0.001"] == 1 and perfect["balanced_accuracy"] == 1


def test_one_sided_labels_are_refused():
    with pytest.raises(ValueError, match="all 3 records are on one side"):
        membership_metrics(np.ones(3, bool), np.zeros(3))


def test_evaluate_module_loads_offline_and_equals_the_library():
    import evaluate

    from tmi_nlp.membership_metric import METRIC_PATH

    rng = np.random.default_rng(4)
    labels = rng.random(500) < 0.5
    scores = rng.normal(size=500) + labels
    metric = evaluate.load(METRIC_PATH)
    got = metric.compute(predictions=scores, references=labels.astype(int), bootstrap=20, seed=1)
    assert got == membership_metrics(labels, scores, bootstrap=20, seed=1)
    assert set(got) >= {"auc", "tpr@0.001", "tpr@0.01", "tpr@0.1", "balanced_accuracy", "auc_ci95", "tpr@0.1_ci95"}


def test_tpr_at_fpr_keeps_thresholds_inside_runs_of_ties():
    labels = np.array([1, 0, 1, 0, 1, 0] + [0] * 994 + [1] * 97, bool)
    scores = np.array([3, 3, 2, 2, 1, 1] + [0] * 1091, float)
    # At score >= 2: 2 of 100 members and 2 of 997 non-members (FPR 0.002006 <= 0.0021).
    assert tpr_at_fpr(labels, scores, 0.0021) == pytest.approx(0.02)
    assert tpr_at_fpr(labels, scores, 0.0011) == pytest.approx(0.01)


def test_the_bootstrap_over_points_is_wider_when_a_points_records_move_together():
    rng = np.random.default_rng(2)
    victims, points = 16, 150
    labels = rng.random((victims, points)) < 0.5
    difficulty = rng.normal(size=points)  # each point's scores share its difficulty under every victim
    scores = difficulty[None] + 0.5 * labels + 0.3 * rng.normal(size=(victims, points))
    by_record = membership_metrics(labels, scores, bootstrap=200)
    by_point = membership_metrics(labels, scores, bootstrap=200,
                                  groups=np.broadcast_to(np.arange(points), labels.shape))
    assert by_point["auc"] == by_record["auc"] and by_point["bootstrap_unit"] == "groups"
    width = lambda m: m["auc_ci95"][1] - m["auc_ci95"][0]  # noqa: E731
    assert width(by_point) > 1.3 * width(by_record)
