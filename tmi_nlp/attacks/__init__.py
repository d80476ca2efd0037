"""Membership attacks on the stored query tensor, registered by name.

Every attack maps queries [N, K, A, C] and membership labels [N, K] to scores [N, K]
(higher = more likely IN) with leave-one-out victims: the scores of victim v depend on
labels only through the rows of the other models (a property test checks it).
"""

from collections.abc import Callable

import numpy as np

from tmi_nlp.config import AttackArguments

Attack = Callable[[np.ndarray, np.ndarray, AttackArguments, int], np.ndarray]
ATTACKS: dict[str, Attack] = {}


def register(name: str) -> Callable[[Attack], Attack]:
    def wrap(fn: Attack) -> Attack:
        ATTACKS[name] = fn
        return fn

    return wrap


def run_attack(name: str, queries: np.ndarray, labels: np.ndarray, args: AttackArguments, seed: int) -> np.ndarray:
    if name not in ATTACKS:
        raise KeyError(f"attack.metaclassifiers: {name!r} is not an attack; expected one of {sorted(ATTACKS)}")
    return ATTACKS[name](queries, labels.astype(bool), args, seed)


from tmi_nlp.attacks import tmi  # noqa: E402, F401  (registers the TMI metaclassifiers)
