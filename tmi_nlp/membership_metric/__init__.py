"""The membership metrics as an `evaluate` metric module, loadable offline from its folder.

    import evaluate
    from tmi_nlp.membership_metric import METRIC_PATH
    metric = evaluate.load(METRIC_PATH)
    metric.compute(predictions=scores, references=labels, bootstrap=200, seed=0)

(Hub metric scripts cannot be fetched offline; this folder is the module itself.)
"""

from functools import lru_cache
from pathlib import Path

METRIC_PATH = str(Path(__file__).parent)


@lru_cache(maxsize=1)
def load_membership_metric():
    """`evaluate.load` of this folder, once per process."""
    import evaluate

    return evaluate.load(METRIC_PATH)
