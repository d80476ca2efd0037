"""Smoke versions of the real-text recipes (recipes/real/): the same data and methods, tiny sizes."""

import json
from pathlib import Path

import pytest
from conftest import headless_checkpoint

from tmi_nlp.config import Recipe, load_recipe
from tmi_nlp.stages import run_all
from tmi_nlp.stages.victims import attack_victims
from tmi_nlp.store import RunDir

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RECIPES = sorted((ROOT / "recipes" / "real").glob("*.yaml"))


def smoke_recipe(path: Path, tmp_path: Path) -> Recipe:
    recipe = load_recipe(path, [
        f"run.output_dir={tmp_path}", "run.num_models=4", "run.num_points=12", "run.workers=1",
        "data.pool_size=40", "data.num_train=120", "data.num_eval=40", "tokenizer.vocab_size=500",
        "model.hidden_size=32", "model.num_hidden_layers=1", "model.intermediate_size=64", "model.max_length=48",
        "pretrain.epochs=1.0", "finetune.epochs=1.0", "query.num_queries=2",
        "attack.epochs=2", "attack.bootstrap=5", "attack.baselines=[lira_online,mlm_loss_lira]",
    ])
    # The recipes name ../shared/data relative to the repository root.
    for section, field in (("data", "pool"), ("data", "downstream"), ("base", "corpus")):
        files = [f for f in getattr(getattr(recipe, section), field).split(",") if f]
        setattr(getattr(recipe, section), field,
                ",".join(str(ROOT / f) if f.startswith("../shared/") else f for f in files))
    if recipe.base.checkpoint:  # a tiny checkpoint of the public one's format (BertModel, no head, vocab.txt)
        folder = tmp_path / "checkpoint"
        recipe.base.checkpoint_sha256 = (headless_checkpoint(folder) if not folder.exists() else
                                         recipe.base.checkpoint_sha256)
        recipe.base.checkpoint = str(folder)
    if recipe.base.corpus:  # a small base, cached in the test's folder
        recipe.base.max_texts, recipe.base.heldout_texts = 300, 20
        recipe.base.epochs = 1.0 if recipe.base.epochs else 0.0
        recipe.base.cache_dir = str(tmp_path / "bases")
    recipe.run.pretrained_from = ""  # each smoke run pretrains its own models
    return recipe


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data (the real-text datasets) is not next to this clone")
@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_real_recipe_smoke(path, tmp_path):
    recipe = smoke_recipe(path, tmp_path)
    victims = None
    if recipe.data.known_pool_of:  # partial knowledge: the victims' zoo first, then the shadows attack it
        of = "continued-agnews-full.yaml" if path.stem.startswith("continued") else "agnews-linear.yaml"
        victims = smoke_recipe(ROOT / "recipes" / "real" / of, tmp_path)
        run_all(victims, progress=False)
        recipe.data.known_pool_of = str(victims.run_dir)
    summary = run_all(recipe, progress=False)
    run = RunDir(recipe.run_dir)
    # The real task's classes reach the query tensor (AG News 4 topics, SST-2 2 sentiments), and every
    # (victim, point) record is graded against the plan's memberships.
    classes = 2 if "sst2" in path.stem else 4
    assert run.stacked("queries", 4).shape == (4, 12, 2, classes)
    mlp = summary["attacks"]["mlp"]
    assert mlp["num_records"] == 48 and mlp["num_members"] == int(run.load_plan().labels().sum())
    if victims is not None:
        against = attack_victims(recipe, victims.run_dir)["mlp"]
        points = json.loads((run.root / "victims" / victims.run_dir.name / "victims.json").read_text())["points"]
        assert 1 <= points <= 12 and against["num_records"] == 4 * points
    assert summary["method"] == recipe.finetune.method
    if recipe.finetune.method == "dp":
        assert summary["epsilon"]["max"] <= 8.08
