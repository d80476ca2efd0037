"""`dp`: DP-SGD with opacus inside HF Trainer, on the parameters of `full`, `linear` or `lora`.

The Trainer is subclassed only for its optimizer (opacus's `DPOptimizer`: per-example clipping
and Gaussian noise) and its data loader (Poisson sampling, which the accountant assumes);
`PrivacyAccountingCallback` steps the RDP accountant after every optimizer step, clears the
per-example gradients and stops training before the budget would be exceeded.
The noise multiplier is chosen so that the planned number of steps spends exactly
(`epsilon`, `delta`); the epsilon actually spent is recorded in the model's metrics.

BERT's embeddings default to (1, L) position and token-type ids, which break per-example
gradients of those embeddings; `ExplicitIdsCollator` passes both as (B, L) tensors.
"""

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier
from opacus.data_loader import DPDataLoader
from opacus.optimizers import DPOptimizer
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase, Trainer, TrainerCallback

from tmi_nlp.config import FinetuneArguments, require
from tmi_nlp.models.finetune import FINETUNE_METHODS, FinetuneMethod, get_method, register
from tmi_nlp.models.training import quiet_trainer


@dataclass
class DPOptions:
    parameters: str = field(default="linear", metadata={
        "help": "Which parameters train under DP-SGD, as in the method of that name: full, linear or lora (its "
                "options then apply too)."})
    epsilon: float = field(default=8.0, metadata={"help": "Target epsilon, spent by the last step."})
    delta: float = field(default=1e-5, metadata={"help": "Target delta."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Per-example gradient clipping norm."})

    def __post_init__(self) -> None:
        s = "finetune.options.dp"
        require(self.epsilon > 0, s, "epsilon", self.epsilon, "a number > 0")
        require(0 < self.delta < 1, s, "delta", self.delta, "a number in (0, 1)")
        require(self.max_grad_norm > 0, s, "max_grad_norm", self.max_grad_norm, "a number > 0")

# Opacus's default RDP orders stop at 63; few, large-sample-rate steps (tiny datasets) need higher
# orders for a tight bound, so the range is extended (the bound is valid for any set of orders).
RDP_ORDERS = RDPAccountant.DEFAULT_ALPHAS + list(range(64, 512, 8))


class ExplicitIdsCollator:
    """Pads like `DataCollatorWithPadding` and adds (B, L) `position_ids` and `token_type_ids`."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.pad(features)
        rows, width = batch["input_ids"].shape
        batch["position_ids"] = torch.arange(width).expand(rows, width).clone()
        batch["token_type_ids"] = torch.zeros(rows, width, dtype=torch.long)
        return batch


class PrivacyAccountingCallback(TrainerCallback):
    """Steps the accountant after each optimizer step and stops before the budget is exceeded."""

    def __init__(self, optimizer_holder: "DPTrainer") -> None:
        self.trainer = optimizer_holder

    def on_step_end(self, args, state, control, **kwargs):
        t = self.trainer
        t.dp_optimizer.zero_grad(set_to_none=True)  # Trainer's model.zero_grad() leaves per-example grads
        t.accountant.step(noise_multiplier=t.noise_multiplier, sample_rate=t.sample_rate)
        # Stop when one more step would overspend (steps are planned to end exactly at the budget).
        if t.epsilon_after(1) > t.target_epsilon * 1.01:
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.trainer.grad_sample_module.remove_hooks()


class DPTrainer(Trainer):
    """HF Trainer with opacus's optimizer and Poisson-sampled data loader; nothing else changes."""

    def __init__(self, *args, target_epsilon: float, target_delta: float, max_grad_norm: float,
                 sampling_seed: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.target_epsilon, self.target_delta, self.max_grad_norm = target_epsilon, target_delta, max_grad_norm
        self.sampling_seed = sampling_seed
        n = len(self.train_dataset)
        self.sample_rate = min(1.0, self.args.per_device_train_batch_size / n)
        self.planned_steps = max(1, math.ceil(self.args.num_train_epochs / self.sample_rate))
        self.noise_multiplier = get_noise_multiplier(target_epsilon=target_epsilon, target_delta=target_delta,
                                                     sample_rate=self.sample_rate, steps=self.planned_steps,
                                                     accountant="rdp", alphas=RDP_ORDERS)
        self.args.max_steps = self.planned_steps
        self.accountant = RDPAccountant()
        # One step's RDP at every order, computed once: checking the budget after each step is then cheap.
        self.rdp_per_step = np.asarray(rdp_analysis.compute_rdp(
            q=self.sample_rate, noise_multiplier=self.noise_multiplier, steps=1, orders=RDP_ORDERS))
        # The hooks sit on the model's own layers, so Trainer keeps calling the plain model.
        self.grad_sample_module = GradSampleModule(self.model, loss_reduction="mean")
        self.dp_optimizer: DPOptimizer | None = None
        self.add_callback(PrivacyAccountingCallback(self))

    def steps_taken(self) -> int:
        return sum(steps for _, _, steps in self.accountant.history)

    def epsilon_after(self, more_steps: int = 0) -> float:
        """Epsilon spent after the steps taken plus `more_steps` (RDP adds up over identical steps)."""
        steps = self.steps_taken() + more_steps
        if not steps:
            return 0.0
        return float(rdp_analysis.get_privacy_spent(orders=RDP_ORDERS, rdp=self.rdp_per_step * steps,
                                                    delta=self.target_delta)[0])

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.dp_optimizer is None:
            super().create_optimizer(model)
            self.dp_optimizer = DPOptimizer(
                self.optimizer, noise_multiplier=self.noise_multiplier, max_grad_norm=self.max_grad_norm,
                expected_batch_size=self.args.per_device_train_batch_size, loss_reduction="mean",
                generator=torch.Generator().manual_seed(self.sampling_seed + 1))
            self.optimizer = self.dp_optimizer
        return self.optimizer

    def get_train_dataloader(self) -> DataLoader:
        loader = DataLoader(self.train_dataset, batch_size=self.args.per_device_train_batch_size,
                            collate_fn=self.data_collator)
        return DPDataLoader.from_data_loader(loader, generator=torch.Generator().manual_seed(self.sampling_seed))

    def privacy_metrics(self) -> dict:
        # The accountant's own figure over its recorded history, not the shortcut used while training.
        epsilon = self.accountant.get_epsilon(self.target_delta, alphas=RDP_ORDERS) if self.steps_taken() else 0.0
        return {"epsilon": float(epsilon), "delta": self.target_delta, "target_epsilon": self.target_epsilon,
                "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate,
                "max_grad_norm": self.max_grad_norm, "dp_steps": self.steps_taken(), "accountant": "rdp"}


@register
class DPFinetune(FinetuneMethod):
    name = "dp"
    options_class = DPOptions
    # Noise averages out over large batches and more steps (docs/experiments.md, the DP-SGD scan).
    defaults = {"epochs": 10.0, "learning_rate": 2e-2, "batch_size": 256}

    def uses(self, args: FinetuneArguments) -> list[str]:
        return [self.name, self.options(args).parameters]

    def check(self, args: FinetuneArguments) -> None:
        parameters = self.options(args).parameters
        others = sorted(set(FINETUNE_METHODS) - {self.name})
        require(parameters in others, "finetune.options.dp", "parameters", parameters, f"one of {others}")
        # Poisson sampling: a batch is empty with probability exp(-batch_size) per step.
        require(args.batch_size >= 16, "finetune", "batch_size", args.batch_size,
                "an integer >= 16 with method 'dp' (Poisson batches of a smaller mean can be empty)")

    def build(self, pretrained: Path, num_labels: int, train_ids: list[list[int]],
              tokenizer: PreTrainedTokenizerBase, args: FinetuneArguments) -> torch.nn.Module:
        return get_method(self.options(args).parameters).build(pretrained, num_labels, train_ids, tokenizer, args)

    def load(self, finetuned: Path) -> torch.nn.Module:
        stored = json.loads((finetuned / "method.json").read_text())["finetune"]
        # Models finetuned before the options moved (finetune.options.dp) stored dp_parameters.
        parameters = stored["options"]["dp"]["parameters"] if "options" in stored else stored["dp_parameters"]
        return get_method(parameters).load(finetuned)

    def trainer(self, model: torch.nn.Module, training_args, dataset: list[dict], tokenizer: PreTrainedTokenizerBase,
                callbacks: list, args: FinetuneArguments, seed: int) -> Trainer:
        # Trainer's own clipping would act on the noised mean gradient; opacus clips per example.
        options = self.options(args)
        training_args = dataclasses.replace(training_args, max_grad_norm=0.0, remove_unused_columns=False,
                                            bf16=False)  # per-example gradients in fp32
        return quiet_trainer(trainer_class=DPTrainer, model=model, args=training_args, train_dataset=dataset,
                             callbacks=callbacks, data_collator=ExplicitIdsCollator(tokenizer),
                             target_epsilon=options.epsilon, target_delta=options.delta,
                             max_grad_norm=options.max_grad_norm, sampling_seed=seed)

    def training_metrics(self, trainer: Trainer) -> dict:
        return trainer.privacy_metrics()
