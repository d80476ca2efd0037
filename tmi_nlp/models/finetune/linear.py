"""`linear`: the encoder is frozen; a linear head reads its standardised [CLS] (or mean) state.

The reference code's default. An MLM-pretrained checkpoint has no trained pooler, and the raw
hidden states have a few huge coordinates, so the head reads features standardised with the
training set's mean and standard deviation (without it the head barely learned in a prototype).
The encoder runs without dropout: it is frozen, so its features are deterministic.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel, BertPreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import SequenceClassifierOutput

from tmi_nlp.callbacks import pad_batch
from tmi_nlp.config import FinetuneArguments, require
from tmi_nlp.models.finetune import FinetuneMethod, register


@dataclass
class LinearOptions:
    pooling: str = field(default="cls", metadata={
        "help": "What the head reads: the [CLS] state ('cls') or the mean token state ('mean')."})

    def __post_init__(self) -> None:
        require(self.pooling in ("cls", "mean"), "finetune.options.linear", "pooling", self.pooling,
                "'cls' or 'mean'")


class BertLinearProbe(BertPreTrainedModel):
    """Frozen BERT encoder, pooled state ('cls' or masked 'mean', `config.probe_pooling`), z-score, linear."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.register_buffer("feature_mean", torch.zeros(config.hidden_size))
        self.register_buffer("feature_std", torch.ones(config.hidden_size))
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()
        self.bert.requires_grad_(False)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
        if getattr(self.config, "probe_pooling", "cls") == "mean":
            mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).unsqueeze(-1)
            return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
        return hidden[:, 0]

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs) -> SequenceClassifierOutput:
        features = (self.pooled(input_ids, attention_mask) - self.feature_mean) / self.feature_std
        logits = self.classifier(features)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    @torch.no_grad()
    def fit_standardisation(self, train_ids: list[list[int]], pad_id: int, batch_size: int = 256) -> None:
        self.eval()
        feats = []
        for start in range(0, len(train_ids), batch_size):
            ids, mask = pad_batch(train_ids[start:start + batch_size], pad_id)
            feats.append(self.pooled(ids.to(self.device), mask.to(self.device)))
        feats = torch.cat(feats)
        self.feature_mean.copy_(feats.mean(0))
        self.feature_std.copy_(feats.std(0).clamp_min(1e-6))
        self.train()


@register
class LinearProbe(FinetuneMethod):
    name = "linear"
    options_class = LinearOptions
    defaults = {"epochs": 3.0, "learning_rate": 5e-3, "batch_size": 32}  # only the head trains: a high rate

    def build(self, pretrained: Path, num_labels: int, train_ids: list[list[int]],
              tokenizer: PreTrainedTokenizerBase, args: FinetuneArguments) -> torch.nn.Module:
        config = BertConfig.from_pretrained(pretrained, num_labels=num_labels, hidden_dropout_prob=0.0,
                                            attention_probs_dropout_prob=0.0)
        config.probe_pooling = self.options(args).pooling
        model = BertLinearProbe.from_pretrained(pretrained, config=config, use_safetensors=True)
        model.bert.requires_grad_(False)  # again: loading may reset requires_grad
        model.fit_standardisation(train_ids, tokenizer.pad_token_id)
        return model

    def load(self, finetuned: Path) -> torch.nn.Module:
        return BertLinearProbe.from_pretrained(finetuned, use_safetensors=True)
