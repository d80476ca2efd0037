"""Masked-LM loss, finetuning methods and the query callback on tiny models."""

import json

import numpy as np
import pytest
import torch
from transformers import (
    BertForMaskedLM,
    BertForSequenceClassification,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    set_seed,
)

from tmi_nlp.callbacks import QueryCallback, predict_proba
from tmi_nlp.config import FinetuneArguments, ModelArguments, PretrainArguments, QueryArguments
from tmi_nlp.data.synthetic import synthetic_downstream, synthetic_pool
from tmi_nlp.models.finetune import FINETUNE_METHODS, finetune_model, get_method, load_finetuned
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


# The shared tester: every method (DP over each parameter set) trains exactly the parameters it names.
METHOD_CASES = [("full", {}), ("linear", {}), ("lora", {}), ("dp", {"dp": {"parameters": "full"}}),
                ("dp", {"dp": {"parameters": "linear"}}), ("dp", {"dp": {"parameters": "lora"}})]


def _may_change(kind: str, name: str) -> bool:
    if kind == "full":
        return True
    if kind == "linear":
        return name.startswith("classifier.")
    return "lora_" in name or "modules_to_save" in name  # lora


def test_every_method_is_in_the_shared_tester():
    assert {m for m, _ in METHOD_CASES} == set(FINETUNE_METHODS)


@pytest.mark.parametrize(("method", "extra"), METHOD_CASES,
                         ids=[m + "-" + "".join(o["parameters"] for o in e.values()) for m, e in METHOD_CASES])
def test_finetune_method_trains_the_right_parameters(setup, method, extra, tmp_path):
    s = setup
    args = FinetuneArguments(method=method, epochs=1.0, learning_rate=1e-3, batch_size=16, options=extra)
    kind = extra["dp"]["parameters"] if extra else method
    query = QueryArguments(num_queries=3)
    set_seed(0)
    model = get_method(method).build(s["root"] / "pretrained", 8, s["train"], s["tok"], args)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    metrics = finetune_model(s["root"] / "pretrained", s["train"], s["labels"], s["eval"], s["eval_labels"], 8,
                             s["tok"], args, query, s["challenge"], seed=0, model_index=0,
                             output=tmp_path / "ft", queries_path=tmp_path / "q.npy", model=model)
    q = np.load(tmp_path / "q.npy")
    assert q.shape == (6, 3, 8) and np.allclose(q.sum(-1), 1, atol=1e-5)
    assert metrics["method"] == method and 0 <= metrics["eval_accuracy"] <= 1
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed, "nothing trained"
    assert all(_may_change(kind, n) for n in changed), sorted(n for n in changed if not _may_change(kind, n))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(_may_change(kind, n) for n in trainable)
    if kind == "full":
        encoder = {n for n in before if ".encoder." in n}
        assert encoder <= changed
    if kind == "lora":
        assert any("lora_B" in n for n in changed) and any("pooler" in n for n in changed)
        assert any("classifier" in n for n in changed)
    if method == "dp":
        assert 0.9 * 8.0 <= metrics["epsilon"] <= 1.01 * 8.0  # the default target epsilon
        assert metrics["noise_multiplier"] > 0 and metrics["dp_steps"] == metrics["steps"]
    files = {p.name for p in (tmp_path / "ft").iterdir()}
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    assert ("adapter_model.safetensors" if kind == "lora" else "model.safetensors") in files
    reloaded = load_finetuned(tmp_path / "ft")
    again = predict_proba(reloaded, [[s["tok"].cls_token_id, *x, s["tok"].sep_token_id] for x in s["challenge"]],
                          s["tok"].pad_token_id)
    assert np.allclose(again, q[:, 0], atol=1e-4)  # query 0 is the unaugmented text


