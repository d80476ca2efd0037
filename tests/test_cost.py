"""The cost model printed before training: tokens counted from the run, shapes from the base, linear in the work."""

import dataclasses

from tmi_nlp import cost
from tmi_nlp.stages.prepare import prepare
from tmi_nlp.store import RunDir


def test_the_estimate_counts_the_runs_own_tokens_and_scales_with_the_work(tiny, monkeypatch):
    monkeypatch.setattr(cost, "matmul_gflops", lambda hidden, seconds=0.3: 10.0)  # a fixed machine
    recipe = tiny()
    prepare(recipe)
    run = RunDir(recipe.run_dir)
    todo = {"pretrain": 4, "signals": 4, "finetune": 4}
    one = cost.estimate(recipe, run, workers=1, todo=todo)
    assert set(one) == {"pretrain", "signals", "finetune", "queries"} and all(s > 0 for s in one.values())
    twice = cost.estimate(dataclasses.replace(recipe, pretrain=dataclasses.replace(recipe.pretrain, epochs=4.0)),
                          run, workers=1, todo=todo)
    assert abs(twice["pretrain"] / one["pretrain"] - 2) < 1e-9 and twice["finetune"] == one["finetune"]
    halved = cost.estimate(recipe, run, workers=2, todo=todo)
    assert abs(halved["pretrain"] * 2 - one["pretrain"]) < 1e-9
    # The linear probe reads each training text once: its epochs cost nothing more.
    probe = dataclasses.replace(recipe.finetune, method="linear", epochs=10.0)
    assert cost.estimate(dataclasses.replace(recipe, finetune=probe), run, 1, todo)["finetune"] == \
        cost.estimate(dataclasses.replace(recipe, finetune=dataclasses.replace(probe, epochs=1.0)), run, 1,
                      todo)["finetune"]
    line = cost.describe(recipe, run, 2, todo)
    assert line.startswith("plan: 4 model(s) of ") and "min on this machine" in line


def test_the_shape_is_the_bases_when_the_run_continues_from_one(tiny, tmp_path):
    from conftest import headless_checkpoint

    sha = headless_checkpoint(tmp_path / "ckpt")
    recipe = tiny(base={"checkpoint": str(tmp_path / "ckpt"), "checkpoint_sha256": sha, "epochs": 0.0},
                  model={"hidden_size": 64})
    prepare(recipe)
    shape = cost.model_shape(recipe, RunDir(recipe.run_dir))
    assert (shape.hidden, shape.layers) == (32, 1)  # the checkpoint's, not the recipe's 64
