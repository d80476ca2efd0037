"""Attacking a classifier tmi-nlp did not train: candidates as challenge points, a checkpoint or a callable."""

import csv
import shutil

import numpy as np
import pytest

from tmi_nlp.callbacks import predict_proba
from tmi_nlp.cli import main
from tmi_nlp.data.loading import DataError
from tmi_nlp.data.synthetic import synthetic_pool
from tmi_nlp.models.finetune import load_finetuned
from tmi_nlp.models.tokenizer import load_tokenizer
from tmi_nlp.stages import run_all
from tmi_nlp.stages.prepare import prepare
from tmi_nlp.stages.target import attack_target
from tmi_nlp.store import RunDir


@pytest.fixture
def zoo(tiny, tmp_path):
    candidates = synthetic_pool(16, seed=77)
    path = tmp_path / "candidates.txt"
    path.write_text("\n".join(candidates) + "\n")
    recipe = tiny(data={"challenge": str(path)}, finetune={"method": "full", "learning_rate": 5e-4},
                  attack={"baselines": ["lira_online", "calibrated_confidence"]})
    run_all(recipe, progress=False)
    return recipe, candidates


def test_given_candidates_are_the_challenge_points(zoo):
    recipe, candidates = zoo
    plan = RunDir(recipe.run_dir)
    from tmi_nlp.data.plan import Plan

    loaded = Plan.load(plan.plan)
    assert [loaded.pool[j] for j in loaded.challenge] == candidates
    assert len(loaded.pool) == recipe.data.pool_size


def test_attack_a_checkpoint_from_the_cli(zoo, tmp_path, capsys):
    recipe, candidates = zoo
    run = RunDir(recipe.run_dir)
    target = tmp_path / "target"  # stands in for someone else's model: a HF checkpoint with its tokenizer
    shutil.copytree(run.finetuned(0), target)
    for f in run.tokenizer.iterdir():
        shutil.copy(f, target / f.name)
    assert main(["attack", str(run.root), "--target", str(target), "--fpr", "0.1"]) == 0
    assert "members at 10% FPR" in capsys.readouterr().out
    rows = list(csv.DictReader((run.root / "targets" / "target" / "scores.csv").open()))
    assert [r["text"] for r in rows] == candidates
    assert {"mlp", "mlp_member", "lira_online", "calibrated_confidence_member"} <= set(rows[0])
    assert np.load(run.root / "targets" / "target" / "queries.npy").shape == (16, 3, 8)


def test_attack_a_callable_and_bad_shapes_are_named(zoo):
    recipe, _ = zoo
    run = RunDir(recipe.run_dir)
    model = load_finetuned(run.finetuned(1))
    tokenizer = load_tokenizer(run.tokenizer)

    def predict(texts):
        ids = tokenizer(texts, truncation=True, max_length=48)["input_ids"]
        return predict_proba(model, ids, tokenizer.pad_token_id)

    result = attack_target(recipe, predict, name="callable", fpr=0.25)
    assert set(result["attacks"]) == {"mlp", "shared_centred", "shared_confidence", "lira_online",
                                      "calibrated_confidence"}
    # The target is model 1 behind a text interface: its unaugmented query (query 0) is model 1's own.
    answers = np.load(run.root / "targets" / "callable" / "queries.npy")
    assert np.isclose(answers[:, 0], np.load(run.queries(1))[:, 0], atol=1e-4).all(-1).mean() >= 0.9
    non_members = ~run.load_plan().labels()
    for name, r in result["attacks"].items():  # each threshold is the shadows' OUT quantile at 1 - fpr
        assert r["threshold"] == pytest.approx(np.quantile(np.load(run.attack(name) / "scores.npy")[non_members], 0.75))
        score = np.load(run.root / "targets" / "callable" / name / "scores.npy")[0]
        assert r["members"] == int((score > r["threshold"]).sum()) and score.shape == (16,)
    with pytest.raises(ValueError, match=r"expected \(48, 8\)"):
        attack_target(recipe, lambda texts: np.ones((len(texts), 3)) / 3, name="bad")


def test_candidates_must_match_num_points(tiny, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(synthetic_pool(5, seed=1)) + "\n")
    with pytest.raises(DataError, match="run.num_points = 16: data.challenge has 5"):
        prepare(tiny(data={"challenge": str(path)}))


def test_a_set_against_a_reference_for_a_model_not_trained_here(zoo, tmp_path, capsys):
    """The auditor's question on a released model: its members among the candidates against texts it never saw."""
    from tmi_nlp.api import dataset_inference

    recipe, candidates = zoo
    run = RunDir(recipe.run_dir)
    target = tmp_path / "target"
    shutil.copytree(run.finetuned(0), target)
    for f in run.tokenizer.iterdir():
        shutil.copy(f, target / f.name)
    seen = run.load_plan().labels()[0]
    texts, reference = tmp_path / "texts.txt", tmp_path / "reference.txt"
    texts.write_text("\n".join(c for c, s in zip(candidates, seen, strict=True) if s) + "\n")
    reference.write_text("\n".join(c for c, s in zip(candidates, seen, strict=True) if not s) + "\n")
    args = ["dataset", str(run.root), "--texts", str(texts), "--reference", str(reference), "--target", str(target)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"set of {seen.sum()} texts against {(~seen).sum()} reference texts" in out
    p = float(out.split("p = ")[1].split()[0])
    assert 0 < p <= 1
    # The same test from the API, on the scores the CLI stored (targets/target/<statistic>/).
    result = dataset_inference(run.root, texts=texts.read_text().split("\n")[:-1],
                               reference=reference.read_text().split("\n")[:-1], target=str(target))
    assert result["p_value"] == pytest.approx(p, abs=1e-4) and result["statistic"] == "shared_confidence"
    assert (run.root / "targets" / "target" / "shared_confidence" / "scores.npy").exists()
    assert main(["dataset", str(run.root), "--texts", str(texts), "--target", str(target)]) == 2
    assert "given without --texts and --reference" in capsys.readouterr().err
