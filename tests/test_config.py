import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tmi_nlp.config import Recipe, RecipeError, load_recipe, migrate, recipe_from_dict
from tmi_nlp.models.training import training_arguments
from tmi_nlp.resolve import resolve

ROOT = Path(__file__).resolve().parents[1]


def test_demo_recipe_is_the_default():
    assert load_recipe(ROOT / "recipes" / "demo.yaml").to_dict() == Recipe().to_dict()


RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_recipe_resolves_and_reads_back_from_its_config(path):
    recipe = resolve(load_recipe(path))
    options = recipe.finetune.options
    assert set(options) == {recipe.finetune.method, *(
        [options["dp"]["parameters"]] if recipe.finetune.method == "dp" else [])} - {"full"}
    # config.yaml is the resolved recipe: reading it back gives the same recipe, and resolving changes nothing.
    again = recipe_from_dict(yaml.safe_load(recipe.to_yaml()))
    assert again == recipe and resolve(again) == recipe


@pytest.mark.parametrize("path", sorted((ROOT / "recipes" / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_are_launcher_configs(path):
    config = yaml.safe_load(path.read_text())
    assert config["distributed_type"] in ("NO", "MULTI_GPU") and config["num_processes"] >= 1


@pytest.mark.parametrize("raw, fragment", [
    ({"pretrain": {"epochz": 3}}, "pretrain.epochz: unknown key"),
    ({"trainer": {}}, "trainer: unknown section"),
    ({"run": {"num_models": "16"}}, "run.num_models = '16': expected int"),
    ({"run": {"num_models": 2}}, "run.num_models = 2: expected an integer in [3, 10000]"),
    ({"run": {"num_models": True}}, "run.num_models = True: expected int"),
    ({"finetune": {"method": "prefix"}}, "finetune.method = 'prefix': expected one of"),
    ({"query": {"rate": 1.5}}, "query.rate = 1.5: expected a number in [0, 1]"),
    ({"query": {"augmentation": "shuffle"}}, "query.augmentation = 'shuffle'"),
    ({"attack": {"metaclassifiers": ["mlp", "forest"]}}, "attack.metaclassifiers = 'forest'"),
    ({"attack": {"backend": "gpu"}}, "attack.backend = 'gpu': expected one of ['auto', 'kernel', 'torch']"),
    ({"query": {"num_augmentations": 4}}, "query.num_augmentations: this key moved to query.num_queries"),
    ({"finetune": {"lora_r": 4}}, "finetune.lora_r: this key moved to finetune.options.lora.r"),
    ({"finetune": {"method": "lora", "options": {"lora": {"r": 0}}}}, "finetune.options.lora.r = 0: expected an"),
    ({"finetune": {"method": "lora", "options": {"lora": {"rank": 4}}}}, "finetune.options.lora.rank: unknown key"),
    ({"finetune": {"options": {"lora": {"r": 4}}}}, "finetune.options.lora: method 'linear' does not use it"),
    ({"finetune": {"method": "dp", "options": {"dp": {"parameters": "dp"}}}},
     "finetune.options.dp.parameters = 'dp': expected one of ['full', 'linear', 'lora']"),
    ({"finetune": {"method": "dp", "batch_size": 8}}, "finetune.batch_size = 8: expected an integer >= 16"),
    ({"finetune": {"trainer": {"num_train_epochs": 2}}}, "finetune.trainer.num_train_epochs: set by this section; "
                                                         "expected finetune.epochs"),
    ({"pretrain": {"trainer": {"seed": 2}}}, "pretrain.trainer.seed: set by tmi-nlp"),
    ({"pretrain": {"trainer": {"gradient_accumulation": 2}}}, "pretrain.trainer.gradient_accumulation: not a field"),
    ({"pretrain": {"trainer": {"lr_scheduler_type": "wavy"}}}, "pretrain.trainer = {'lr_scheduler_type': 'wavy'}"),
    ({"attack": {"metaclassifiers": "mlp"}}, "attack.metaclassifiers = 'mlp': expected list[str]"),
    ({"run": {"num_points": 500}, "data": {"pool_size": 100}}, "run.num_points = 500: expected at most"),
    ({"run": {"name": "../escape"}}, "run.name = '../escape'"),
    ({"model": "big"}, "model = 'big': expected a mapping"),
    ({"attack": {"baselines": ["neighbourhood"]}, "query": {"include_original": False}},
     "query.include_original = False: expected true: ['neighbourhood'] read query 0 as the unaugmented text"),
    ({"attack": {"metaclassifiers": ["shared_neighbourhood"]}, "query": {"num_queries": 1}},
     "query.num_queries = 1: expected >= 2"),
    ([1, 2], "expected a mapping of sections"),
])
def test_bad_recipes_name_field_value_and_expectation(raw, fragment):
    with pytest.raises(RecipeError) as err:
        resolve(recipe_from_dict(raw))  # keys and ranges in config.py, names and options at the edge
    assert fragment in str(err.value)


def test_ints_are_accepted_for_floats_and_overrides_parse_as_yaml(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"pretrain": {"epochs": 3}}))
    recipe = load_recipe(path, ["finetune.method=lora", "query.num_queries=4", "finetune.options.lora.r=2",
                                "pretrain.trainer.lr_scheduler_type=cosine"])
    assert recipe.pretrain.epochs == 3.0 and isinstance(recipe.pretrain.epochs, float)
    assert recipe.finetune.method == "lora" and recipe.query.num_queries == 4
    assert resolve(recipe).finetune.options["lora"]["r"] == 2 and recipe.pretrain.trainer == {
        "lr_scheduler_type": "cosine"}
    with pytest.raises(RecipeError, match="expected section.key=value"):
        load_recipe(path, ["epochs=3"])


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("run: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(path)


def _alias_bomb(section: str, field: str) -> str:
    """ "Billion laughs": nine aliases per level over nine levels, 387 million strings once expanded, in one field."""
    levels = ["  l0: &l0 lol"] + [f"  l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]" for k in range(1, 10)]
    key, _, inner = field.partition(".")
    value = f"{{{inner}: *l9}}" if inner else "*l9"
    return f"{section}:\n" + "\n".join(levels) + f"\n  {key}: {value}\n"


@pytest.mark.parametrize("place", ["model.hidden_size", "attack.metaclassifiers", "pretrain.trainer.report_to"])
def test_a_yaml_alias_bomb_is_refused_at_once_and_no_value_is_printed_whole(tmp_path, place):
    section, _, field = place.partition(".")
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(section, field))
    with pytest.raises(RecipeError, match=r"an alias \(\*l0\) at line 3: aliases are not accepted") as err:
        load_recipe(path)
    assert len(str(err.value)) < 400


def test_duplicate_yaml_keys_and_huge_values_are_refused_in_one_short_line(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("pretrain: {epochs: 2.0}\nrun: {name: a}\npretrain: {epochs: 3.0}\n")
    with pytest.raises(RecipeError, match=r"the key 'pretrain' twice in one mapping \(line 3\)"):
        load_recipe(path)
    path.write_text("run: {name: a, num_models: 1, num_models: 2}\n")
    with pytest.raises(RecipeError, match="the key 'num_models' twice"):
        load_recipe(path)
    path.write_text("model: {hidden_size: [" + ", ".join(["1"] * 50_000) + "]}\n")
    cut = r"model.hidden_size = \[1, 1, 1, 1, 1, 1, 1, 1, \.\.\.\]: expected int"
    with pytest.raises(RecipeError, match=cut) as err:
        load_recipe(path)
    assert len(str(err.value)) < 300


def test_trainer_fields_reach_training_arguments_and_warmup_is_a_share_of_the_steps(tmp_path):
    args = training_arguments(tmp_path, epochs=2.0, learning_rate=1e-3, batch_size=8, weight_decay=0.0,
                              warmup_ratio=0.1, precision="fp32", seed=3,
                              trainer={"gradient_accumulation_steps": 4, "lr_scheduler_type": "cosine"})
    assert args.gradient_accumulation_steps == 4 and args.lr_scheduler_type == "cosine"
    assert args.num_train_epochs == 2.0 and args.seed == 3 and args.save_strategy == "no"
    assert args.get_warmup_steps(200) == 20  # a ratio, not 0.1 steps


def test_a_stored_config_of_the_old_layout_is_moved_to_the_new_keys():
    old = Recipe().to_dict()
    old["query"]["num_augmentations"] = old["query"].pop("num_queries")
    old["finetune"].update(method="dp", pooling="mean", lora_r=4, dp_parameters="linear", dp_epsilon=3.0,
                           dp_delta=1e-5, dp_max_grad_norm=1.0)
    recipe = resolve(recipe_from_dict(migrate(old)))
    assert recipe.query.num_queries == 8 and recipe.finetune.options["dp"]["epsilon"] == 3.0
    assert recipe.finetune.options["linear"] == {"pooling": "mean"}
    assert "lora" not in recipe.finetune.options  # the old layout listed every method's options; lora was unused


def test_config_is_the_ground_floor():
    code = ("import sys, tmi_nlp.config as c; c.Recipe(); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'opacus', 'tmi_nlp.attacks', "
            "'tmi_nlp.models.finetune') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("method, rate", [("linear", 5e-3), ("full", 1e-3), ("dp", 2e-2)])
def test_each_method_brings_its_own_defaults_unless_the_recipe_sets_them(method, rate):
    recipe = resolve(load_recipe(ROOT / "recipes" / "demo.yaml", [f"finetune.method={method}"]))
    assert recipe.finetune.learning_rate == rate  # not the linear probe's rate kept for full finetuning
    given = resolve(load_recipe(ROOT / "recipes" / "demo.yaml", [f"finetune.method={method}",
                                                                 "finetune.learning_rate=3e-4"]))
    assert given.finetune.learning_rate == 3e-4  # '3e-4' is a string to YAML 1.1: read as the number it is
    with pytest.raises(RecipeError, match=r"finetune.learning_rate = 'fast': expected"):
        load_recipe(ROOT / "recipes" / "demo.yaml", ["finetune.learning_rate=fast"])


def test_length_grouped_finetuning_reaches_the_trainer_and_old_runs_keep_shuffled_batches():
    args = training_arguments(Path("unused"), epochs=1.0, learning_rate=1e-3, batch_size=8, weight_decay=0.0,
                              warmup_ratio=0.0, precision="fp32", seed=0, trainer={}, group_by_length=True)
    assert args.train_sampling_strategy == "group_by_length"
    assert resolve(Recipe()).finetune.group_by_length
    old = {"finetune": {"method": "linear", "bf16": True}, "pretrain": {"bf16": False}}
    moved = migrate(old)
    assert moved["finetune"]["group_by_length"] is False  # written before the field: batches were shuffled
    assert moved["finetune"]["precision"] == "bf16" and moved["pretrain"]["precision"] == "fp32"
    with pytest.raises(RecipeError, match=r"finetune.trainer.train_sampling_strategy: set by this section; "
                                          r"expected finetune.group_by_length"):
        resolve(load_recipe(ROOT / "recipes" / "demo.yaml", ["finetune.trainer.train_sampling_strategy=random"]))


@pytest.mark.parametrize("override, message", [
    ("run.seed=42949", r"run.seed = 42949: expected an integer in \[0, 42948\]"),
    ("run.seed=-1", r"run.seed = -1: expected an integer in \[0, "),
    ("pretrain.epochs=.inf", r"pretrain.epochs = inf: expected a finite number > 0"),
    ("pretrain.epochs=nan", r"pretrain.epochs = nan: expected a number"),
    ("pretrain.epochs=inf", r"pretrain.epochs = inf: expected a finite number > 0"),
    ("attack.weight_decay=.nan", r"attack.weight_decay = nan: expected a number"),
    ("run.num_models=100000000000", r"run.num_models = 100000000000: expected an integer in \[3, 10000\]"),
])
def test_values_that_would_fail_after_the_run_folder_is_written_are_refused_first(override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(ROOT / "recipes" / "demo.yaml", [override])


def test_a_home_relative_output_dir_is_expanded():
    recipe = load_recipe(ROOT / "recipes" / "demo.yaml", ["run.output_dir=~/runs"])
    assert recipe.run_dir == Path.home() / "runs" / "demo"
