"""Do two zoos' white-box losses agree point by point? (docs/RESULTS.md, partial knowledge.)

    python docs/scripts/whitebox_offsets.py SHADOW_RUN VICTIM_RUN

On the challenge texts both runs share, prints: the spread across points of the OUT shadows' mean
masked-LM loss minus the OUT victims' (a per-point offset between the zoos), next to the spread of one
point's loss within the shadows; the white-box LiRA AUC as measured, after removing a global offset, and
after removing each point's offset estimated without membership (all victims' mean minus all shadows').
"""

import sys

import numpy as np

from tmi_nlp.attacks import run_attack
from tmi_nlp.attacks.features import Roles
from tmi_nlp.config import AttackArguments
from tmi_nlp.metrics import membership_metrics
from tmi_nlp.stages.victims import shared_points
from tmi_nlp.store import RunDir


def main() -> None:
    shadows, victims = RunDir(sys.argv[1]), RunDir(sys.argv[2])
    ns, nv = shadows.recipe().run.num_models, victims.recipe().run.num_models
    cols, victim_cols = shared_points(shadows.load_plan(), victims.load_plan())
    ls, lv = shadows.stacked("mlm_loss", ns)[:, cols], victims.stacked("mlm_loss", nv)[:, victim_cols]
    ks, kv = shadows.load_plan().labels()[:, cols], victims.load_plan().labels()[:, victim_cols]
    out_s = np.array([ls[~ks[:, j], j].mean() for j in range(len(cols))])
    out_v = np.array([lv[~kv[:, j], j].mean() for j in range(len(cols))])
    within = np.mean([ls[~ks[:, j], j].std() for j in range(len(cols))])
    offset = out_v - out_s
    print(f"{len(cols)} shared points; per-point OUT offset (victims - shadows): mean {offset.mean():.3f}, "
          f"sd {offset.std():.3f}; one point's OUT sd within the shadows {within:.3f}")
    roles, labels = Roles.separate(ns, nv), np.concatenate([ks, kv])
    for name, shift in [("as measured", 0.0), ("global offset removed", offset.mean()),
                        ("per-point offset removed (membership-agnostic)", lv.mean(0) - ls.mean(0))]:
        scores = run_attack("mlm_loss_lira", np.concatenate([ls + shift, lv]), labels, AttackArguments(), 0, roles)
        print(f"white-box LiRA, {name}: AUC {membership_metrics(kv, scores)['auc']:.3f}")


if __name__ == "__main__":
    main()
