"""Hostile or unlucky input, second round: refused data leaves no run folder, Ctrl-C and operating-system errors
in the workers end in one line, never a traceback."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from tmi_nlp.cli import main
from tmi_nlp.stages.prepare import prepare


def _write(recipe, tmp_path, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(recipe.to_yaml())
    return path


def test_data_refused_at_prepare_leaves_no_run_folder(tiny, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") * 60)
    (tmp_path / "two.txt").write_text("one candidate text\nanother candidate text\n")
    cases = {"empty": {"pool": str(tmp_path / "empty.txt")}, "latin1": {"pool": str(tmp_path / "latin1.txt")},
             "small-challenge": {"challenge": str(tmp_path / "two.txt")}}
    for name, data in cases.items():
        recipe = tiny(run={"name": name}, data=data)
        assert main(["run", str(_write(recipe, tmp_path))]) == 2
        err = capsys.readouterr().err
        assert "tmi-nlp: error:" in err and "Traceback" not in err, err
        assert not recipe.run_dir.exists(), name  # not even the lock or config.yaml
    # A prepared folder is kept whatever fails later.
    recipe = tiny(run={"name": "kept"})
    prepare(recipe)
    recipe.data.pool = str(tmp_path / "empty.txt")
    assert main(["run", str(_write(recipe, tmp_path))]) == 2
    assert (recipe.run_dir / "config.yaml").exists()


def test_ctrl_c_during_training_ends_in_one_line_and_stops_the_workers(tiny, tmp_path):
    recipe = tiny(run={"name": "interrupted", "num_models": 6, "workers": 2}, pretrain={"epochs": 20.0})
    path = _write(recipe, tmp_path)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # Its own process group, as a terminal's foreground job: Ctrl-C is SIGINT to the whole group.
    proc = subprocess.Popen([sys.executable, "-m", "tmi_nlp.cli", "run", str(path)], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (recipe.run_dir / "models").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # the workers are starting or training
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted; finished work is kept" in err
    assert subprocess.run(["pgrep", "-f", f"tmi_nlp.stages.worker {recipe.run_dir}"]).returncode != 0  # none left


def test_an_operating_system_error_in_a_worker_is_one_line(tiny, tmp_path, capsys):
    recipe = tiny(run={"name": "oserror", "workers": 2})
    prepare(recipe)
    (recipe.run_dir / "models").mkdir(exist_ok=True)
    (recipe.run_dir / "models" / "1").write_text("a file where the model's folder goes")
    assert main(["run", str(_write(recipe, tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "model 1:" in err, err
    said = [line for line in err.splitlines() if line.strip() and not line.startswith("plan:")
            and "model/s]" not in line]
    assert len(said) == 1 and said[0].startswith("tmi-nlp: error: model 1: FileExistsError"), err


# The fuzz over what a user hands in: recipe text (any YAML, aliases and duplicate keys among it) and the bytes of
# a data file, through `tmi-nlp check` (the recipe, then every data check prepare makes, nothing trained). Each
# case ends in 0 or in one clean line; never a traceback, and never a run folder.
YAML_PIECES = ["run:", "data:", "model:", "pretrain:", "base:", "  name: x", "  pool: POOL", "  pool_size: 40",
               "  epochs: nan", "  epochs: &e 2", "  epochs: *e", "  hidden_size: [1, 2]", "pretrain:", "  - 1",
               "  num_points: 12", "  checkpoint: ~/nothing", "  corpus: POOL", ": :", "{", "  trainer: {a: b}",
               "\t", "  private_share: 0.5", "  max_length: 600", "!!python/object:os.system", "  seed: -3"]
TEXT_PIECES = ["a note about the patient", "\u200b\u200d", "\x07", "", "caf\u00e9", "=" * 5, "\u00e9" * 300,
               "word " * 50, "\ud7ff", "line\r\nbreak", "\ufeffbom"]


def test_fuzzed_recipe_text_and_data_files_end_in_one_clean_line(tiny, tmp_path, capsys):
    rng = np.random.default_rng(0)
    reached = 0
    for case in range(40):
        pool = tmp_path / f"pool{case}.txt"
        texts = [TEXT_PIECES[k] for k in rng.integers(len(TEXT_PIECES), size=rng.integers(0, 120))]
        data = "\n".join(texts).encode("utf-8", "surrogatepass")
        if rng.random() < 0.2:  # a byte or two that are not UTF-8
            data = data + bytes(rng.integers(128, 256, size=2).tolist())
        pool.write_bytes(data)
        # A third of the cases are a valid recipe: only the data file is hostile.
        size = 0 if case % 3 == 0 else rng.integers(1, 9)
        lines = [YAML_PIECES[k] for k in rng.integers(len(YAML_PIECES), size=size)]
        text = "\n".join(lines).replace("POOL", str(pool))
        recipe = tiny(run={"name": f"fuzz{case}"}, data={"pool": str(pool), "pool_size": 40})
        base = recipe.to_yaml() if case % 3 == 0 or rng.random() < 0.5 else ""
        path = tmp_path / f"fuzz{case}.yaml"
        path.write_text(base + text + "\n")
        code = main(["check", str(path)])
        err = capsys.readouterr().err
        assert code in (0, 2), (text, err)
        assert "Traceback" not in err, (text, err)
        if code == 2:
            assert [line for line in err.splitlines() if line.startswith("tmi-nlp: error:")], (text, err)
        reached += "data.pool" in err or code == 0
        assert not recipe.run_dir.exists()
    assert reached >= 10  # the data checks were reached, not only the recipe's
