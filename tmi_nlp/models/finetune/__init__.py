"""Finetuning methods, selected by name. Each method is one small module that registers itself.

A method turns a pretrained masked-LM checkpoint into a classifier ready to train
(`build`) and reloads a saved one (`load`); the Trainer loop, the query callback and the
saving are shared (`finetune_model`), so everything after finetuning is the same for all.
As in peft, a method owns its options: a dataclass registered with it (`options_class`), read
from the recipe's `finetune.options.<method>`. A new method is one new module; config.py does
not change.
"""

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase, Trainer, set_seed

from tmi_nlp.atomic import atomic_dir, atomic_link, atomic_write_json
from tmi_nlp.callbacks import QueryCallback, predict_proba
from tmi_nlp.config import FinetuneArguments, QueryArguments, RecipeError, parse_dataclass
from tmi_nlp.models.training import quiet_trainer, training_arguments

QUERIES_FILE = "queries.npy"


class FinetuneMethod:
    """Interface of a finetuning method (see `full.py` for the smallest one)."""

    name: str = ""
    options_class: type | None = None  # a dataclass of the method's own options, or None
    # What finetune.epochs, learning_rate and batch_size are when the recipe leaves them out (measured per method:
    # docs/experiments.md).
    defaults: dict[str, Any] = {"epochs": 3.0, "learning_rate": 1e-4, "batch_size": 32}

    def options(self, args: FinetuneArguments) -> Any:
        """This method's options from `finetune.options.<name>`, defaults filled in and checked."""
        return parse_dataclass(self.options_class, args.options.get(self.name), f"finetune.options.{self.name}")

    def uses(self, args: FinetuneArguments) -> list[str]:
        """The methods whose options this one reads (DP reads those of the parameters it trains)."""
        return [self.name]

    def check(self, args: FinetuneArguments) -> None:
        """Checks across sections, before anything trains (raise `RecipeError`)."""

    def build(self, pretrained: Path, num_labels: int, train_ids: list[list[int]],
              tokenizer: PreTrainedTokenizerBase, args: FinetuneArguments) -> torch.nn.Module:
        raise NotImplementedError

    def load(self, finetuned: Path) -> torch.nn.Module:
        raise NotImplementedError

    def trainer(self, model: torch.nn.Module, training_args, dataset: list[dict], tokenizer: PreTrainedTokenizerBase,
                callbacks: list, args: FinetuneArguments, seed: int) -> Trainer:
        """The Trainer that finetunes `model`; DP-SGD replaces it, the other methods keep this one."""
        return quiet_trainer(model=model, args=training_args, train_dataset=dataset, callbacks=callbacks,
                             data_collator=DataCollatorWithPadding(tokenizer))

    def training_metrics(self, trainer: Trainer) -> dict:
        """Method-specific figures recorded in metrics.json (the epsilon spent, for DP)."""
        return {}


FINETUNE_METHODS: dict[str, type[FinetuneMethod]] = {}


def register(cls: type[FinetuneMethod]) -> type[FinetuneMethod]:
    FINETUNE_METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> FinetuneMethod:
    if name not in FINETUNE_METHODS:
        raise RecipeError(f"finetune.method = {name!r}: expected one of {sorted(FINETUNE_METHODS)}")
    return FINETUNE_METHODS[name]()


def resolve_finetune(args: FinetuneArguments) -> FinetuneArguments:
    """The section as it will run: the method's defaults where it leaves epochs, learning rate or batch size out,
    and every option of the methods it uses (only those), checked. Idempotent."""
    method = get_method(args.method)
    args = dataclasses.replace(args, **{k: v for k, v in method.defaults.items() if getattr(args, k) is None})
    return dataclasses.replace(args, options=_resolve_options(method, args))


