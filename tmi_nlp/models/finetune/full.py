"""`full`: every weight of the pretrained encoder and the new head trains."""

from pathlib import Path

import torch
from transformers import BertForSequenceClassification, PreTrainedTokenizerBase

from tmi_nlp.config import FinetuneArguments
from tmi_nlp.models.finetune import FinetuneMethod, register


@register
class FullFinetune(FinetuneMethod):
    name = "full"
    # Best of 3e-4, 1e-3 and 2e-3 for the 1.5M-parameter encoders of the realistic recipes (docs/experiments.md,
    # base rows); a BERT-base wants 2e-5 to 5e-5: set finetune.learning_rate.
    defaults = {"epochs": 3.0, "learning_rate": 1e-3, "batch_size": 32}

    def build(self, pretrained: Path, num_labels: int, train_ids: list[list[int]],
              tokenizer: PreTrainedTokenizerBase, args: FinetuneArguments) -> torch.nn.Module:
        # The pooler was never trained by masked-LM pretraining; here it trains with the rest.
        return BertForSequenceClassification.from_pretrained(pretrained, num_labels=num_labels, use_safetensors=True)

    def load(self, finetuned: Path) -> torch.nn.Module:
        return BertForSequenceClassification.from_pretrained(finetuned, use_safetensors=True)
