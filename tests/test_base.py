"""The base encoder: trained once per content, shared by runs, continued from, disjoint from the pool."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import DataCollatorForLanguageModeling

from tmi_nlp.api import base_encoder
from tmi_nlp.cli import main
from tmi_nlp.data.loading import DataError
from tmi_nlp.data.synthetic import synthetic_pool
from tmi_nlp.models.pretrain import pretraining_texts
from tmi_nlp.models.tokenizer import load_tokenizer
from tmi_nlp.stages import base as base_stage
from tmi_nlp.stages.prepare import prepare
from tmi_nlp.stages.train import train_models
from tmi_nlp.store import RunDir


def _corpus(tmp_path: Path, seed: int = 5, size: int = 240) -> str:
    """A public corpus file: synthetic notes of another seed than the pool's (none in common: checked below)."""
    path = tmp_path / f"corpus-{seed}.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in synthetic_pool(size, seed)))
    return str(path)


def _with_base(tiny, tmp_path, corpus: str | None = None, **sections):
    base = {"corpus": corpus or _corpus(tmp_path), "chunk_words": 0, "heldout_texts": 20, "epochs": 1.0,
            "batch_size": 32}
    return tiny(base=base, **sections)


def test_a_base_is_trained_once_and_reused_and_a_changed_corpus_gives_another(tiny, tmp_path, monkeypatch):
    trained = []
    real = base_stage._train_base
    monkeypatch.setattr(base_stage, "_train_base", lambda *a: trained.append(a[2]) or real(*a))
    first = _with_base(tiny, tmp_path, run={"name": "one"})
    prepare(first)
    prepare(_with_base(tiny, tmp_path, run={"name": "two", "seed": 3}))  # another run, same base
    assert len(trained) == 1
    one, two = RunDir(first.run_dir), RunDir(tmp_path / "runs" / "two")
    assert (one.base / "model.safetensors").stat().st_ino == (two.base / "model.safetensors").stat().st_ino
    info = base_stage.base_info(one.base)
    assert info["heldout_texts"] == 20 and info["train_texts"] == 220 and np.isfinite(info["heldout_mlm_loss"])
    # The run's tokenizer is the base's: trained on the public corpus, not on the pool.
    assert (one.tokenizer / "tokenizer.json").read_text() == (one.base / "tokenizer.json").read_text()
    prepare(_with_base(tiny, tmp_path, corpus=_corpus(tmp_path, seed=6), run={"name": "three"}))
    assert len(trained) == 2 and trained[0] != trained[1]


def test_a_pool_that_shares_a_text_with_the_base_corpus_is_refused(tiny, tmp_path):
    pool = synthetic_pool(48, 0)  # the tiny recipe's pool (synthetic, seed 0)
    assert not set(pool) & set(synthetic_pool(240, 5))
    leaky = tmp_path / "leaky.jsonl"
    # One pool text, upper-cased with doubled spaces: the same text to an uncased tokenizer.
    texts = synthetic_pool(240, 5) + ["  ".join(pool[7].upper().split())]
    leaky.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    recipe = _with_base(tiny, tmp_path, corpus=str(leaky))
    with pytest.raises(DataError, match=r"base.corpus: 1 of the 48 pool texts are in the base corpus"):
        prepare(recipe)
    assert not RunDir(recipe.run_dir).config.exists()  # refused before anything was written


