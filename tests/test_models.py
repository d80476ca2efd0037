"""Masked-LM loss, finetuning methods and the query callback on tiny models."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import BertForMaskedLM, DataCollatorForLanguageModeling, DataCollatorWithPadding, set_seed

from tmi_nlp.callbacks import QueryCallback
from tmi_nlp.config import FinetuneArguments, ModelArguments, PretrainArguments, QueryArguments
from tmi_nlp.data.synthetic import synthetic_downstream, synthetic_pool
from tmi_nlp.models.finetune import FINETUNE_METHODS, finetune_model, load_finetuned
from tmi_nlp.models.pretrain import BertForMaskedLMSparse, bert_config, pretrain_model
from tmi_nlp.models.tokenizer import train_wordpiece
from tmi_nlp.models.training import quiet_trainer, training_arguments

MODEL = ModelArguments(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       max_length=48)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    pool = synthetic_pool(40, seed=0)
    texts, labels = synthetic_downstream(120, seed=0)
    tok = train_wordpiece(pool + texts, 300)
    enc = lambda t, s=True: tok(t, add_special_tokens=s, truncation=True, max_length=46 if not s else 48)["input_ids"]  # noqa: E731
    pretrain_model(enc(pool), tok, MODEL, PretrainArguments(epochs=1.0, batch_size=8), seed=0,
                   output=root / "pretrained")
    return {"root": root, "tok": tok, "pool": enc(pool), "train": enc(texts[:100]), "labels": labels[:100],
            "eval": enc(texts[100:]), "eval_labels": labels[100:], "challenge": enc(pool[:6], False)}


def test_sparse_mlm_loss_equals_standard_loss(setup):
    tok = setup["tok"]
    set_seed(0)
    model = BertForMaskedLM(bert_config(MODEL, tok)).eval()
    sparse = BertForMaskedLMSparse(bert_config(MODEL, tok)).eval()
    sparse.load_state_dict(model.state_dict())
    set_seed(1)
    batch = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)([{"input_ids": x} for x in setup["pool"][:16]])
    with torch.no_grad():
        full = model(**batch).loss
        fast = sparse(**batch)
    assert torch.allclose(full, fast.loss, atol=1e-5)
    assert fast.logits.shape == ((batch["labels"] != -100).sum().item(), len(tok))


def test_pretrained_checkpoint_is_safetensors_and_loads_as_bert(setup):
    path = setup["root"] / "pretrained"
    assert (path / "model.safetensors").exists() and not list(path.glob("*.bin"))
    assert json.loads((path / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    BertForMaskedLM.from_pretrained(path)


@pytest.mark.parametrize("method", sorted(FINETUNE_METHODS))
def test_finetune_method_trains_the_right_parameters(setup, method, tmp_path):
    s = setup
    args = FinetuneArguments(method=method, epochs=1.0, learning_rate=1e-3)
    query = QueryArguments(num_augmentations=3)
    metrics = finetune_model(s["root"] / "pretrained", s["train"], s["labels"], s["eval"], s["eval_labels"], 8,
                             s["tok"], args, query, s["challenge"], seed=0, model_index=0,
                             output=tmp_path / "ft", queries_path=tmp_path / "q.npy")
    q = np.load(tmp_path / "q.npy")
    assert q.shape == (6, 3, 8) and np.allclose(q.sum(-1), 1, atol=1e-5)
    assert metrics["method"] == method and 0 <= metrics["eval_accuracy"] <= 1
    before = load_file(s["root"] / "pretrained" / "model.safetensors")
    after = load_file(tmp_path / "ft" / "model.safetensors")
    changed = {k for k in before if k in after and not torch.equal(before[k], after[k])}
    encoder = {k for k in before if k.startswith("bert.encoder") or k.startswith("bert.embeddings")}
    if method == "linear":
        assert not changed & encoder
    else:
        assert encoder <= changed | {"bert.embeddings.token_type_embeddings.weight"}
    reloaded = load_finetuned(tmp_path / "ft")
    from tmi_nlp.callbacks import predict_proba

    again = predict_proba(reloaded, [[s["tok"].cls_token_id, *x, s["tok"].sep_token_id] for x in s["challenge"]],
                          s["tok"].pad_token_id)
    assert np.allclose(again, q[:, 0], atol=1e-4)  # query 0 is the unaugmented text


def test_query_callback_on_a_users_own_trainer(setup, tmp_path):
    from transformers import BertForSequenceClassification

    s = setup
    model = BertForSequenceClassification(bert_config(MODEL, s["tok"], num_labels=8))
    callback = QueryCallback(s["challenge"], tmp_path / "mine.npy", num_queries=4, augmentation="mask",
                             rate=0.2, include_original=False, seed=(0, 1), tokenizer=s["tok"])
    targs = training_arguments(tmp_path / "t", epochs=1, learning_rate=1e-3, batch_size=16, weight_decay=0,
                               warmup=0, bf16=False, seed=0)
    rows = [{"input_ids": x, "labels": y} for x, y in zip(s["train"], s["labels"], strict=True)]
    trainer = quiet_trainer(model=model, args=targs, train_dataset=rows,
                            data_collator=DataCollatorWithPadding(s["tok"]), callbacks=[callback])
    trainer.train()
    assert np.load(tmp_path / "mine.npy").shape == (6, 4, 8)


def test_tokenizer_is_reproducible_across_processes():
    import subprocess
    import sys

    code = ("from tmi_nlp.models.tokenizer import train_wordpiece; from tmi_nlp.data.synthetic import "
            "synthetic_pool; t = train_wordpiece(synthetic_pool(200, 0), 1000); "
            "print(sorted(t.get_vocab().items()))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(3)}
    assert len(outs) == 1
