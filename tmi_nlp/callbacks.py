"""TrainerCallbacks: query the finetuned model on augmented challenge points when training ends.

`QueryCallback` works on any `Trainer` whose model returns classification logits, so a user
can attach it to their own finetuning run and get the same query tensor tmi-nlp uses.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import extract_model_from_parallel
from transformers import TrainerCallback

from tmi_nlp.atomic import atomic_save_npy
from tmi_nlp.data.augment import augmented_queries
from tmi_nlp.models.tokenizer import first_regular_id


def pad_batch(id_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token-id lists into (input_ids, attention_mask), both long [n, longest]."""
    width = max(len(x) for x in id_lists)
    ids = torch.full((len(id_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(id_lists), width), dtype=torch.long)
    for row, x in enumerate(id_lists):
        ids[row, : len(x)] = torch.as_tensor(x)
        mask[row, : len(x)] = 1
    return ids, mask


@torch.no_grad()
def predict_proba(model: torch.nn.Module, id_lists: Sequence[Sequence[int]], pad_id: int,
                  batch_size: int = 256) -> np.ndarray:
    """Softmax over the classes for each token-id list (with its special tokens), float32 [n, C].

    Always in full precision: a Trainer with bf16 leaves an autocast wrapper on `model.forward`,
    which is removed here so that queries at train end equal queries on the reloaded model.
    """
    model = extract_model_from_parallel(model, keep_fp32_wrapper=False)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # Sorting by length keeps padding small; the output is put back in input order.
    order = np.argsort([len(x) for x in id_lists], kind="stable")
    out: list[np.ndarray] = []
    for start in range(0, len(order), batch_size):
        ids, mask = pad_batch([id_lists[i] for i in order[start:start + batch_size]], pad_id)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    probs = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
    result = np.empty_like(probs)
    result[order] = probs
    model.train(was_training)
    return result.astype(np.float32)


def query_ids(token_ids: Sequence[Sequence[int]], tokenizer, *, num_queries: int, augmentation: str, rate: float,
              include_original: bool, seed: Sequence[int]) -> list[list[int]]:
    """The A augmented queries of every point (ids without specials in, with [CLS]/[SEP] out), point-major."""
    variants = augmented_queries(token_ids, num_queries, augmentation, rate, include_original, list(seed),
                                 tokenizer.mask_token_id, first_regular_id(tokenizer), len(tokenizer))
    return [[tokenizer.cls_token_id, *v, tokenizer.sep_token_id] for v in variants]


class QueryCallback(TrainerCallback):
    """At the end of training, write softmax vectors [points, A, C] of A augmentations per point.

    `token_ids` are the challenge texts' ids without special tokens; [CLS]/[SEP] are added after
    augmenting, so deletions and swaps never touch them. The augmentation draw is seeded by
    `seed` (a fresh sequence per model: pass the model index in it).
    """

    def __init__(self, token_ids: Sequence[Sequence[int]], output: str | Path, *, num_queries: int,
                 augmentation: str, rate: float, include_original: bool, seed: Sequence[int],
                 tokenizer, batch_size: int = 256) -> None:
        self.token_ids = token_ids
        self.output = Path(output)
        self.num_queries = num_queries
        self.augmentation = augmentation
        self.rate = rate
        self.include_original = include_original
        self.seed = list(seed)
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def queries(self) -> list[list[int]]:
        return query_ids(self.token_ids, self.tokenizer, num_queries=self.num_queries,
                         augmentation=self.augmentation, rate=self.rate, include_original=self.include_original,
                         seed=self.seed)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        probs = predict_proba(model, self.queries(), self.tokenizer.pad_token_id, self.batch_size)
        atomic_save_npy(self.output, probs.reshape(len(self.token_ids), self.num_queries, -1))
