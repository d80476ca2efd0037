"""`lora`: peft LoRA adapters on the frozen encoder; the head and the pooler train in full.

Masked-LM pretraining never trains BERT's pooler, and the sequence-classification head reads
the pooler's output: with a frozen random pooler the head sees random features, so the pooler
is in `modules_to_save` by default (drop it from the list to keep it frozen).
The adapters (and the modules trained in full) are saved with `save_pretrained`; reloading
reads the pretrained checkpoint the model started from, recorded in `method.json`.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import BertForSequenceClassification, PreTrainedTokenizerBase

from tmi_nlp.config import FinetuneArguments, require
from tmi_nlp.models.finetune import FinetuneMethod, pretrained_path, register


@dataclass
class LoraOptions:
    r: int = field(default=8, metadata={"help": "Adapter rank."})
    alpha: float = field(default=16.0, metadata={"help": "Scaling numerator (scale = alpha / r)."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the adapter input."})
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"], metadata={
        "help": "Names of the Linear layers that get adapters."})
    modules_to_save: list[str] = field(default_factory=lambda: ["classifier", "pooler"], metadata={
        "help": "Modules trained in full next to the adapters. Keep 'pooler': masked-LM pretraining never trains "
                "it, so a frozen pooler feeds the head random features."})

    def __post_init__(self) -> None:
        s = "finetune.options.lora"
        require(self.r >= 1, s, "r", self.r, "an integer >= 1")
        require(self.alpha > 0, s, "alpha", self.alpha, "a number > 0")
        require(0 <= self.dropout < 1, s, "dropout", self.dropout, "a number in [0, 1)")
        require(len(self.target_modules) >= 1, s, "target_modules", self.target_modules,
                "a non-empty list of module names")


def lora_config(options: LoraOptions) -> LoraConfig:
    return LoraConfig(task_type=TaskType.SEQ_CLS, r=options.r, lora_alpha=options.alpha,
                      lora_dropout=options.dropout, target_modules=list(options.target_modules),
                      modules_to_save=list(options.modules_to_save))


@register
class LoraFinetune(FinetuneMethod):
    name = "lora"
    options_class = LoraOptions
    defaults = {"epochs": 3.0, "learning_rate": 5e-3, "batch_size": 32}

    def build(self, pretrained: Path, num_labels: int, train_ids: list[list[int]],
              tokenizer: PreTrainedTokenizerBase, args: FinetuneArguments) -> torch.nn.Module:
        options = self.options(args)
        base = BertForSequenceClassification.from_pretrained(pretrained, num_labels=num_labels, use_safetensors=True)
        names = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
        missing = [m for m in [*options.target_modules, *options.modules_to_save] if m not in names]
        if missing:
            raise ValueError(f"finetune.options.lora.target_modules/modules_to_save: {missing} are not modules of "
                             f"BertForSequenceClassification; expected names such as query, key, value, dense, "
                             f"classifier, pooler")
        return get_peft_model(base, lora_config(options))

    def load(self, finetuned: Path) -> torch.nn.Module:
        info = json.loads((finetuned / "method.json").read_text())
        base = BertForSequenceClassification.from_pretrained(pretrained_path(finetuned),
                                                             num_labels=info["num_labels"], use_safetensors=True)
        if not (finetuned / "adapter_model.safetensors").exists():
            raise FileNotFoundError(f"{finetuned}: no adapter_model.safetensors (pickled adapters are not loaded)")
        return PeftModel.from_pretrained(base, finetuned)
