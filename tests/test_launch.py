"""`accelerate launch` with 2 CPU processes: both really run, each trains its own models, rank 0 reports."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tmi_nlp.store import RunDir

ROOT = Path(__file__).resolve().parents[1]


def test_accelerate_launch_spreads_models_over_two_processes(tiny, tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists() and shutil.which("accelerate") is None:
        pytest.skip("accelerate's launcher is not installed")
    recipe = tiny(run={"name": "launched"}, attack={"baselines": ["lira_online"]})
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(accelerate if accelerate.exists() else "accelerate"), "launch", "--config_file",
                             str(ROOT / "recipes" / "accelerate" / "cpu-processes.yaml"), "-m", "tmi_nlp.cli", "run",
                             str(path)], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunDir(recipe.run_dir)
    ranks = [json.loads((run.root / "launch" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["pid"] != ranks[1]["pid"]  # two processes really ran
    assert ranks[0]["models"] == [0, 2] and ranks[1]["models"] == [1, 3]
    assert all(np.load(run.queries(i)).shape == (16, 3, 8) for i in range(4))
    assert (run.report / "report.html").exists() and result.stdout.count("report:") == 1  # only rank 0 reports
