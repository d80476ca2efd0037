"""`lora`: peft LoRA adapters on the frozen encoder; the head and the pooler train in full.

Masked-LM pretraining never trains BERT's pooler, and the sequence-classification head reads
the pooler's output: with a frozen random pooler the head sees random features, so the pooler
is in `lora_modules_to_save` by default (drop it from the list to keep it frozen).
The adapters (and the modules trained in full) are saved with `save_pretrained`; reloading
reads the pretrained checkpoint the model started from, recorded in `method.json`.
"""

import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import BertForSequenceClassification, PreTrainedTokenizerBase

from tmi_nlp.config import FinetuneArguments
from tmi_nlp.models.finetune import FinetuneMethod, pretrained_path, register


def lora_config(args: FinetuneArguments) -> LoraConfig:
    return LoraConfig(task_type=TaskType.SEQ_CLS, r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, target_modules=list(args.lora_target_modules),
                      modules_to_save=list(args.lora_modules_to_save))


@register
class LoraFinetune(FinetuneMethod):
    name = "lora"

    def build(self, pretrained: Path, num_labels: int, train_ids: list[list[int]],
              tokenizer: PreTrainedTokenizerBase, args: FinetuneArguments) -> torch.nn.Module:
        base = BertForSequenceClassification.from_pretrained(pretrained, num_labels=num_labels, use_safetensors=True)
        names = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
        missing = [m for m in [*args.lora_target_modules, *args.lora_modules_to_save] if m not in names]
        if missing:
            raise ValueError(f"finetune.lora_target_modules/lora_modules_to_save: {missing} are not modules of "
                             f"BertForSequenceClassification; expected names such as query, key, value, dense, "
                             f"classifier, pooler")
        return get_peft_model(base, lora_config(args))

    def load(self, finetuned: Path) -> torch.nn.Module:
        info = json.loads((finetuned / "method.json").read_text())
        base = BertForSequenceClassification.from_pretrained(pretrained_path(finetuned),
                                                             num_labels=info["num_labels"], use_safetensors=True)
        if not (finetuned / "adapter_model.safetensors").exists():
            raise FileNotFoundError(f"{finetuned}: no adapter_model.safetensors (pickled adapters are not loaded)")
        return PeftModel.from_pretrained(base, finetuned)
