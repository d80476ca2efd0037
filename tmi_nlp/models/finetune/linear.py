"""`linear`: the encoder is frozen; a linear head reads its z-scored [CLS] state.

The reference code's default. An MLM-pretrained checkpoint has no trained pooler, and the raw
[CLS] state has a few huge coordinates, so the head reads the [CLS] state standardised with the
training set's mean and standard deviation (without it the head barely learned in a prototype).
The encoder runs without dropout: it is frozen, so its features should be deterministic.
"""

from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerBase

from tmi_nlp.models.finetune import FinetuneMethod, register


class ZScoredCLS(torch.nn.Module):
    """Pooler replacement: (h[CLS] - mean) / std, with mean and std saved as buffers."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(hidden_size))
        self.register_buffer("std", torch.ones(hidden_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return (hidden_states[:, 0] - self.mean) / self.std


def _frozen_probe(model: BertForSequenceClassification) -> BertForSequenceClassification:
    model.bert.pooler = ZScoredCLS(model.config.hidden_size)
    for param in model.bert.parameters():
        param.requires_grad_(False)
    return model


@torch.no_grad()
def _fit_zscore(model: BertForSequenceClassification, train_ids: list[list[int]], pad_id: int) -> None:
    model.eval()
    states = []
    for start in range(0, len(train_ids), 256):
        batch = train_ids[start:start + 256]
        width = max(len(x) for x in batch)
        ids = torch.full((len(batch), width), pad_id)
        for row, x in enumerate(batch):
            ids[row, : len(x)] = torch.as_tensor(x)
        states.append(model.bert(input_ids=ids, attention_mask=(ids != pad_id).long())[0][:, 0])
    cls = torch.cat(states)
    model.bert.pooler.mean.copy_(cls.mean(0))
    model.bert.pooler.std.copy_(cls.std(0).clamp_min(1e-6))
    model.train()


@register
class LinearProbe(FinetuneMethod):
    name = "linear"

    def build(self, pretrained: Path, num_labels: int, train_ids: list[list[int]],
              tokenizer: PreTrainedTokenizerBase) -> torch.nn.Module:
        model = BertForSequenceClassification.from_pretrained(
            pretrained, num_labels=num_labels, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        model = _frozen_probe(model)
        _fit_zscore(model, train_ids, tokenizer.pad_token_id)
        return model

    def load(self, finetuned: Path) -> torch.nn.Module:
        model = _frozen_probe(BertForSequenceClassification(BertConfig.from_pretrained(finetuned)))
        model.load_state_dict(load_file(finetuned / "model.safetensors"))
        return model
