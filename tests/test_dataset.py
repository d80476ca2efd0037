"""Dataset-level inference on a run: the report's power record, and a user's set of texts through the CLI."""

import json

import numpy as np

from tmi_nlp.cli import main
from tmi_nlp.data.plan import Plan
from tmi_nlp.report import dataset_table
from tmi_nlp.stages import run_all
from tmi_nlp.stages.dataset import dataset_power


def test_set_test_on_a_run_and_on_given_texts(tiny, tmp_path, capsys):
    recipe = tiny(run={"name": "zoo", "num_models": 10},
                  attack={"metaclassifiers": ["shared_centred"], "baselines": [], "dataset_statistic": "confidence",
                          "dataset_sizes": [4], "dataset_sets": 2})
    run_all(recipe, progress=False)
    record = json.loads((recipe.run_dir / "report" / "metrics.json").read_text())["dataset"]
    row = record["sizes"]["4"]
    assert record["settings"]["statistic"] == "confidence"
    assert row["sets"] + record["untested_sets"].get("4", 0) == 10 * 2
    assert all(0 <= row[k] <= 1 for k in row if k not in ("sets", "reference_sets", "reference_texts"))
    # The two-sample test, against every other non-member of the victim, was measured on the same sets.
    assert row["reference_sets"] == 10 * 2 and row["reference_texts"] > 4
    assert "vs reference" in dataset_table(record)
    assert "Was this set of texts used?" in (recipe.run_dir / "report" / "report.html").read_text()
    path = recipe.run_dir / "dataset" / "confidence.json"
    before = path.stat().st_mtime_ns
    assert dataset_power(recipe) == record and path.stat().st_mtime_ns == before  # read back, not recomputed
    # A record of an earlier null (no "null" in its settings) is recomputed, not shown as if it were today's.
    stale = {**record, "settings": {k: v for k, v in record["settings"].items() if k != "null"},
             "sizes": {"4": {**row, "non_members_p_below_0.05": 0.9}}}
    path.write_text(json.dumps(stale))
    assert dataset_power(recipe) == record

    plan = Plan.load(recipe.run_dir / "plan")
    chosen = [plan.pool[j] for j in plan.challenge[:6]]
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(t.upper() for t in chosen) + "\n")  # matched as the model sees them (uncased)
    capsys.readouterr()
    assert main(["dataset", str(recipe.run_dir), "--texts", str(texts)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("victim")]
    assert "set of 6 texts" in out and len(lines) == 10
    saw = [int(line.split("it saw ")[1].split()[0]) for line in lines]
    assert saw == plan.labels()[:, :6].sum(1).tolist()
    assert all(0 < float(line.split("p = ")[1].split()[0]) <= 1 for line in lines)

    # Against a reference set: the two-sample test reads the attack stage's leave-one-out scores; the counts of
    # members in both sets grade it, and the sets must not overlap.
    reference = tmp_path / "reference.txt"
    reference.write_text("\n".join(plan.pool[j] for j in plan.challenge[6:16]) + "\n")
    assert main(["dataset", str(recipe.run_dir), "--texts", str(texts), "--reference", str(reference)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("victim")]
    assert "set of 6 texts against 10 reference texts known unused (two-sample)" in out and len(lines) == 10
    saw = [int(line.split(", ")[1].split()[0]) for line in lines]
    assert saw == plan.labels()[:, 6:16].sum(1).tolist()
    assert all(0 < float(line.split("p = ")[1].split()[0]) <= 1 for line in lines)
    reference.write_text(chosen[0] + "\n")
    assert main(["dataset", str(recipe.run_dir), "--texts", str(texts), "--reference", str(reference)]) == 2
    assert "reference: 1 of its texts are also in texts" in capsys.readouterr().err
    assert main(["dataset", str(recipe.run_dir), "--reference", str(reference)]) == 2
    assert "given without --texts" in capsys.readouterr().err

    texts.write_text("a text the run never queried\n")
    assert main(["dataset", str(recipe.run_dir), "--texts", str(texts)]) == 2
    err = capsys.readouterr().err
    assert "texts: 1 of 1 are not challenge texts" in err and "Traceback" not in err
    assert np.isfinite(row["non_members_p_below_0.05"])


def test_a_set_test_that_rejects_too_many_non_member_sets_is_flagged():
    row = {"sets": 80, "members_p_below_0.01": 0.9, "members_p_below_0.05": 0.9, "non_members_p_below_0.05": 0.05,
           "non_members_ks_p": 0.5, "control_p_below_0.05": 0.05, "control_ks_p": 0.5}
    record = {"settings": {"statistic": "shared_combined", "sets": 5}, "sizes": {"10": row}}
    assert "WARNING" not in dataset_table(record)
    record["sizes"]["50"] = {**row, "non_members_p_below_0.05": 0.21}
    assert "WARNING: on this run the set test rejects 21% of 50-text non-member sets" in dataset_table(record)
