"""Masked-LM pretraining by HF Trainer: a shadow on its half pool (from scratch, or continued from a base encoder,
mixed with public background text), and the base encoder itself."""

import math
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, PreTrainedTokenizerBase, set_seed
from transformers.modeling_outputs import MaskedLMOutput

from tmi_nlp.atomic import atomic_dir
from tmi_nlp.callbacks import pad_batch
from tmi_nlp.config import MaskedLMArguments, ModelArguments, PretrainArguments
from tmi_nlp.models.training import quiet_trainer, training_arguments


class BertForMaskedLMSparse(BertForMaskedLM):
    """`BertForMaskedLM` that projects onto the vocabulary only at masked positions.

    The loss equals the standard masked-LM loss (labels -100 elsewhere are ignored by both),
    but the vocabulary projection, the largest matmul of a tiny BERT, runs on ~15% of the
    tokens. The state dict is `BertForMaskedLM`'s, so checkpoints load into either class.
    """

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        if labels is None:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids, **kwargs)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids)[0]
        selected = labels != -100
        logits = self.cls(hidden[selected])
        loss = F.cross_entropy(logits.float(), labels[selected])
        return MaskedLMOutput(loss=loss, logits=logits)


def bert_config(args: ModelArguments, tokenizer: PreTrainedTokenizerBase, **overrides) -> BertConfig:
    return BertConfig(vocab_size=len(tokenizer), hidden_size=args.hidden_size,
                      num_hidden_layers=args.num_hidden_layers, num_attention_heads=args.num_attention_heads,
                      intermediate_size=args.intermediate_size, max_position_embeddings=args.max_length,
                      pad_token_id=tokenizer.pad_token_id, **overrides)


def pretraining_texts(private: list[list[int]], background: list[list[int]], passes: float, private_share: float,
                      seed: int) -> list[list[int]]:
    """What a model continues pretraining on: each private text `passes` times (a fractional last pass takes a
    seeded share of them), and on each pass fresh background texts, so that private texts are `private_share`
    of all. Background texts are drawn without replacement until they run out, then reshuffled."""
    rng = np.random.default_rng([seed, 17])
    order, cursor, texts = rng.permutation(len(background)), 0, []
    for p in range(math.ceil(passes)):
        share = min(1.0, passes - p)
        chosen = (private if share == 1.0 else
                  [private[j] for j in np.sort(rng.choice(len(private), round(share * len(private)), replace=False))])
        texts.extend(chosen)
        for _ in range(round(len(chosen) * (1 - private_share) / private_share)):
            if cursor == len(order):
                order, cursor = rng.permutation(len(background)), 0
            texts.append(background[order[cursor]])
            cursor += 1
    return texts


def pretrain_model(train_ids: list[list[int]], tokenizer: PreTrainedTokenizerBase, model_args: ModelArguments,
                   args: PretrainArguments, seed: int, output: Path, init_from: str | Path = "",
                   background: list[list[int]] | None = None) -> dict:
    """Train one masked LM on `train_ids` for `args.epochs` passes, from scratch or from the checkpoint `init_from`
    (mixed with `background` texts when `args.private_share` < 1); save it atomically."""
    set_seed(seed)
    if init_from:
        model = BertForMaskedLMSparse.from_pretrained(init_from, use_safetensors=True)
        if model.config.vocab_size < len(tokenizer):
            raise ValueError(f"base {str(init_from)!r}: vocab_size {model.config.vocab_size} "
                             f"is smaller than the run's tokenizer ({len(tokenizer)} tokens); expected the "
                             f"checkpoint's own tokenizer")
    else:
        model = BertForMaskedLMSparse(bert_config(model_args, tokenizer))
    epochs, texts = args.epochs, train_ids
    if args.private_share < 1:
        if not background:
            raise ValueError("pretrain.private_share < 1 needs background texts; expected a base corpus")
        # Every pass is in the stream already; one Trainer epoch shuffles it.
        epochs, texts = 1.0, pretraining_texts(train_ids, background, args.epochs, args.private_share, seed)
    with atomic_dir(output) as tmp:
        result = train_masked_lm(model, texts, tokenizer, args, epochs, seed, tmp)
        save_masked_lm(model, tmp)
    return {**result, "private_texts": len(train_ids), "texts_seen": len(texts) * epochs}


