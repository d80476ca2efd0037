"""Membership-inference metrics (an `evaluate` metric module).

ROC AUC, TPR at 0.1%, 1% and 10% FPR (the highest TPR at a threshold whose FPR is at most the
target, as in LiRA), and balanced accuracy (best over thresholds), on pooled membership scores;
with `bootstrap` > 0, 95% percentile intervals over records resampled with replacement, or over
whole groups of records (`groups`: one id per record, e.g. its challenge point).
"""

import datasets
import evaluate

from tmi_nlp.metrics import membership_metrics

_CITATION = """\
@inproceedings{abascal2024tmi,
  title={TMI! Finetuned Models Leak Private Information from their Pretraining Data},
  author={Abascal, John and Wu, Stanley and Oprea, Alina and Ullman, Jonathan},
  booktitle={Proceedings on Privacy Enhancing Technologies},
  year={2024}
}
"""

_KWARGS = """
Args:
    predictions: membership scores, higher = more likely a member (floats).
    references: 1 for members, 0 for non-members.
    bootstrap: number of bootstrap resamples for 95% intervals (0: none).
    seed: seed of the resampling.
    groups: optional group id per record; the bootstrap then resamples whole groups.
Returns:
    auc, tpr@0.001, tpr@0.01, tpr@0.1, balanced_accuracy, num_records, num_members, and
    <name>_ci95 = [low, high] for each metric and bootstrap_unit ("records" or "groups") when bootstrap > 0.
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS)
class MembershipMetric(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__, citation=_CITATION, inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("int64")}),
            reference_urls=["https://arxiv.org/abs/2306.01181"])

    def _compute(self, predictions, references, bootstrap: int = 0, seed: int = 0, groups=None) -> dict:
        return membership_metrics(references, predictions, bootstrap=bootstrap, seed=seed, groups=groups)
