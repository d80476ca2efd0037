"""Shadow pretraining: a BERT masked LM trained from scratch by HF Trainer on a model's half pool."""

import shutil
from pathlib import Path

import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, PreTrainedTokenizerBase, set_seed
from transformers.modeling_outputs import MaskedLMOutput

from tmi_nlp.config import ModelArguments, PretrainArguments
from tmi_nlp.models.training import quiet_trainer, training_arguments
from tmi_nlp.store import atomic_dir


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


def pretrain_model(train_ids: list[list[int]], tokenizer: PreTrainedTokenizerBase, model_args: ModelArguments,
                   args: PretrainArguments, seed: int, output: Path) -> dict:
    """Train one masked LM from scratch on `train_ids` and save it (safetensors) atomically at `output`."""
    set_seed(seed)
    model = BertForMaskedLMSparse(bert_config(model_args, tokenizer))
    # No collator seed: it refuses to run in a worker process; set_seed makes the masking reproducible.
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=args.mlm_probability)
    dataset = [{"input_ids": ids} for ids in train_ids]
    with atomic_dir(output) as tmp:
        targs = training_arguments(tmp / "trainer", epochs=args.epochs, learning_rate=args.learning_rate,
                                   batch_size=args.batch_size, weight_decay=args.weight_decay,
                                   warmup=args.warmup_ratio, bf16=args.bf16, seed=seed)
        trainer = quiet_trainer(model=model, args=targs, data_collator=collator, train_dataset=dataset)
        result = trainer.train()
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        model.save_pretrained(tmp)
        # The checkpoint is a plain BertForMaskedLM (same state dict): say so for any loader.
        model.config.architectures = ["BertForMaskedLM"]
        model.config.save_pretrained(tmp)
    return {"train_loss": result.training_loss, "steps": result.global_step}
