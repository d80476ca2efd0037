"""A public checkpoint as the base: a head-less BertModel folder (as all-MiniLM-L6-v2 ships), its own tokenizer,
one seeded masked-LM head for every model, its weights' sha256 checked, and the same code for a Hub id."""

import json
from pathlib import Path

import pytest
import torch
from conftest import headless_checkpoint
from safetensors.torch import load_file

from tmi_nlp.cli import main
from tmi_nlp.config import RecipeError
from tmi_nlp.data.synthetic import synthetic_pool
from tmi_nlp.models import pretrain as pretrain_module
from tmi_nlp.models.tokenizer import load_tokenizer
from tmi_nlp.stages import base as base_stage
from tmi_nlp.stages.prepare import prepare
from tmi_nlp.stages.train import train_models
from tmi_nlp.store import RunDir

HEAD = "cls.predictions.transform.dense.weight"


def _corpus(tmp_path: Path) -> str:
    path = tmp_path / "public.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in synthetic_pool(160, seed=5)))
    return str(path)


def _recipe(tiny, tmp_path, checkpoint: str, sha256: str, **base):
    return tiny(base={"checkpoint": checkpoint, "checkpoint_sha256": sha256, "corpus": _corpus(tmp_path),
                      "chunk_words": 0, "heldout_texts": 20, "epochs": 0.0, "batch_size": 32, **base},
                pretrain={"epochs": 2.0, "private_share": 0.5})


def test_a_headless_checkpoint_gets_one_seeded_head_that_every_model_starts_from(tiny, tmp_path, monkeypatch):
    sha = headless_checkpoint(tmp_path / "minilm")
    recipe = _recipe(tiny, tmp_path, str(tmp_path / "minilm"), sha)
    starts = []
    real = pretrain_module.train_masked_lm

    def spy(model, texts, *args, **kwargs):
        starts.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(model, texts, *args, **kwargs)

    monkeypatch.setattr(pretrain_module, "train_masked_lm", spy)
    prepare(recipe)
    run = RunDir(recipe.run_dir)
    info = base_stage.base_info(run.base)
    assert HEAD in info["built_weights"] and info["checkpoint_sha256"] == sha
    assert not any(k.startswith("bert.encoder") for k in info["built_weights"])  # the encoder is the checkpoint's
    base = load_file(run.base / "model.safetensors")
    ours = load_file(tmp_path / "minilm" / "model.safetensors")
    torch.testing.assert_close(base["bert.encoder.layer.0.attention.self.query.weight"],
                               ours["encoder.layer.0.attention.self.query.weight"])
    # The checkpoint's own tokenizer: its vocabulary, lowercasing, token_type_ids.
    tokenizer = load_tokenizer(run.tokenizer)
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == \
        (tmp_path / "minilm" / "vocab.txt").read_text().split()[:5]
    assert tokenizer("Fever")["input_ids"] == tokenizer("fever")["input_ids"]
    assert "token_type_ids" in tokenizer("fever")
    train_models(recipe, stages=("pretrain",), models=[0, 1], progress=False)
    assert len(starts) == 2
    for start in starts:  # every model starts from the stored head, not a head of its own seed
        torch.testing.assert_close(start[HEAD], base[HEAD], rtol=0, atol=0)
    # Seeded: a second cache builds the same head.
    again = base_stage.build_base(tiny(base={**recipe.to_dict()["base"], "cache_dir": str(tmp_path / "other")},
                                       pretrain={"epochs": 2.0, "private_share": 0.5}))
    torch.testing.assert_close(load_file(again / "model.safetensors")[HEAD], base[HEAD], rtol=0, atol=0)


def test_head_training_moves_the_head_only_unless_told_and_lowers_the_heldout_loss(tiny, tmp_path):
    sha = headless_checkpoint(tmp_path / "minilm")
    recipe = _recipe(tiny, tmp_path, str(tmp_path / "minilm"), sha, epochs=3.0, learning_rate=0.01)
    folder = base_stage.build_base(recipe)
    info = base_stage.base_info(folder)
    assert info["heldout_mlm_loss"] < info["heldout_mlm_loss_as_loaded"] - 0.1
    base, ours = load_file(folder / "model.safetensors"), load_file(tmp_path / "minilm" / "model.safetensors")
    for key, value in ours.items():
        if not key.startswith("pooler"):
            torch.testing.assert_close(base[f"bert.{key}"], value, rtol=0, atol=0)
    # freeze_encoder: false adapts every weight on the public text (another base, under another key).
    unfrozen = base_stage.build_base(_recipe(tiny, tmp_path, str(tmp_path / "minilm"), sha, epochs=3.0,
                                             learning_rate=0.01, freeze_encoder=False))
    assert unfrozen != folder
    moved = load_file(unfrozen / "model.safetensors")["bert.encoder.layer.0.attention.self.query.weight"]
    assert not torch.allclose(moved, ours["encoder.layer.0.attention.self.query.weight"])


def test_the_background_share_reaches_the_trainer(tiny, tmp_path, monkeypatch):
    sha = headless_checkpoint(tmp_path / "minilm")
    recipe = _recipe(tiny, tmp_path, str(tmp_path / "minilm"), sha)
    seen = []
    real = pretrain_module.train_masked_lm

    def spy(model, texts, tokenizer, args, epochs, *rest, **kwargs):
        seen.append((texts, epochs))
        return real(model, texts, tokenizer, args, epochs, *rest, **kwargs)

    monkeypatch.setattr(pretrain_module, "train_masked_lm", spy)
    prepare(recipe)
    run = RunDir(recipe.run_dir)
    train_models(recipe, stages=("pretrain",), models=[0], progress=False)
    (texts, epochs), = seen
    private = {tuple(run.tokens()["pool"][j]) for j in range(len(run.load_plan().pool)) if run.load_plan().keep[0, j]}
    from_private = sum(tuple(t) in private for t in texts)
    assert epochs == 1.0 and from_private == 2 * len(private)  # 2 passes over the private half
    assert len(texts) - from_private == from_private  # private_share 0.5: as many public texts


def test_a_wrong_sha256_is_refused_before_anything_is_written(tiny, tmp_path, capsys):
    headless_checkpoint(tmp_path / "minilm")
    recipe = _recipe(tiny, tmp_path, str(tmp_path / "minilm"), "0" * 64)
    with pytest.raises(RecipeError, match=r"model.safetensors has sha256 [0-9a-f]{64}; expected 0{64}"):
        prepare(recipe)
    assert not recipe.run_dir.exists() and not (Path(recipe.run.output_dir) / "bases").exists()
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe.to_yaml())
    capsys.readouterr()
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "base.checkpoint_sha256" in err[0]


def test_a_hub_id_goes_through_the_same_loading_and_check(tiny, tmp_path, hub, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))  # a download, not a cached copy
    sha = headless_checkpoint(tmp_path / "minilm")
    hub.state.repos["public/tiny-minilm"] = {p.name: p.read_bytes() for p in (tmp_path / "minilm").iterdir()}
    hub.state.commits["public/tiny-minilm"] = "a" * 40
    recipe = _recipe(tiny, tmp_path, "public/tiny-minilm", sha)
    prepare(recipe)
    run = RunDir(recipe.run_dir)
    assert base_stage.base_info(run.base)["checkpoint_sha256"] == sha
    assert any(path.endswith("/model.safetensors") for _, path, _ in hub.state.requests)
    wrong = _recipe(tiny, tmp_path, "public/tiny-minilm", "f" * 64)
    wrong.run.name = "wrong"
    with pytest.raises(RecipeError, match="expected f{64}"):
        prepare(wrong)
    assert not wrong.run_dir.exists()