def test_shadows_start_from_the_base_and_see_the_dose_and_share_asked(tiny, tmp_path, monkeypatch):
    recipe = _with_base(tiny, tmp_path, pretrain={"epochs": 3.0, "private_share": 0.25, "learning_rate": 1e-12})
    run = prepare(recipe)
    seen: list[tuple[int, ...]] = []
    collate = DataCollatorForLanguageModeling.__call__
    monkeypatch.setattr(DataCollatorForLanguageModeling, "__call__",
                        lambda self, batch: seen.extend(tuple(x["input_ids"]) for x in batch) or collate(self, batch))
    train_models(recipe, stages=("pretrain",), models=[0], progress=False)
    tokens, keep = run.tokens(), run.load_plan().keep[0]
    private = [tuple(tokens["pool"][j]) for j in np.flatnonzero(keep)]
    counts = {text: seen.count(text) for text in private}
    assert set(counts.values()) == {3}  # every private text exactly E times
    assert len(seen) == 4 * 3 * len(private)  # a quarter of what the model saw is private
    background = {tuple(ids) for ids in tokens["background"]}
    assert sum(text in background for text in seen) == 3 * 3 * len(private)
    # At a learning rate of 1e-12 the shadow's weights are the base's: it started from them.
    ours, theirs = load_file(run.pretrained(0) / "model.safetensors"), load_file(run.base / "model.safetensors")
    for name, tensor in theirs.items():
        torch.testing.assert_close(ours[name], tensor, atol=1e-6, rtol=0)


def test_the_stream_takes_a_fractional_last_pass_and_fresh_background():
    private, background = [[i] for i in range(10)], [[100 + i] for i in range(1000)]
    texts = pretraining_texts(private, background, passes=2.5, private_share=0.5, seed=0)
    times = np.bincount([t[0] for t in texts if t[0] < 100], minlength=10)
    assert sorted(times) == [2] * 5 + [3] * 5  # two whole passes, then half of the texts once more
    assert sum(t[0] >= 100 for t in texts) == 25  # as many background texts: a private share of 0.5
    drawn = [t[0] for t in texts if t[0] >= 100]
    assert len(set(drawn)) == len(drawn)  # no background text repeats while fresh ones remain


def test_one_pretraining_serves_two_downstream_tasks_when_a_base_is_used(tiny, tmp_path):
    first = _with_base(tiny, tmp_path, run={"name": "task-a"})
    prepare(first)
    train_models(first, stages=("pretrain",), progress=False)
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"text": f"review {i} was {'good' if i % 2 else 'bad'} indeed", "label": i % 2})
                             + "\n" for i in range(300)))
    second = _with_base(tiny, tmp_path, run={"name": "task-b", "pretrained_from": str(first.run_dir)},
                        data={"downstream": str(other)})
    run = prepare(second)
    assert all(run.model_done(i, "pretrain") for i in range(4))
    assert run.tokens()["num_labels"] == 2 and run.tokens()["pool"] == RunDir(first.run_dir).tokens()["pool"]


def test_the_base_stage_from_the_cli_and_the_api_is_one_stored_base(tiny, tmp_path, capsys):
    recipe = _with_base(tiny, tmp_path)
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe.to_yaml())
    assert main(["base", str(path)]) == 0
    printed = capsys.readouterr().out
    info = base_encoder(recipe)
    assert info["folder"] in printed and f"held-out masked-LM loss {info['heldout_mlm_loss']:.3f}" in printed
    assert info["tokens_seen"] == sum(  # one epoch over the training texts
        len(ids) for ids in load_tokenizer(info["folder"])(base_stage.split_corpus(
            synthetic_pool(240, 5), 20, 0)[0], truncation=True, max_length=48)["input_ids"])
    assert main(["base", str(path), "--set", "base.corpus="]) == 2  # nothing to train on: a clean error


def test_a_base_is_the_same_whatever_random_state_the_process_is_in(tiny, tmp_path):
    """The base's init is seeded by base.seed: the Trainer seeds only after the model exists, and an unseeded init
    came from whatever the process had drawn before (two runs of one recipe ended 0.3 apart in held-out loss)."""
    recipe = _with_base(tiny, tmp_path)
    recipe = dataclasses.replace(recipe, base=dataclasses.replace(recipe.base, cache_dir=str(tmp_path / "one")))
    first = base_stage.build_base(recipe)
    torch.manual_seed(12345)
    torch.rand(7)
    again = dataclasses.replace(recipe, base=dataclasses.replace(recipe.base, cache_dir=str(tmp_path / "two")))
    second = base_stage.build_base(again)
    assert first != second
    weights = [load_file(folder / "model.safetensors") for folder in (first, second)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert base_stage.base_info(first)["heldout_mlm_loss"] == base_stage.base_info(second)["heldout_mlm_loss"]
