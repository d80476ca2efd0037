"""End to end on tiny models: files of the on-disk contract, other methods, reports, refusals."""

import json
import os

import numpy as np
import pytest
import yaml

from tmi_nlp import pipeline
from tmi_nlp.cli import main
from tmi_nlp.config import RecipeError, load_recipe
from tmi_nlp.data.loading import DataError
from tmi_nlp.store import RunDir


def test_run_writes_the_contract_and_skips_finished_work(tiny):
    recipe = tiny()
    summary = pipeline.run_all(recipe, progress=False)
    run = RunDir(recipe.run_dir)
    n, k, a = 4, 16, 3
    assert np.load(run.plan / "keep.npy").shape == (n, 48)
    for i in range(n):
        assert (run.pretrained(i) / "model.safetensors").exists()
        assert np.load(run.queries(i)).shape == (k, a, 8)
        assert json.loads((run.finetuned(i) / "metrics.json").read_text())["method"] == "linear"
    for name in ("mlp", "shared_centred"):
        assert np.load(run.attack(name) / "scores.npy").shape == (n, k)
        assert 0 <= summary["attacks"][name]["auc"] <= 1
    assert (run.report / "roc.png").read_bytes()[:4] == b"\x89PNG"
    page = (run.report / "report.html").read_text()
    assert all(name in page for name in summary["attacks"]) and "lira_online" in summary["attacks"]
    assert summary["attacks"]["mlm_loss_lira"]["family"] == "white-box"
    assert np.load(run.signal(0, "mlm_loss")).shape == (k,)
    assert yaml.safe_load(run.config.read_text()) == recipe.to_dict()
    stamp = (run.pretrained(0) / "model.safetensors").stat().st_mtime_ns
    assert pipeline.train_models(recipe, progress=False) == []
    assert (run.pretrained(0) / "model.safetensors").stat().st_mtime_ns == stamp


def test_lora_and_dp_runs_reuse_another_runs_pretraining(tiny):
    base = tiny(run={"name": "base"})
    pipeline.prepare(base)
    pipeline.train_models(base, stages=("pretrain",), progress=False)
    for method in ("lora", "dp"):
        recipe = tiny(run={"name": method, "pretrained_from": str(base.run_dir)},
                      finetune={"method": method, "dp_parameters": "lora"})
        summary = pipeline.run_all(recipe, progress=False)
        run, source = RunDir(recipe.run_dir), RunDir(base.run_dir)
        weights = [(r.pretrained(0) / "model.safetensors").stat().st_ino for r in (run, source)]
        assert weights[0] == weights[1]  # hard-linked, not pretrained again
        assert summary["method"] == method and summary["attacks"]["mlp"]["method"] == method
        if method == "dp":
            assert 7.9 <= summary["epsilon"]["max"] <= 8.08 and summary["delta"] == 1e-5
        else:
            assert "epsilon" not in summary
    with pytest.raises(RecipeError, match="pretrain.epochs: 2.0 -> 3.0"):
        pipeline.prepare(tiny(run={"name": "other", "pretrained_from": str(base.run_dir)}, pretrain={"epochs": 3.0}))
    # More models than the source: the first 4 are reused (their plan rows are equal), the rest train.
    grown = tiny(run={"name": "grown", "num_models": 6, "pretrained_from": str(base.run_dir)})
    pipeline.prepare(grown)
    run = RunDir(grown.run_dir)
    assert [pipeline.model_done(run, i, "pretrain") for i in range(6)] == [True] * 4 + [False] * 2
    assert np.array_equal(np.load(run.plan / "keep.npy")[:4], np.load(RunDir(base.run_dir).plan / "keep.npy"))


def test_report_and_compare_from_run_folders(tiny, tmp_path, capsys):
    recipe = tiny(attack={"baselines": ["lira_online", "confidence"]})
    pipeline.run_all(recipe, progress=False)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    os.rename(recipe.run_dir, moved)  # a run folder is self-describing, wherever it lies
    (moved / "report" / "report.html").unlink()
    assert main(["report", str(moved)]) == 0
    assert (moved / "report" / "report.html").exists()
    assert main(["compare", str(moved), str(moved), "--attacks", "mlp,confidence",
                 "--output", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert out.count("| moved | linear |") == 4
    assert (tmp_path / "cmp" / "compare.png").exists()


def test_changed_recipe_refuses_to_mix_artifacts(tiny):
    pipeline.prepare(tiny())
    with pytest.raises(RecipeError, match=r"pretrain.epochs: 2.0 -> 3.0"):
        pipeline.prepare(tiny(pretrain={"epochs": 3.0}))
    pipeline.prepare(tiny(run={"workers": 2}))  # how a run executes may change


def test_missing_column_stops_before_training(tmp_path, capsys):
    task = tmp_path / "task.csv"
    task.write_text("sentence,label\n" + "\n".join(f"s {i},{i % 2}" for i in range(20)) + "\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"run": {"output_dir": str(tmp_path / "runs"), "num_points": 10},
                                      "data": {"downstream": str(task), "pool_size": 50}}))
    assert main(["run", str(recipe)]) == 2
    assert "data.downstream_text_column = 'text': no such column" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "demo" / "models").exists()
    with pytest.raises(DataError):
        pipeline.prepare(load_recipe(recipe))


def test_unknown_key_exits_cleanly(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("pretrain: {epochz: 3}\n")
    assert main(["run", str(recipe)]) == 2
    assert "pretrain.epochz: unknown key" in capsys.readouterr().err
