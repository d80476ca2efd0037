"""The edge: a recipe's names checked against the registries, and its methods' options filled in.

config.py checks what a recipe can check on its own (keys, types, ranges). What refers to a
registry is checked here, in one place, by the CLI, the API and the prepare stage: the
finetuning method and its options (each method's module defines them), the attacks, the
augmentation, and the `trainer` mappings (fields of transformers' `TrainingArguments`).
"""

import dataclasses

from tmi_nlp.attacks import ATTACKS, READS_ORIGINAL
from tmi_nlp.config import Recipe, require
from tmi_nlp.data.augment import AUGMENTATIONS
from tmi_nlp.models.finetune import resolve_finetune
from tmi_nlp.models.training import check_trainer_fields


def resolve(recipe: Recipe) -> Recipe:
    """The recipe as it will run: every registered name checked; the finetuning method's defaults and every option
    of the methods it uses filled in.

    Idempotent; raises `RecipeError` naming the field, the value and what was expected.
    """
    a = recipe.attack
    for field_name in ("metaclassifiers", "baselines"):
        for name in getattr(a, field_name):
            require(name in ATTACKS, "attack", field_name, name, f"names from {sorted(ATTACKS)}")
    original = sorted(set(a.names + [a.dataset_statistic]) & READS_ORIGINAL)
    q = recipe.query
    require(not original or q.include_original, "query", "include_original", q.include_original,
            f"true: {original} read query 0 as the unaugmented text")
    require(not original or q.num_queries >= 2, "query", "num_queries", q.num_queries,
            f">= 2: {original} compare the unaugmented text (query 0) with its augmentations")
    require(recipe.query.augmentation in AUGMENTATIONS, "query", "augmentation", recipe.query.augmentation,
            f"one of {sorted(AUGMENTATIONS)}")
    check_trainer_fields(recipe.base.trainer, "base")
    check_trainer_fields(recipe.pretrain.trainer, "pretrain")
    check_trainer_fields(recipe.finetune.trainer, "finetune")
    return dataclasses.replace(recipe, finetune=resolve_finetune(recipe.finetune))
