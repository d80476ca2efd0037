from pathlib import Path

import pytest
import yaml

from tmi_nlp.config import Recipe, RecipeError, load_recipe, recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]


def test_demo_recipe_is_the_default():
    assert load_recipe(ROOT / "recipes" / "demo.yaml").to_dict() == Recipe().to_dict()


RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_recipe_loads(path):
    assert isinstance(load_recipe(path), Recipe)


@pytest.mark.parametrize("path", sorted((ROOT / "recipes" / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_are_launcher_configs(path):
    config = yaml.safe_load(path.read_text())
    assert config["distributed_type"] in ("NO", "MULTI_GPU") and config["num_processes"] >= 1


@pytest.mark.parametrize("raw, fragment", [
    ({"pretrain": {"epochz": 3}}, "pretrain.epochz: unknown key"),
    ({"trainer": {}}, "trainer: unknown section"),
    ({"run": {"num_models": "16"}}, "run.num_models = '16': expected int"),
    ({"run": {"num_models": 2}}, "run.num_models = 2: expected an integer >= 3"),
    ({"run": {"num_models": True}}, "run.num_models = True: expected int"),
    ({"finetune": {"method": "prefix"}}, "finetune.method = 'prefix': expected one of"),
    ({"query": {"rate": 1.5}}, "query.rate = 1.5: expected a number in [0, 1]"),
    ({"query": {"augmentation": "shuffle"}}, "query.augmentation = 'shuffle'"),
    ({"attack": {"metaclassifiers": ["mlp", "forest"]}}, "attack.metaclassifiers = 'forest'"),
    ({"attack": {"metaclassifiers": "mlp"}}, "attack.metaclassifiers = 'mlp': expected list[str]"),
    ({"run": {"num_points": 500}, "data": {"pool_size": 100}}, "run.num_points = 500: expected at most"),
    ({"run": {"name": "../escape"}}, "run.name = '../escape'"),
    ({"model": "big"}, "model = 'big': expected a mapping"),
    ([1, 2], "expected a mapping of sections"),
])
def test_bad_recipes_name_field_value_and_expectation(raw, fragment):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(raw)
    assert fragment in str(err.value)


def test_ints_are_accepted_for_floats_and_overrides_parse_as_yaml(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"pretrain": {"epochs": 3}}))
    recipe = load_recipe(path, ["finetune.method=full", "query.num_augmentations=4"])
    assert recipe.pretrain.epochs == 3.0 and isinstance(recipe.pretrain.epochs, float)
    assert recipe.finetune.method == "full" and recipe.query.num_augmentations == 4
    with pytest.raises(RecipeError, match="expected section.key=value"):
        load_recipe(path, ["epochs=3"])


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("run: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(path)
