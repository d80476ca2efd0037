"""The Python API on in-memory data, and continued pretraining from a given checkpoint."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import TINY  # noqa: I001

from tmi_nlp.api import run_experiment
from tmi_nlp.data.loading import DataError
from tmi_nlp.data.synthetic import synthetic_downstream, synthetic_pool
from tmi_nlp.models.pretrain import pretrain_model
from tmi_nlp.models.tokenizer import train_wordpiece
from tmi_nlp.stages.prepare import prepare
from tmi_nlp.stages.train import train_models
from tmi_nlp.store import RunDir


def _overrides(tmp_path, name):
    flat = [f"{section}.{key}={json.dumps(value)}" for section, values in TINY.items() for key, value in values.items()]
    return [*flat, f"run.output_dir={tmp_path / 'runs'}", f"run.name={name}",
            "attack.baselines=[lira_online]"]


def test_run_experiment_on_a_list_and_a_dataframe(tmp_path):
    pool = synthetic_pool(60, seed=5)
    texts, labels = synthetic_downstream(220, seed=5)
    texts[3] = pool[0]  # a pool text in the downstream data is removed before finetuning
    frame = pd.DataFrame({"note": texts, "dept": np.asarray(labels, dtype=np.int64)})
    summary = run_experiment(pool=pool, downstream=frame, text_column="note", label_column="dept",
                             overrides=_overrides(tmp_path, "mine"), progress=False)
    assert set(summary["attacks"]) == {"mlp", "shared_centred", "shared_confidence", "lira_online"}
    run = RunDir(tmp_path / "runs" / "mine")
    tokens = json.loads((run.data / "tokens.json").read_text())
    assert len(tokens["train"]) == 160 and tokens["num_labels"] == 8
    stored = [json.loads(line)["text"] for line in (run.root / "inputs" / "downstream.jsonl").open()]
    assert pool[0] in stored  # kept in the inputs, dropped from what the models see
    assert summary["recipe"]["data"]["pool"].endswith("inputs/pool.jsonl")


def test_in_memory_data_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="3 texts but 2 labels"):
        run_experiment(pool=["a"], downstream=(["x", "y", "z"], [0, 1]), overrides=_overrides(tmp_path, "bad"))
    with pytest.raises(DataError, match=r"no column\(s\) \['label'\]"):
        run_experiment(downstream=pd.DataFrame({"text": ["x"]}), overrides=_overrides(tmp_path, "bad2"))


def test_continued_pretraining_starts_from_the_given_checkpoint(tiny, tmp_path):
    from safetensors.torch import load_file

    from tmi_nlp.config import ModelArguments, PretrainArguments

    base = tmp_path / "base"
    texts = synthetic_pool(80, seed=9)
    tokenizer = train_wordpiece(texts, 350)
    args = ModelArguments(hidden_size=48, num_hidden_layers=1, num_attention_heads=2, intermediate_size=96,
                          max_length=48)
    pretrain_model(tokenizer(texts, truncation=True, max_length=48)["input_ids"], tokenizer, args,
                   PretrainArguments(epochs=1.0, batch_size=16), seed=1, output=base)
    tokenizer.save_pretrained(base)
    recipe = tiny(base={"checkpoint": str(base), "epochs": 0.0}, pretrain={"epochs": 1.0})
    prepare(recipe)
    train_models(recipe, stages=("pretrain",), models=[0, 1], progress=False)
    run = RunDir(recipe.run_dir)
    assert json.loads((run.tokenizer / "tokenizer.json").read_text())["model"]["vocab"] == \
        json.loads((base / "tokenizer.json").read_text())["model"]["vocab"]
    start = load_file(base / "model.safetensors")
    after = [load_file(run.pretrained(i) / "model.safetensors") for i in (0, 1)]
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert after[0][key].shape == (48, 48)  # the checkpoint's size, not the recipe's 32
    assert not np.allclose(after[0][key], start[key]) and not np.allclose(after[0][key], after[1][key])
    # Continued, not restarted: closer to the checkpoint than two independent inits would be.
    assert (after[0][key] - start[key]).norm() < start[key].norm()


def test_the_documented_example_runs_as_a_plain_script_without_a_main_guard(tmp_path):
    # Worker processes start tmi_nlp itself, never the calling script: no re-import, no hang.
    overrides = [*_overrides(tmp_path, "script"), "run.workers=2", "run.threads_per_model=1"]
    script = tmp_path / "example.py"
    script.write_text(
        "from tmi_nlp.api import run_experiment\n"
        "from tmi_nlp.data.synthetic import synthetic_downstream, synthetic_pool\n"
        "texts, labels = synthetic_downstream(220, seed=5)\n"
        f"summary = run_experiment(pool=synthetic_pool(60, seed=5), downstream=(texts, labels), "
        f"overrides={overrides!r}, progress=False)\n"
        "print('AUC', summary['attacks']['mlp']['auc'])\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("AUC") == 1 and "bootstrapping phase" not in result.stderr
    assert all(RunDir(tmp_path / "runs" / "script").model_done(i, "finetune") for i in range(4))