def train_masked_lm(model: BertForMaskedLM, texts: list[list[int]], tokenizer: PreTrainedTokenizerBase,
                    args: MaskedLMArguments, epochs: float, seed: int, workdir: Path, progress: bool = False) -> dict:
    """The Trainer loop of every masked LM (shadow or base), its scratch files in `workdir` (removed after).
    `progress`: the Trainer's own bar (for the one long training of a base)."""
    # No collator seed: it refuses to run in a worker process; set_seed makes the masking reproducible.
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=args.mlm_probability)
    dataset = [{"input_ids": ids} for ids in texts]
    targs = training_arguments(workdir / "trainer", epochs=epochs, learning_rate=args.learning_rate,
                               batch_size=args.batch_size, weight_decay=args.weight_decay,
                               warmup_ratio=args.warmup_ratio, precision=args.precision, seed=seed,
                               trainer={"disable_tqdm": False, **args.trainer} if progress else args.trainer)
    trainer = quiet_trainer(model=model, args=targs, data_collator=collator, train_dataset=dataset)
    result = trainer.train()
    shutil.rmtree(workdir / "trainer", ignore_errors=True)
    return {"train_loss": result.training_loss, "steps": result.global_step,
            "tokens_per_s": sum(map(len, texts)) * epochs / result.metrics["train_runtime"]}


def save_masked_lm(model: BertForMaskedLM, folder: Path) -> None:
    """Save a trained masked LM (safetensors) as a plain BertForMaskedLM checkpoint."""
    model.save_pretrained(folder)
    # The sparse-head class has BertForMaskedLM's state dict: say so for any loader.
    model.config.architectures = ["BertForMaskedLM"]
    model.config.save_pretrained(folder)


# Names how masked_lm_losses draws its masks; runs whose signals differ in it cannot be compared.
MASKS = "seeded by each text's token ids"


@torch.no_grad()
def masked_lm_losses(model: BertForMaskedLM, token_ids: list[list[int]], tokenizer: PreTrainedTokenizerBase,
                     groups: int = 5, batch_size: int = 256) -> np.ndarray:
    """float64 [K]: each text's mean masked-LM loss when every token is masked exactly once.

    The tokens of each text (ids without specials) are split into `groups` random groups, seeded by
    the ids themselves, so that every model of every run masks a text the same way whatever its
    position or the run's seed (shadows and victims from two runs are compared point by point);
    each group is masked in one copy. This is the pseudo-log-likelihood at 1/`groups` of its cost,
    and the white-box signal of memorisation that the `mlm_loss_lira` reference attack reads.
    """
    model.eval()
    copies, targets = [], []
    for k, ids in enumerate(token_ids):
        group = np.random.default_rng([groups, *ids]).permutation(len(ids)) % groups
        for g in range(min(groups, len(ids))):
            positions = np.flatnonzero(group == g)
            masked = np.array(ids)
            masked[positions] = tokenizer.mask_token_id
            copies.append([tokenizer.cls_token_id, *masked.tolist(), tokenizer.sep_token_id])
            targets.append((k, positions + 1, np.asarray(ids)[positions]))
    total, count = np.zeros(len(token_ids)), np.zeros(len(token_ids))
    device = next(model.parameters()).device
    for start in range(0, len(copies), batch_size):
        ids, mask = pad_batch(copies[start:start + batch_size], tokenizer.pad_token_id)
        hidden = model.bert(input_ids=ids.to(device), attention_mask=mask.to(device))[0]
        rows = [(row, pos, tgt) for row, (_, pos, tgt) in enumerate(targets[start:start + batch_size])]
        row_index = torch.as_tensor(np.concatenate([np.full(len(p), r) for r, p, _ in rows]))
        pos_index = torch.as_tensor(np.concatenate([p for _, p, _ in rows]))
        labels = torch.as_tensor(np.concatenate([t for _, _, t in rows]))
        logits = model.cls(hidden[row_index, pos_index]).float()
        losses = F.cross_entropy(logits, labels.to(device), reduction="none").cpu().numpy()
        owners = np.concatenate([np.full(len(p), targets[start + r][0]) for r, p, _ in rows])
        np.add.at(total, owners, losses)
        np.add.at(count, owners, 1)
    return total / np.maximum(count, 1)
