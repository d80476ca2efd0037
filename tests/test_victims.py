"""Separate roles across runs: one zoo's models attack another's (the partial-knowledge experiment)."""

import json
import shutil

import numpy as np
import pytest
from transformers import BertForMaskedLM

from tmi_nlp.cli import main
from tmi_nlp.config import DataArguments, RecipeError
from tmi_nlp.data.loading import DataError, load_pool
from tmi_nlp.data.plan import Plan, make_plan
from tmi_nlp.data.synthetic import synthetic_pool
from tmi_nlp.models.pretrain import MASKS, masked_lm_losses
from tmi_nlp.models.tokenizer import load_tokenizer
from tmi_nlp.stages import run_all
from tmi_nlp.stages.compare import compare
from tmi_nlp.stages.prepare import prepare
from tmi_nlp.stages.report import report
from tmi_nlp.stages.victims import attack_victims
from tmi_nlp.store import RunDir


@pytest.mark.parametrize("fraction, known_points", [(1.0, 10), (0.5, 10), (0.125, 5)])
def test_known_pool_keeps_the_share_challenge_points_first(tmp_path, fraction, known_points):
    victims = make_plan(synthetic_pool(40, seed=0), num_models=4, num_points=10, seed=0)
    victims.save(tmp_path / "victims" / "plan")
    args = DataArguments(known_pool_of=str(tmp_path / "victims"), known_fraction=fraction, pool_size=40)
    pool, given = load_pool(args, seed=1)
    num_known = round(fraction * 40)
    challenge = {victims.pool[j] for j in victims.challenge}
    assert len(pool) == len(set(pool)) == 40 and given == known_points
    assert set(pool[:given]) <= challenge  # the challenge points it knows lead the pool
    assert set(pool[:num_known]) <= set(victims.pool)  # then the rest of what it knows
    assert not set(pool[num_known:]) & set(victims.pool)  # then other texts, none of the victims'
    assert load_pool(args, seed=1) == (pool, given)


def test_known_pool_errors_name_the_field(tmp_path):
    with pytest.raises(DataError, match="data.known_pool_of"):
        load_pool(DataArguments(known_pool_of=str(tmp_path / "nowhere")), seed=0)
    with pytest.raises(RecipeError, match="data.known_fraction"):
        DataArguments(known_pool_of="runs/x", known_fraction=0.0)


@pytest.fixture
def victims(tiny):
    recipe = tiny(run={"name": "victims"}, attack={"baselines": ["lira_online", "mlm_loss_lira"]})
    run_all(recipe, progress=False)
    return recipe


def test_shadows_with_half_the_corpus_attack_another_zoo(victims, tiny, capsys):
    shadows = tiny(run={"name": "shadows", "seed": 1}, data={"known_pool_of": str(victims.run_dir),
                                                             "known_fraction": 0.5},
                   attack={"baselines": ["lira_online", "mlm_loss_lira"]})
    run_all(shadows, progress=False)
    assert main(["attack", str(shadows.run_dir), "--victims", str(victims.run_dir)]) == 0
    assert "mlm_loss_lira" in capsys.readouterr().out
    out = shadows.run_dir / "victims" / "victims"
    victim_plan, shadow_plan = Plan.load(victims.run_dir / "plan"), Plan.load(shadows.run_dir / "plan")
    # Every victim challenge point is known at f = 0.5 (pool 48, 16 points): all are scored, with their labels.
    victim_index = {victim_plan.pool[j]: i for i, j in enumerate(victim_plan.challenge)}
    order = [victim_index[shadow_plan.pool[j]] for j in shadow_plan.challenge]
    for name in ("mlp", "shared_centred", "lira_online", "mlm_loss_lira"):
        assert np.load(out / name / "scores.npy").shape == (4, 16)
        assert np.array_equal(np.load(out / name / "labels.npy"), victim_plan.labels()[:, order])
    assert json.loads((out / "victims.json").read_text())["points"] == 16
    before = (out / "mlp" / "metrics.json").stat().st_mtime_ns
    attack_victims(shadows, victims.run_dir)  # resumes: nothing recomputed
    assert (out / "mlp" / "metrics.json").stat().st_mtime_ns == before
    # compare takes these results beside a run folder.
    table = compare([victims.run_dir, out], ["mlp"], shadows.run_dir / "cmp")
    assert "| shadows -> victims | linear |" in table and "| victims | linear |" in table
    assert (shadows.run_dir / "cmp" / "compare.png").exists()
    # The shadows' report shows these results next to its own.
    report(shadows)
    page = (shadows.run_dir / "report" / "report.html").read_text()
    assert "Against other zoos" in page and "shadows -&gt; victims" in page and "partial knowledge: 0.5" in page


def test_a_zoo_sharing_the_victims_models_is_refused(victims, tiny):
    copy = tiny(run={"name": "copy", "pretrained_from": str(victims.run_dir)})
    prepare(copy)  # links the victims' pretrained models
    with pytest.raises(RecipeError, match="same pretrained weights"):
        attack_victims(copy, victims.run_dir)
    with pytest.raises(RecipeError, match="leave-one-out"):
        attack_victims(victims, victims.run_dir)


def test_num_points_must_match_the_known_challenge_points(victims, tiny):
    shadows = tiny(run={"name": "few", "seed": 1, "num_points": 10},
                   data={"known_pool_of": str(victims.run_dir), "known_fraction": 0.5})
    with pytest.raises(DataError, match="data.known_pool_of leaves 16"):
        prepare(shadows)


@pytest.mark.parametrize("query, message", [({"num_queries": 2}, "expected the same queries per point"),
                                            ({"augmentation": "substitute"}, "query.augmentation = 'delete', the "
                                                                             "shadows' 'substitute'")])
def test_victims_queried_differently_are_refused(victims, tiny, query, message):
    other = tiny(run={"name": "other", "seed": 2}, data={"known_pool_of": str(victims.run_dir)},
                 query=query, attack={"baselines": []})
    run_all(other, progress=False)
    with pytest.raises(RecipeError, match=message):
        attack_victims(other, victims.run_dir)


def test_white_box_masks_follow_the_text_not_its_run(victims, tiny):
    """Masks drawn by run seed and position differ per point between zoos (sd 0.2 of loss against 0.05 within
    one on AG News): the masked-LM loss of a text must not depend on where it sits or which run asks."""
    run = RunDir(victims.run_dir)
    tokens, tokenizer = run.tokens()["challenge"], load_tokenizer(run.tokenizer)
    model = BertForMaskedLM.from_pretrained(run.pretrained(0))
    order = np.random.default_rng(0).permutation(len(tokens))
    stored = np.load(run.signal(0, "mlm_loss"))
    np.testing.assert_allclose(masked_lm_losses(model, [tokens[j] for j in order], tokenizer), stored[order],
                               rtol=1e-5)
    assert run.signal_masks("mlm_loss", 4) == {MASKS}
    # Signals from before the masks were recorded are refused across zoos, with the way out.
    shadows = tiny(run={"name": "legacy", "seed": 1}, data={"known_pool_of": str(victims.run_dir)},
                   attack={"metaclassifiers": ["shared_centred"], "baselines": ["mlm_loss_lira"]})
    run_all(shadows, progress=False)
    for path in (shadows.run_dir / "models").glob("*/signals/mlm_loss.json"):
        path.unlink()
    for path in (shadows.run_dir / "models").glob("*/manifest"):  # as old runs were: no manifests either
        shutil.rmtree(path)
    with pytest.raises(RecipeError, match="masked differently.*Remove models/\\*/signals"):
        attack_victims(shadows, victims.run_dir)
