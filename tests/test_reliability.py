"""Crash safety, reproducibility, validation, safe loading and disk checks (issue: reliability)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmi_nlp.atomic import DiskSpaceError
from tmi_nlp.cli import main
from tmi_nlp.config import SECTIONS, RecipeError, recipe_from_dict
from tmi_nlp.data.loading import DataError
from tmi_nlp.stages import run_all, train
from tmi_nlp.stages.prepare import prepare
from tmi_nlp.stages.train import WorkerError, train_models
from tmi_nlp.store import MODEL_STAGES, RunDir

# Only two baselines, so that each restart stays short.
FAST = {"attack": {"baselines": ["lira_online", "mlm_loss_lira"]}}


def _write_recipe(tiny, tmp_path, name):
    recipe = tiny(run={"name": name}, **FAST)
    path = tmp_path / f"{name}.yaml"
    path.write_text(recipe.to_yaml())
    return recipe, path


def _finished_files(run: RunDir) -> dict[str, int]:
    # Artifacts only: not temporaries, nor the writer lock, which each process that opens the run rewrites.
    return {str(p.relative_to(run.root)): p.stat().st_mtime_ns for p in run.root.rglob("*")
            if p.is_file() and ".tmp-" not in str(p) and p.name != ".writer.lock"}


def test_run_killed_at_six_points_over_the_stages_resumes_to_identical_scores(tiny, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "tmi_nlp.cli", "run"]
    ref_recipe, ref_path = _write_recipe(tiny, tmp_path, "straight")
    subprocess.run([*cli, str(ref_path)], check=True, env=env, capture_output=True)
    recipe, path = _write_recipe(tiny, tmp_path, "killed")
    run = RunDir(recipe.run_dir)
    # Kill as soon as each marker appears: prepare, pretraining, signals, finetuning, attack, report.
    markers = [run.tokenizer / "tokenizer.json", run.pretrained(1) / "config.json", run.signal(2, "mlm_loss"),
               run.queries(2), run.attack("mlp") / "metrics.json", run.attack("lira_online") / "metrics.json"]
    kept: dict[str, int] = {}
    for marker in markers:
        proc = subprocess.Popen([*cli, str(path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.time() + 300
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert marker.exists(), marker
        assert not (run.report / "report.html").exists()
        now = _finished_files(run)
        # Nothing finished before is rewritten by a later, interrupted process.
        assert {k: now[k] for k in kept if k in now} == {k: v for k, v in kept.items() if k in now}
        assert set(kept) <= set(now)
        kept = now
    subprocess.run([*cli, str(path)], check=True, env=env, capture_output=True)
    final = _finished_files(run)
    stable = {k for k in kept if k.startswith(("models/", "plan/", "tokenizer/"))}
    assert all(final[k] == kept[k] for k in stable)  # not retrained
    assert not list(run.root.rglob(".*.tmp-*"))
    ref = RunDir(ref_recipe.run_dir)
    assert np.array_equal(np.load(run.plan / "keep.npy"), np.load(ref.plan / "keep.npy"))
    for i in range(recipe.run.num_models):
        assert np.array_equal(np.load(run.queries(i)), np.load(ref.queries(i)))
    for name in ("mlp", "shared_centred", "lira_online", "mlm_loss_lira"):
        assert np.array_equal(np.load(run.attack(name) / "scores.npy"), np.load(ref.attack(name) / "scores.npy"))


def test_same_seed_same_plan_other_seed_other_plan_and_provenance_is_written(tiny):
    a = prepare(tiny(run={"name": "a"}))
    b = prepare(tiny(run={"name": "b"}))
    c = prepare(tiny(run={"name": "c", "seed": 1}))
    keep = [np.load(r.plan / "keep.npy") for r in (a, b, c)]
    assert np.array_equal(keep[0], keep[1]) and not np.array_equal(keep[0], keep[2])
    assert (a.data / "tokens.json").read_text() == (b.data / "tokens.json").read_text()
    env = json.loads((a.root / "environment.json").read_text())
    assert env["torch"] and env["transformers"] and env["python"]
    assert set(json.loads((a.data / "fingerprint.json").read_text())) == {"pool_sha256", "downstream_sha256"}
    assert yaml.safe_load(a.config.read_text())["run"]["seed"] == 0


def test_changed_data_is_refused_and_named(tiny, tmp_path):
    task = tmp_path / "task.csv"
    rows = [f"note number {i} about department {i % 3},{i % 3}" for i in range(300)]
    task.write_text("text,label\n" + "\n".join(rows) + "\n")
    recipe = tiny(data={"downstream": str(task), "num_train": 160, "num_eval": 40})
    prepare(recipe)
    task.write_text("text,label\n" + "\n".join(rows[:150] + ["a changed note,1"] + rows[151:]) + "\n")
    with pytest.raises(RecipeError, match="downstream_sha256"):
        prepare(recipe)


@pytest.mark.parametrize("labels, fragment", [
    (["a", 1], "expected integers or class names, not both"),
    ([-1, 1], "expected an integer >= 0"),
    ([0.5, 1], "expected an integer >= 0"),
])
def test_bad_labels_are_named_before_training(tiny, tmp_path, labels, fragment):
    task = tmp_path / "task.jsonl"
    task.write_text("\n".join(json.dumps({"text": f"text {i}", "label": labels[i % 2]}) for i in range(50)))
    with pytest.raises(DataError, match=fragment):
        prepare(tiny(data={"downstream": str(task)}))
    assert not RunDir(tiny().run_dir).root.exists() or not (RunDir(tiny().run_dir).plan / "plan.json").exists()


def test_empty_texts_and_a_small_pool_are_named(tiny, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n" + "\n".join(" ,1" for _ in range(20)) + "\n")
    with pytest.raises(DataError, match="no non-empty texts"):
        prepare(tiny(data={"downstream": str(empty)}))
    small = tmp_path / "pool.txt"
    small.write_text("\n".join(f"line {i}" for i in range(10)) + "\n")
    with pytest.raises(DataError, match="data.pool_size = 48"):
        prepare(tiny(data={"pool": str(small)}))


def test_a_tokenizer_that_does_not_fit_the_models_is_refused(tiny, tmp_path):
    recipe = tiny(pretrain={"epochs": 0.1})
    prepare(recipe)
    train_models(recipe, stages=("pretrain",), models=[0], progress=False)
    run = RunDir(recipe.run_dir)
    config = json.loads((run.pretrained(0) / "config.json").read_text())
    config["vocab_size"] += 7
    (run.pretrained(0) / "config.json").write_text(json.dumps(config))
    with pytest.raises(RecipeError, match="vocab_size"):
        prepare(recipe)


def test_pickle_checkpoints_are_not_loaded(tiny):
    recipe = tiny(pretrain={"epochs": 0.1})
    prepare(recipe)
    train_models(recipe, stages=("pretrain",), models=[0], progress=False)
    run = RunDir(recipe.run_dir)
    import torch
    from safetensors.torch import load_file

    weights = run.pretrained(0) / "model.safetensors"
    torch.save(load_file(weights), run.pretrained(0) / "pytorch_model.bin")
    weights.unlink()
    # (the manifest names the missing safetensors file first; without it, loading refuses the pickle)
    with pytest.raises((OSError, RecipeError), match="safetensors|model.safetensors"):
        train_models(recipe, stages=("finetune",), models=[0], progress=False)
    assert not run.queries(0).exists()


def test_run_name_cannot_escape_the_runs_folder(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    for name in ("../outside", "/etc", "a/b", ".."):
        recipe.write_text(yaml.safe_dump({"run": {"name": name, "output_dir": str(tmp_path / "runs")}}))
        assert main(["check", str(recipe)]) == 2
        assert "run.name" in capsys.readouterr().err
    assert not (tmp_path / "outside").exists()


def test_low_disk_space_stops_a_stage_before_it_writes(tiny, monkeypatch):
    recipe = tiny()
    prepare(recipe)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(DiskSpaceError, match="MiB free"):
        train_models(recipe, progress=False)
    assert not RunDir(recipe.run_dir).pretrained(0).exists()


# The fuzz: any mapping of sections to fields with values of any plain YAML type either loads or
# raises RecipeError; never another exception.
FIELD_NAMES = sorted({f.name for cls in SECTIONS.values() for f in __import__("dataclasses").fields(cls)})
values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
                      | st.text(max_size=12), lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
sections = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), values, max_size=4)
recipes = st.dictionaries(st.sampled_from(sorted(SECTIONS)) | st.text(max_size=6), sections | values, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recipes | values)
def test_fuzzed_recipes_give_only_clean_errors(raw):
    try:
        recipe_from_dict(raw)
    except RecipeError as err:
        assert str(err)


def test_remote_code_in_a_checkpoint_is_never_run(tmp_path):
    """A tokenizer or model folder that asks for its own Python code is refused, and the code never runs."""
    from tmi_nlp.models.tokenizer import load_tokenizer
    from tmi_nlp.stages.target import load_target

    marker = tmp_path / "ran"
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n"
                                    "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "EvilTokenizer", "auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}}))
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "evil", "auto_map": {"AutoModelForSequenceClassification": "evil.EvilModel",
                                            "AutoConfig": "evil.EvilConfig"}}))
    for load in (load_tokenizer, load_target):
        with pytest.raises((ValueError, OSError)):  # transformers raises one or the other by version
            load(folder)
    assert not marker.exists()


def _kill_the_first_worker(deadline_s: float = 120, parent_pid: int | None = None) -> None:
    """SIGKILL the first training worker this process (or `parent_pid`) starts, as the out-of-memory killer would."""
    parent_pid = parent_pid or os.getpid()
    end = time.time() + deadline_s
    while time.time() < end:
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == parent_pid and b"tmi_nlp.stages.worker" in cmdline:
                os.kill(int(proc.name), signal.SIGKILL)
                return
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker through /proc")
def test_a_worker_that_dies_ends_the_run_with_an_error_naming_the_model_and_the_rerun_resumes(tiny):
    recipe = tiny(run={"workers": 2, "threads_per_model": 1}, **FAST)
    prepare(recipe)
    killer = threading.Thread(target=_kill_the_first_worker)
    killer.start()
    with pytest.raises(WorkerError, match=r"model \d: its worker process was killed by SIGKILL"):
        train_models(recipe, progress=False)
    killer.join()
    train_models(recipe, progress=False)
    run = RunDir(recipe.run_dir)
    assert all(run.model_done(i, stage) for i in range(4) for stage in MODEL_STAGES)


def test_a_worker_that_cannot_start_is_an_error_not_a_hang(tiny, monkeypatch):
    recipe = tiny(run={"workers": 2}, **FAST)
    prepare(recipe)
    monkeypatch.setattr(train, "_worker_command", lambda *args: ([sys.executable, "-c", "import sys; sys.exit(3)"],
                                                                 dict(os.environ)))
    with pytest.raises(WorkerError, match=r"model \d: its worker process exited with code 3"):
        train_models(recipe, progress=False)


def _hold_writer_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds the run folder's writer lock (until killed), once it holds it."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from tmi_nlp.atomic import writer_lock\n"
        f"with writer_lock({str(folder)!r}):\n    print('held', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_of_a_run_folder_is_refused_and_a_killed_one_leaves_no_lock(tiny, tmp_path):
    from tmi_nlp.atomic import RunLocked

    recipe = tiny()
    holder = _hold_writer_lock(recipe.run_dir)
    try:
        with pytest.raises(RunLocked, match=rf"is being written by process {holder.pid}; expected one writer"):
            run_all(recipe, progress=False)
        assert not (recipe.run_dir / "config.yaml").exists()  # refused before writing anything
    finally:
        holder.kill()  # as the OOM killer would: no clean-up runs
        holder.wait()
    run_all(recipe, progress=False)  # the OS released the lock with its holder
    assert (recipe.run_dir / "report" / "metrics.json").exists()


def test_the_mlp_backend_is_recorded_with_each_attack_and_never_mixed_in_a_run(tiny, monkeypatch):
    from tmi_nlp.attacks import mlp_kernel
    from tmi_nlp.config import RecipeError
    from tmi_nlp.stages import run_all
    from tmi_nlp.stages.attack import attack

    if mlp_kernel.load() is None:
        pytest.skip("no C compiler here: the kernel backend cannot be built")
    recipe = tiny(attack={"metaclassifiers": ["mlp"], "baselines": ["confidence"], "backend": "auto"})
    summary = run_all(recipe, progress=False)
    assert summary["attacks"]["mlp"]["backend"] == "kernel" and "backend" not in summary["attacks"]["confidence"]
    # The run resumed on a machine without a compiler, where 'auto' means the torch code.
    monkeypatch.setattr(mlp_kernel, "load", lambda: None)
    recipe.attack.metaclassifiers = ["mlp", "shared_centred"]
    with pytest.raises(RecipeError, match=r"trains with 'torch', but mlp in .* was trained with 'kernel'; expected "
                                          r"one backend per run"):
        attack(recipe)
    assert not (recipe.run_dir / "attacks" / "shared_centred").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["check", "{bad}"], "not UTF-8 text"),
    (["check", "{demo}", "--set", "run.name=a\x00b"], "run.name=a\\x00b': value is not valid YAML"),
    (["run", "{demo}", "--set", "run.output_dir=/proc"], "/proc"),
    (["attack", "{demo}", "--target", "./no/such/model"], "--target = './no/such/model': no such folder"),
    (["check", "{demo}", "--set", "data.pool={empty}"], "data.pool: '{empty}' is empty; expected texts"),
    (["check", "{demo}", "--set", "data.pool={latin1}"], "is not UTF-8 text (byte 3"),
    (["check", "{demo}", "--set", "data.downstream={latin1_csv}"], "data.downstream: '{latin1_csv}' is not UTF-8"),
    (["check", "{demo}", "--set", "data.downstream={broken_csv}"], "could not be read as .csv (ParserError"),
    (["check", "{demo}", "--set", "data.downstream={same_csv}"], "and eval texts that are training texts too, "),
])
def test_bad_input_ends_in_one_clean_line(argv, fragment, tmp_path, capsys):
    from tmi_nlp.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b'run: {name: "caf\xe9"}\n')
    files = {"empty": tmp_path / "empty.txt", "latin1": tmp_path / "latin1.txt", "latin1_csv": tmp_path / "l.csv",
             "broken_csv": tmp_path / "broken.csv", "same_csv": tmp_path / "same.csv"}
    files["empty"].write_bytes(b"")
    files["latin1"].write_bytes(b"abc\xff\xfe def\n")
    files["latin1_csv"].write_bytes(b"text,label\nabc\xff,1\n")
    files["broken_csv"].write_text('text,label\n"unclosed,1\n')
    files["same_csv"].write_text("text,label\n" + "".join(f"one text for all,{i % 2}\n" for i in range(400)))
    fragment = fragment.format(**files)
    demo = str(Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml")
    argv = [a.format(bad=bad, demo=demo, **files) for a in argv]
    if argv[0] == "attack":  # a prepared run folder to aim from, without training anything
        argv += ["--set", f"run.output_dir={tmp_path}", "--set", "run.num_points=4", "--set", "data.pool_size=8",
                 "--set", "data.num_train=20", "--set", "data.num_eval=5", "--set", "tokenizer.vocab_size=200"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    # (datasets' progress bars may come first)
    assert fragment in err and "Traceback" not in err and ("\n" + err).count("\ntmi-nlp: error:") == 1


def test_a_broken_run_folder_is_named_in_one_clean_line(tiny, capsys):
    from tmi_nlp.cli import main

    recipe = tiny()
    prepare(recipe)
    run = recipe.run_dir
    assert main(["finetune", str(run)]) == 2  # before pretrain
    assert "models [0, 1, 2, 3] are not pretrained" in capsys.readouterr().err
    challenge = np.load(run / "plan" / "challenge.npy")
    np.save(run / "plan" / "challenge.npy", np.concatenate([challenge[:-1], [10**6]]))
    assert main(["pretrain", str(run)]) == 2
    assert "plan/challenge.npy: expected distinct integer indices into the pool's 48 texts" in capsys.readouterr().err
    (run / "config.yaml").write_text("run: {name: [unclosed\n")
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "config.yaml: not the YAML tmi-nlp wrote" in err and "Traceback" not in err


def test_a_false_positive_rate_outside_0_1_is_refused_by_the_parser(capsys):
    from tmi_nlp.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["attack", "runs/demo", "--fpr", "2"])
    assert stop.value.code == 2 and "--fpr = '2': expected a number in (0, 1)" in capsys.readouterr().err


def test_scores_do_not_depend_on_how_many_workers_ran_the_models(tiny):
    from tmi_nlp.config import RecipeError
    from tmi_nlp.stages import run_all

    one = tiny(run={"name": "one-worker", "workers": 1}, **FAST)
    two = tiny(run={"name": "two-workers", "workers": 2}, **FAST)
    run_all(one, progress=False)
    run_all(two, progress=False)
    a, b = RunDir(one.run_dir), RunDir(two.run_dir)
    assert np.array_equal(a.stacked("queries", 4), b.stacked("queries", 4))
    assert {m["torch_threads"] for m in a.finetune_metrics(4)} == {1}
    # Another thread count would change the arithmetic: a resume with one is refused, not mixed in.
    one.run.threads_per_model = 2
    with pytest.raises(RecipeError, match=r"run.threads_per_model: 1 -> 2"):
        run_all(one, progress=False)


def test_an_unsafe_checkpoint_is_refused_before_the_run_folder_is_written(tiny, tmp_path, capsys):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    model = BertForMaskedLM(BertConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64, max_position_embeddings=64))
    pickled, remote = tmp_path / "pickled", tmp_path / "remote"
    model.save_pretrained(pickled)
    model.save_pretrained(remote)
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")  # what older checkpoints ship
    (pickled / "model.safetensors").unlink()
    config = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "evil.Model"}}))
    for folder, fragment in [(pickled, "no .safetensors weights"), (remote, r"maps to remote code \(auto_map\)")]:
        recipe = tiny(run={"name": folder.name}, base={"checkpoint": str(folder)})
        with pytest.raises(RecipeError, match=fragment):
            prepare(recipe)
        assert not recipe.run_dir.exists()  # nothing written: the corrected recipe starts clean


def test_finished_artifacts_are_checked_against_their_manifest_not_trusted_by_existence(tiny, capsys):
    recipe = tiny(attack={"baselines": ["lira_online"]})
    run_all(recipe, progress=False)
    run = recipe.run_dir
    assert json.loads((run / "models" / "2" / "manifest" / "finetune.json").read_text())["models/2/queries.npy"]

    def tampered(path, change, fragment: str, command: str = "report") -> None:
        original = path.read_bytes()
        path.write_bytes(change(original))
        assert main([command, str(run)]) == 2
        err = capsys.readouterr().err
        # (queries.npy may be named through its hard-linked twin, finetuned/queries.npy)
        assert f"{path.name}: changed since it was finished ({fragment}" in err and "Traceback" not in err, err
        path.write_bytes(original)

    queries = run / "models" / "2" / "queries.npy"
    size = queries.stat().st_size
    tampered(queries, lambda b: b[:-100], f"{size - 100} bytes, recorded {size})")  # cut short
    tampered(run / "plan" / "keep.npy", lambda b: b[:-1] + bytes([b[-1] ^ 1]), "another sha256")  # flipped in place
    tampered(run / "config.yaml", lambda b: b.replace(b"epochs: 1.0", b"epochs: 9.0"), "another sha256")
    # A resume is refused too, before anything trains on the damaged file.
    tampered(run / "models" / "1" / "pretrained" / "model.safetensors", lambda b: b[: len(b) // 2], "", "run")
    assert main(["report", str(run)]) == 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker through /proc")
def test_every_fault_in_one_run_ends_identical_to_an_uninterrupted_run_or_in_an_error_naming_the_cause(tiny, tmp_path):
    """A killed worker, a killed parent, a finished artifact corrupted and a second writer, one after the other on
    one run: each ends in an error naming the model, file or process, and the last resume equals a straight run."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    paths = {}
    for name in ("straight", "faulty"):
        recipe = tiny(run={"name": name, "workers": 2, "threads_per_model": 1}, **FAST)
        paths[name] = (recipe, tmp_path / f"{name}.yaml")
        paths[name][1].write_text(recipe.to_yaml())
    cli = [sys.executable, "-m", "tmi_nlp.cli", "run"]
    subprocess.run([*cli, str(paths["straight"][1])], check=True, env=env, capture_output=True)
    recipe, path = paths["faulty"]
    run = RunDir(recipe.run_dir)

    def start() -> subprocess.Popen:
        return subprocess.Popen([*cli, str(path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    # 1. A worker killed as the out-of-memory killer would: the run ends naming the model.
    proc = start()
    _kill_the_first_worker(parent_pid=proc.pid)
    assert proc.wait(timeout=300) == 2
    assert re.search(r"model \d: its worker process was killed by SIGKILL", proc.stderr.read())
    # 2. The whole run killed mid-finetuning.
    proc = start()
    deadline = time.time() + 300
    while not run.queries(1).exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # 3. A finished artifact corrupted: named, and redone once its model's folder is removed.
    weights = run.pretrained(1) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    proc = start()
    assert proc.wait(timeout=300) == 2 and f"{weights}: changed since it was finished" in proc.stderr.read()
    shutil.rmtree(run.model(1))
    # 4. A second writer while another holds the folder: refused, naming the holder.
    holder = _hold_writer_lock(run.root)
    try:
        proc = start()
        assert proc.wait(timeout=300) == 2 and f"process {holder.pid}" in proc.stderr.read()
    finally:
        holder.kill()
        holder.wait()
    # 5. The last resume: identical to the straight run.
    subprocess.run([*cli, str(path)], check=True, env=env, capture_output=True)
    ref = RunDir(paths["straight"][0].run_dir)
    for i in range(recipe.run.num_models):
        assert np.array_equal(np.load(run.queries(i)), np.load(ref.queries(i))), i
    for name in ("mlp", "shared_centred", "lira_online", "mlm_loss_lira"):
        assert np.array_equal(np.load(run.attack(name) / "scores.npy"), np.load(ref.attack(name) / "scores.npy"))
