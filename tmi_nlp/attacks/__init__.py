"""Membership attacks on the stored query tensor, registered by name.

Every attack maps queries [N, K, A, C], membership labels [N, K] and `Roles` to scores [V, K]
of the victim rows (higher = more likely IN). By default every model is the victim once
(leave-one-out); the scores of a victim depend on labels only through its shadows' rows (a
property test checks it).
"""

from collections.abc import Callable

import numpy as np

from tmi_nlp.attacks.features import Roles
from tmi_nlp.config import AttackArguments
from tmi_nlp.store import QUERIES

Attack = Callable[[np.ndarray, np.ndarray, AttackArguments, int, Roles], np.ndarray]
ATTACKS: dict[str, Attack] = {}
# What each attack reads (`RunDir.stacked`): "queries" [N, K, A, C], or a white-box signal of the pretrained
# models, "mlm_loss" [N, K].
READS: dict[str, str] = {}
# For the report: "tmi" (metaclassifiers), "shadow" (shadow-model baselines), "shadow-free", "white-box".
FAMILIES: dict[str, str] = {}
# Attacks that train MLP metaclassifiers with `attack.backend` (the C kernel or batched torch): their scores depend
# on it, so it is recorded with them and one run never mixes the two.
TRAINS_MLP: set[str] = set()
# Attacks that read query 0 as the unaugmented text (`query.include_original`, A >= 2): checked in resolve.py.
READS_ORIGINAL: set[str] = set()


def register(name: str, family: str = "tmi", reads: str = QUERIES, trains_mlp: bool = False,
             reads_original: bool = False) -> Callable[[Attack], Attack]:
    """Register an attack under `name`, written out where it is registered (so a grep for it finds it)."""

    def wrap(fn: Attack) -> Attack:
        ATTACKS[name], READS[name], FAMILIES[name] = fn, reads, family
        if trains_mlp:
            TRAINS_MLP.add(name)
        if reads_original:
            READS_ORIGINAL.add(name)
        return fn

    return wrap


def run_attack(name: str, data: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int,
               roles: Roles | None = None) -> np.ndarray:
    """Scores [V, K] of attack `name` on what it reads (`READS[name]`) and membership labels [N, K].

    `roles` says which rows are victims and which shadows train each one's attack (default:
    leave-one-out, V = N).
    """
    if name not in ATTACKS:
        raise KeyError(f"attack: {name!r} is not an attack; expected one of {sorted(ATTACKS)}")
    return ATTACKS[name](data, labels.astype(bool), args, seed, roles or Roles.leave_one_out(len(labels)))


# Importing the modules registers the attacks.
from tmi_nlp.attacks import baselines, calibrated, tmi, whitebox  # noqa: E402, F401