def test_the_linear_probe_reads_each_training_text_once_whatever_the_epochs(setup, tmp_path):
    """The frozen encoder's states are computed once per model; epochs only retrain the head on them, and the
    probe trained on cached states predicts as the same head on states computed afresh."""
    s, encoded = setup, {}
    for epochs in (1.0, 3.0):
        args = FinetuneArguments(method="linear", epochs=epochs, learning_rate=5e-3, batch_size=16)
        set_seed(0)
        model = get_method("linear").build(s["root"] / "pretrained", 8, s["train"], s["tok"], args)
        texts = []
        model.bert.register_forward_hook(lambda module, a, kw, out, seen=texts: seen.append(len(kw["input_ids"])),
                                         with_kwargs=True)
        finetune_model(s["root"] / "pretrained", s["train"], s["labels"], s["eval"], s["eval_labels"], 8, s["tok"],
                       args, QueryArguments(num_queries=3), s["challenge"], seed=0, model_index=0,
                       output=tmp_path / f"ft{epochs}", queries_path=tmp_path / f"q{epochs}.npy", model=model)
        encoded[epochs] = sum(texts)
    # After build: the eval texts and the challenge queries only, never the training texts again.
    assert encoded[1.0] == encoded[3.0] == len(s["eval"]) + 3 * len(s["challenge"])


def test_lora_with_an_unknown_module_name_is_a_clear_error(setup):
    args = FinetuneArguments(method="lora", options={"lora": {"target_modules": ["q_proj"]}})
    with pytest.raises(ValueError, match="q_proj"):
        get_method("lora").build(setup["root"] / "pretrained", 8, setup["train"], setup["tok"], args)


def test_dp_per_example_gradients_match_a_micro_batch_reference(setup):
    """opacus's per-example gradients on a tiny BERT equal one backward pass per example."""
    from opacus import GradSampleModule

    from tmi_nlp.models.finetune.dp import ExplicitIdsCollator

    s = setup
    set_seed(0)
    config = bert_config(MODEL, s["tok"], num_labels=8)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0  # opacus hooks need train mode
    model = BertForSequenceClassification(config).train()
    grad_sample_module = GradSampleModule(model, loss_reduction="mean")
    rows = [{"input_ids": x[: 12 + 7 * i], "labels": y}  # different lengths, so padding is exercised
            for i, (x, y) in enumerate(zip(s["train"][:5], s["labels"][:5], strict=True))]
    collate = ExplicitIdsCollator(s["tok"])
    model(**collate(rows)).loss.backward()
    per_example = {n: p.grad_sample.clone() for n, p in model.named_parameters()}
    grad_sample_module.disable_hooks()
    for i, row in enumerate(rows):
        model.zero_grad(set_to_none=True)
        model(**collate([row])).loss.backward()
        for name, p in model.named_parameters():
            reference = p.grad if p.grad is not None else torch.zeros_like(p)
            assert torch.allclose(per_example[name][i], reference, atol=1e-5), (name, i)


def test_query_callback_on_a_users_own_trainer(setup, tmp_path):
    s = setup
    model = BertForSequenceClassification(bert_config(MODEL, s["tok"], num_labels=8))
    callback = QueryCallback(s["challenge"], tmp_path / "mine.npy", num_queries=4, augmentation="mask",
                             rate=0.2, include_original=False, seed=(0, 1), tokenizer=s["tok"])
    targs = training_arguments(tmp_path / "t", epochs=1, learning_rate=1e-3, batch_size=16, weight_decay=0,
                               warmup_ratio=0, precision="fp32", seed=0, trainer={})
    rows = [{"input_ids": x, "labels": y} for x, y in zip(s["train"], s["labels"], strict=True)]
    trainer = quiet_trainer(model=model, args=targs, train_dataset=rows,
                            data_collator=DataCollatorWithPadding(s["tok"]), callbacks=[callback])
    trainer.train()
    stored, queries = np.load(tmp_path / "mine.npy"), callback.queries()
    assert stored.shape == (6, 4, 8) and len(queries) == 24
    # The file holds the trained model's softmax on exactly these queries, point-major.
    assert np.allclose(stored.reshape(24, 8), predict_proba(model, queries, s["tok"].pad_token_id), atol=1e-5)
    # include_original=False: every query is augmented, [MASK] at rate 0.2 (a text without one is rare).
    assert sum(s["tok"].mask_token_id in q for q in queries) >= 16


def test_tokenizer_is_reproducible_across_processes():
    import subprocess
    import sys

    code = ("from tmi_nlp.models.tokenizer import train_wordpiece; from tmi_nlp.data.synthetic import "
            "synthetic_pool; t = train_wordpiece(synthetic_pool(200, 0), 1000); "
            "print(sorted(t.get_vocab().items()))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(3)}
    assert len(outs) == 1
