"""The membership plan: pool, challenge points and `keep[models, pool]` (each entry IN with p = 1/2)."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tmi_nlp.atomic import atomic_save_npy, atomic_write_json
from tmi_nlp.config import RecipeError


def text_hash(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class Plan:
    pool: list[str]
    challenge: np.ndarray  # int [K]: pool indices of the challenge points
    keep: np.ndarray  # bool [N, pool]
    seed: int

    @property
    def num_models(self) -> int:
        return self.keep.shape[0]

    def members(self, i: int) -> list[str]:
        """Model i's pretraining texts."""
        return [self.pool[j] for j in np.flatnonzero(self.keep[i])]

    def labels(self) -> np.ndarray:
        """bool [N, K]: is challenge point k in model n's pretraining data."""
        return self.keep[:, self.challenge]

    def save(self, path: Path) -> None:
        atomic_write_json(path / "pool.json", self.pool)
        atomic_save_npy(path / "challenge.npy", self.challenge)
        atomic_save_npy(path / "keep.npy", self.keep)
        # Written last: its presence marks the plan complete.
        atomic_write_json(path / "plan.json", {"seed": self.seed, "num_models": self.num_models,
                                               "pool_size": len(self.pool),
                                               "num_points": len(self.challenge),
                                               "pool_sha256": text_hash(self.pool)})

    @classmethod
    def load(cls, path: Path) -> "Plan":
        meta = json.loads((path / "plan.json").read_text())
        pool = json.loads((path / "pool.json").read_text())
        if text_hash(pool) != meta["pool_sha256"]:
            raise RecipeError(f"{path}/pool.json does not match the hash in plan.json")
        challenge, keep = np.load(path / "challenge.npy"), np.load(path / "keep.npy")
        if challenge.ndim != 1 or challenge.dtype.kind not in "iu" or len(np.unique(challenge)) != len(challenge) \
                or (len(challenge) and (challenge.min() < 0 or challenge.max() >= len(pool))):
            span = f"[{challenge.min()}, {challenge.max()}]" if len(challenge) else "[]"
            raise RecipeError(f"{path}/challenge.npy: expected distinct integer indices into the pool's "
                              f"{len(pool)} texts; it holds {len(challenge)} {challenge.dtype} values in {span}")
        if keep.dtype != bool or keep.ndim != 2 or keep.shape[1] != len(pool):
            raise RecipeError(f"{path}/keep.npy: expected a boolean [models, {len(pool)}] membership matrix; it is "
                              f"{keep.dtype} of shape {keep.shape}")
        return cls(pool=pool, challenge=challenge, keep=keep, seed=meta["seed"])

    @staticmethod
    def exists(path: Path) -> bool:
        return (path / "plan.json").exists()


def make_plan(pool: list[str], num_models: int, num_points: int, seed: int,
              challenge: np.ndarray | None = None) -> Plan:
    """Draw K challenge points (unless given as pool indices) and a Bernoulli(1/2) membership for every
    (model, text)."""
    rng = np.random.default_rng([seed, 7])
    drawn = np.sort(rng.choice(len(pool), size=num_points, replace=False))
    challenge = np.sort(np.asarray(challenge)) if challenge is not None else drawn
    keep = rng.random((num_models, len(pool))) < 0.5
    return Plan(pool=pool, challenge=challenge, keep=keep, seed=seed)