def _resolve_options(method: FinetuneMethod, args: FinetuneArguments) -> dict[str, dict]:
    used = method.uses(args)
    unused = sorted(set(args.options) - set(used))
    if unused:
        raise RecipeError(f"finetune.options.{unused[0]}: method {args.method!r} does not use it; expected options "
                          f"only for {used}")
    resolved = {}
    for name in used:
        used_method = get_method(name)
        if used_method.options_class is not None:
            resolved[name] = dataclasses.asdict(used_method.options(args))
        elif args.options.get(name):
            raise RecipeError(f"finetune.options.{name} = {args.options[name]!r}: method {name!r} has no options")
    method.check(args)
    return resolved


def load_finetuned(path: str | Path) -> torch.nn.Module:
    """Reload a classifier saved by `finetune_model`, whatever its method."""
    method = json.loads((Path(path) / "method.json").read_text())["method"]
    return get_method(method).load(Path(path))


def pretrained_path(finetuned: Path) -> Path:
    """The checkpoint a finetuned model started from (stored relative, so run folders can move)."""
    info = json.loads((finetuned / "method.json").read_text())
    return (finetuned / info["pretrained"]).resolve()


def finetune_model(pretrained: Path, train_ids: list[list[int]], train_labels: list[int],
                   eval_ids: list[list[int]], eval_labels: list[int], num_labels: int,
                   tokenizer: PreTrainedTokenizerBase, args: FinetuneArguments, query: QueryArguments,
                   challenge_ids: list[list[int]], seed: int, model_index: int, output: Path,
                   queries_path: Path, model: torch.nn.Module | None = None) -> dict:
    """Finetune one pretrained model; the query callback writes its query tensor at train end.

    `model` is the method's `build` result when the caller made it already (tests do, to compare
    parameters before and after); otherwise it is built here.
    """
    args = resolve_finetune(args)
    method = get_method(args.method)
    set_seed(seed)
    if model is None:
        model = method.build(pretrained, num_labels, train_ids, tokenizer, args)
    with atomic_dir(output) as tmp:
        # The query tensor is written inside the finetuned folder, so that the model and its queries
        # appear together in one rename; `queries_path` is then linked to it.
        callback = QueryCallback(challenge_ids, tmp / QUERIES_FILE, num_queries=query.num_queries,
                                 augmentation=query.augmentation, rate=query.rate,
                                 include_original=query.include_original, seed=(seed, 3, model_index),
                                 tokenizer=tokenizer, batch_size=query.batch_size)
        dataset = [{"input_ids": ids, "labels": y} for ids, y in zip(train_ids, train_labels, strict=True)]
        targs = training_arguments(tmp / "trainer", epochs=args.epochs, learning_rate=args.learning_rate,
                                   batch_size=args.batch_size, weight_decay=args.weight_decay, warmup_ratio=0.0,
                                   precision=args.precision, seed=seed, trainer=args.trainer,
                                   group_by_length=args.group_by_length)
        trainer = method.trainer(model, targs, dataset, tokenizer, [callback], args, seed)
        result = trainer.train()
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        probs = predict_proba(model, eval_ids, tokenizer.pad_token_id, query.batch_size)
        metrics = {"method": args.method, "train_loss": result.training_loss, "steps": result.global_step,
                   "eval_accuracy": float(np.mean(probs.argmax(-1) == np.asarray(eval_labels))),
                   "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                   "torch_threads": torch.get_num_threads(),
                   **method.training_metrics(trainer)}
        model.save_pretrained(tmp)
        atomic_write_json(tmp / "method.json", {
            "method": args.method, "num_labels": num_labels, "finetune": dataclasses.asdict(args),
            "pretrained": os.path.relpath(Path(pretrained).resolve(), Path(output).resolve())})
        atomic_write_json(tmp / "metrics.json", metrics)
    atomic_link(Path(output) / QUERIES_FILE, queries_path)
    return metrics


# Importing the modules registers the methods.
from tmi_nlp.models.finetune import dp, full, linear, lora  # noqa: E402, F401
