"""Push a zoo to, and pull it from, a loopback server speaking huggingface_hub's protocol.

What this covers: the calls huggingface_hub 2.x makes for create_repo, create_commit (inline
uploads) and snapshot_download, against tests/hub_server.py. Not covered: LFS and Xet transfers
of large files, authentication failures and rate limits of the real Hub.
"""

import hashlib
import json
import logging
import shutil

import numpy as np
from conftest import SECRET, TINY

from tmi_nlp.api import run_experiment
from tmi_nlp.cli import main
from tmi_nlp.data.synthetic import synthetic_downstream, synthetic_pool
from tmi_nlp.hub import plan_sha256
from tmi_nlp.stages import run_all
from tmi_nlp.stages.prepare import prepare
from tmi_nlp.store import RunDir


def test_push_pull_roundtrip_and_the_token_never_leaks(tiny, tmp_path, hub, capsys, caplog):
    recipe = tiny(attack={"baselines": ["lira_online"]})
    run_all(recipe, progress=False)
    run = RunDir(recipe.run_dir)
    caplog.set_level(logging.DEBUG)
    assert main(["push", str(run.root), "alice/zoo"]) == 0
    stored = hub.state.repos["alice/zoo"]
    assert "README.md" in stored and "plan/keep.npy" in stored and "models/3/queries.npy" in stored
    assert plan_sha256(run) in stored["README.md"].decode()
    assert all(auth == f"Bearer {SECRET}" for method, path, auth in hub.state.requests if "/api/" in path
               and method == "POST")  # the token is sent where it is needed...
    dest = tmp_path / "pulled"
    assert main(["pull", "alice/zoo", str(dest)]) == 0
    out = capsys.readouterr()
    # ...and nowhere else: not printed, not logged, not in any file of the run or of the pull.
    assert SECRET not in out.out + out.err + caplog.text
    for folder in (run.root, dest):
        for path in folder.rglob("*"):
            assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    assert not any(SECRET.encode() in data for data in stored.values())
    # The pulled zoo is a run folder: it reports with no training, to the same scores.
    (dest / "report" / "report.html").unlink()
    for attack in (dest / "attacks").iterdir():
        (attack / "metrics.json").unlink()
    assert main(["report", str(dest)]) == 0
    assert np.array_equal(np.load(dest / "attacks" / "mlp" / "scores.npy"), np.load(run.attack("mlp") / "scores.npy"))


def test_a_pulled_zoo_is_checked_file_by_file_and_a_bad_one_leaves_nothing(tiny, tmp_path, hub, capsys):
    recipe = tiny()
    prepare(recipe)
    assert main(["push", str(recipe.run_dir), "alice/zoo"]) == 0
    clean = dict(hub.state.repos["alice/zoo"])
    assert json.loads(clean["zoo_manifest.json"])["plan/keep.npy"]["size"] == len(clean["plan/keep.npy"])

    def pull_fails(change, match: str) -> None:
        hub.state.repos["alice/zoo"] = dict(clean)
        change(hub.state.repos["alice/zoo"])
        repo = hub.state.repos["alice/zoo"]  # a new commit: its id from its content
        content = b"".join(name.encode() + data for name, data in sorted(repo.items()))
        hub.state.commits["alice/zoo"] = hashlib.sha1(content).hexdigest()
        capsys.readouterr()
        assert main(["pull", "alice/zoo", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err, err
        assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad*"))  # nothing left behind

    def flip(repo: dict) -> None:
        keep = repo["plan/keep.npy"]
        repo["plan/keep.npy"] = keep[:-1] + bytes([keep[-1] ^ 1])

    pull_fails(flip, "plan/keep.npy does not match the manifest")
    pull_fails(lambda repo: repo.update({"plan/extra.npy": b"x"}), "plan/extra.npy (and 0 more) are not in")
    pull_fails(lambda repo: repo.pop("zoo_manifest.json"), "no zoo_manifest.json")
    pull_fails(lambda repo: repo.update({"README.md": b"# a zoo"}), "states no membership plan sha256")
    pull_fails(lambda repo: repo.update({"../../escaped.txt": b"x"}), "the download failed")
    assert not list(tmp_path.parent.glob("escaped.txt")) and not list(tmp_path.glob("escaped.txt"))
    # Another pull's folder, or anything else of that name, is left alone.
    (tmp_path / ".good.pulling").mkdir()
    (tmp_path / ".good.pulling" / "mine.txt").write_text("not the pull's")
    hub.state.repos["alice/zoo"] = {**clean, ".cache/unchecked.txt": b"escapes the manifest"}
    hub.state.commits["alice/zoo"] = "c" * 40
    assert main(["pull", "alice/zoo", str(tmp_path / "good")]) == 0 and (tmp_path / "good" / "plan").is_dir()
    assert not (tmp_path / "good" / ".cache").exists()  # nothing under .cache/ is kept unchecked
    assert (tmp_path / ".good.pulling" / "mine.txt").read_text() == "not the pull's"


def test_links_out_of_the_run_are_refused_before_any_upload_or_write(tiny, tmp_path, hub, capsys):
    recipe = tiny(attack={"baselines": ["lira_online"]})
    run_all(recipe, progress=False)
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of the zoo")
    (recipe.run_dir / "data" / "notes.txt").symlink_to(secret)
    assert main(["push", str(recipe.run_dir), "alice/linked"]) == 2
    assert "alice/linked" not in hub.state.repos and "symbolic link" in capsys.readouterr().err
    (recipe.run_dir / "data" / "notes.txt").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(recipe.run_dir / "report")
    (recipe.run_dir / "report").symlink_to(elsewhere, target_is_directory=True)
    assert main(["report", str(recipe.run_dir)]) == 2
    assert "report: a symbolic link" in capsys.readouterr().err and not list(elsewhere.iterdir())


def test_a_zoo_made_through_the_api_is_reported_after_a_pull_without_its_inputs(tmp_path, hub):
    overrides = [f"{section}.{key}={json.dumps(value)}" for section, values in TINY.items()
                 for key, value in values.items()]
    overrides += [f"run.output_dir={tmp_path / 'runs'}", "run.name=api-zoo", "attack.baselines=[confidence]"]
    run_experiment(pool=synthetic_pool(60, seed=5), downstream=synthetic_downstream(220, seed=5),
                   overrides=overrides, progress=False)
    folder = tmp_path / "runs" / "api-zoo"
    scores = np.load(folder / "attacks" / "mlp" / "scores.npy")
    assert main(["push", str(folder), "alice/api-zoo"]) == 0
    assert not [name for name in hub.state.repos["alice/api-zoo"] if name.startswith("inputs/")]
    shutil.rmtree(folder)  # the in-memory data's only copy is gone
    dest = tmp_path / "pulled"
    assert main(["pull", "alice/api-zoo", str(dest)]) == 0
    shutil.rmtree(dest / "report")
    shutil.rmtree(dest / "attacks" / "mlp")
    assert main(["report", str(dest)]) == 0 and (dest / "report" / "report.html").exists()
    assert np.array_equal(np.load(dest / "attacks" / "mlp" / "scores.npy"), scores)
