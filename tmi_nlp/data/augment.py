"""Token-level text augmentations for the queries: a fresh seeded draw per model and query."""

from collections.abc import Callable, Sequence

import numpy as np

# (ids, rng, rate, mask id, [low, high) range of regular token ids) -> augmented ids
Augmentation = Callable[[np.ndarray, np.random.Generator, float, int, tuple[int, int]], np.ndarray]


def _delete(ids: np.ndarray, rng: np.random.Generator, rate: float, mask_id: int,
            regular: tuple[int, int]) -> np.ndarray:
    kept = ids[rng.random(len(ids)) >= rate]
    return kept if len(kept) else ids[rng.integers(len(ids)), None]


def _mask(ids: np.ndarray, rng: np.random.Generator, rate: float, mask_id: int, regular: tuple[int, int]) -> np.ndarray:
    return np.where(rng.random(len(ids)) < rate, mask_id, ids)


def _substitute(ids: np.ndarray, rng: np.random.Generator, rate: float, mask_id: int,
                regular: tuple[int, int]) -> np.ndarray:
    return np.where(rng.random(len(ids)) < rate, rng.integers(*regular, len(ids)), ids)


def _swap(ids: np.ndarray, rng: np.random.Generator, rate: float, mask_id: int, regular: tuple[int, int]) -> np.ndarray:
    out = ids.copy()
    for i in np.flatnonzero(rng.random(len(ids) - 1) < rate):
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def _none(ids: np.ndarray, rng: np.random.Generator, rate: float, mask_id: int, regular: tuple[int, int]) -> np.ndarray:
    return ids.copy()


AUGMENTATIONS: dict[str, Augmentation] = {
    "delete": _delete, "mask": _mask, "swap": _swap, "substitute": _substitute, "none": _none,
}


def augment(ids: Sequence[int], kind: str, rate: float, rng: np.random.Generator, mask_id: int,
            first_regular: int, vocab_size: int) -> list[int]:
    """One augmentation of a text's token ids (special tokens excluded: the caller adds them)."""
    arr = np.asarray(ids, dtype=np.int64)
    if len(arr) == 0:
        return []
    return AUGMENTATIONS[kind](arr, rng, rate, mask_id, (first_regular, vocab_size)).tolist()


def augmented_queries(token_ids: Sequence[Sequence[int]], num_queries: int, kind: str, rate: float,
                      include_original: bool, seed: Sequence[int], mask_id: int, first_regular: int,
                      vocab_size: int) -> list[list[int]]:
    """`num_queries` variants of every text, flattened point-major: [points * A] id lists."""
    rng = np.random.default_rng(list(seed))
    out = []
    for ids in token_ids:
        for q in range(num_queries):
            if include_original and q == 0:
                out.append(list(ids))
            else:
                out.append(augment(ids, kind, rate, rng, mask_id, first_regular, vocab_size))
    return out
