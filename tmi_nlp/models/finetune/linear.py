"""`linear`: the encoder is frozen; a linear head reads its standardised [CLS] (or mean) state.

The reference code's default. An MLM-pretrained checkpoint has no trained pooler, and the raw
hidden states have a few huge coordinates, so the head reads features standardised with the
training set's mean and standard deviation (without it the head barely learned in a prototype).
The encoder runs without dropout: it is frozen, so its features are deterministic, and each
training text's are computed once per model and reused by every epoch (the encoder's forward is
nearly all of a probe's cost on a real encoder).
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    BertConfig,
    BertModel,
    BertPreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    default_data_collator,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from tmi_nlp.callbacks import pad_batch
from tmi_nlp.config import FinetuneArguments, require
from tmi_nlp.models.finetune import FinetuneMethod, register
from tmi_nlp.models.training import quiet_trainer


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

    def forward(self, input_ids=None, attention_mask=None, labels=None, pooled=None,
                **kwargs) -> SequenceClassifierOutput:
        """`pooled`: the encoder's pooled states, computed before (training reads each text's once)."""
        pooled = self.pooled(input_ids, attention_mask) if pooled is None else pooled
        features = (pooled - self.feature_mean) / self.feature_std
        logits = self.classifier(features)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    @torch.no_grad()
    def pooled_states(self, ids: list[list[int]], pad_id: int, batch_size: int = 256) -> torch.Tensor:
        """The pooled states of token-id lists [texts, hidden], in their order (computed in batches of similar
        length: little padding)."""
        was_training = self.training
        self.eval()
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        states = []
        for start in range(0, len(order), batch_size):
            batch, mask = pad_batch([ids[i] for i in order[start:start + batch_size]], pad_id)
            states.append(self.pooled(batch.to(self.device), mask.to(self.device)).float())
        self.train(was_training)
        return torch.cat(states)[torch.as_tensor(order).argsort()]

    def fit_standardisation(self, train_ids: list[list[int]], pad_id: int) -> torch.Tensor:
        """Set the standardisation from the training texts' pooled states; returns them [texts, hidden]."""
        states = self.pooled_states(train_ids, pad_id)
        self.feature_mean.copy_(states.mean(0))
        self.feature_std.copy_(states.std(0).clamp_min(1e-6))
        return states


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
        model.train_pooled = model.fit_standardisation(train_ids, tokenizer.pad_token_id).cpu()
        return model

    def trainer(self, model: torch.nn.Module, training_args, dataset: list[dict], tokenizer: PreTrainedTokenizerBase,
                callbacks: list, args: FinetuneArguments, seed: int) -> Trainer:
        """The Trainer over the pooled states `build` computed, one row per training text (in `dataset`'s order);
        the encoder does not run again until the queries."""
        pooled = model.train_pooled
        if args.precision == "bf16":  # the states as the encoder gives them under the training's autocast
            with torch.autocast(device_type=model.device.type, dtype=torch.bfloat16):
                pooled = model.pooled_states([row["input_ids"] for row in dataset], tokenizer.pad_token_id).cpu()
        if len(pooled) != len(dataset):
            raise ValueError(f"{len(dataset)} training texts but {len(pooled)} pooled states; expected the texts "
                             f"the model was built with")
        rows = [{"pooled": p, "labels": row["labels"]} for p, row in zip(pooled, dataset, strict=True)]
        training_args.train_sampling_strategy = "random"  # lengths do not matter once the states are computed
        return quiet_trainer(model=model, args=training_args, train_dataset=rows, callbacks=callbacks,
                             data_collator=default_data_collator)

    def load(self, finetuned: Path) -> torch.nn.Module:
        return BertLinearProbe.from_pretrained(finetuned, use_safetensors=True)
