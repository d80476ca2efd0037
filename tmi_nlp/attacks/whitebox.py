"""White-box reference: LiRA on the pretrained masked-LM loss of each challenge text.

Not an attack on the released classifier: it reads the *pretrained* models (their loss is
extracted by the model stages into `models/<i>/signals/mlm_loss.npy`), so it measures how much
membership is there before finetuning, the upper bound the query attacks try to recover.
"""

import numpy as np

from tmi_nlp.attacks import register
from tmi_nlp.attacks.baselines import fit_gaussian, log_normal
from tmi_nlp.attacks.features import Roles
from tmi_nlp.config import AttackArguments


@register("mlm_loss_lira", family="white-box", reads="mlm_loss")
def mlm_loss_lira(losses: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
                  roles: Roles) -> np.ndarray:
    """Online LiRA with per-point variance on minus the pretrained masked-LM loss [N, K]."""
    x = -losses.astype(np.float64)[..., None]  # [N, K, 1]
    scores = np.empty((len(roles.victims), labels.shape[1]))
    for i, v in enumerate(roles.victims):
        is_in, is_out = roles.masks(labels, i)
        mu_in, sd_in = fit_gaussian(x, is_in, global_std=False)
        mu_out, sd_out = fit_gaussian(x, is_out, global_std=False)
        llr = log_normal(x[v], mu_in, sd_in) - log_normal(x[v], mu_out, sd_out)
        scores[i] = np.nan_to_num(llr, nan=0.0)[:, 0]
    return scores
