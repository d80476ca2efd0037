"""The run folder: the one contract between training and attacking, its paths and its readers.

After `prepare`, a run folder holds everything every later stage reads (the resolved recipe,
the plan, the tokenizer, the tokenised data, then each model's artifacts), so a folder copied
elsewhere or pulled from the Hub is attacked and reported without the raw data files.

    runs/<name>/
      config.yaml               the resolved recipe
      plan/                     pool.json, challenge.npy, keep.npy, plan.json
      tokenizer/                the tokenizer every model shares
      data/tokens.json          pool, challenge points and downstream task, tokenised once
      data/reference.json       TF-IDF + logistic regression accuracy on the victims' split, and the majority class
      data/fingerprint.json     sha256 of the raw data (written last by prepare: the folder is prepared)
      base/                     the base encoder every model continued from (base.corpus), with base.json
      models/<i>/pretrained/    masked LM (safetensors)
      models/<i>/signals/       <name>.npy [K]: white-box signals of the pretrained model (mlm_loss)
      models/<i>/finetuned/     classifier, method.json, metrics.json
      models/<i>/queries.npy    float32 [points, A, C]: the finetuned model's softmax on A queries per point
      attacks/<name>/           scores.npy [victims, points], labels.npy, metrics.json
      report/                   report.html, metrics.json, roc.png
"""

import json
import os
from pathlib import Path

import numpy as np
import yaml

from tmi_nlp.atomic import atomic_write_json, file_sha256
from tmi_nlp.config import Recipe, RecipeError, load_yaml, migrate, recipe_from_dict
from tmi_nlp.data.plan import Plan

# The per-model stages, in order, and what marks each one finished.
MODEL_STAGES = ("pretrain", "signals", "finetune")
MANIFEST = "manifest.json"


def file_record(path: Path) -> dict:
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


def _check(root: Path, manifest: dict, hashes: bool) -> None:
    for name, record in manifest.items():
        path = root / name
        if not path.is_file():
            raise RecipeError(f"{path}: missing; the run's manifest lists it (size {record['size']}). Restore it, or "
                              f"remove what it belongs to and rerun to redo it")
        size = path.stat().st_size
        if size != record["size"] or (hashes and file_sha256(path) != record["sha256"]):
            what = f"{size} bytes, recorded {record['size']}" if size != record["size"] else "another sha256"
            raise RecipeError(f"{path}: changed since it was finished ({what}); expected the file tmi-nlp wrote. "
                              f"Restore it, or remove what it belongs to and rerun to redo it")
# What an attack reads: the query tensor, or a white-box signal of the pretrained models.
QUERIES = "queries"


PREPARED = "data/fingerprint.json"  # written last by prepare: a folder that has it is prepared


class RunDir:
    """Paths of the on-disk contract, and readers of what the stages wrote."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def plan(self) -> Path:
        return self.root / "plan"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def fingerprint(self) -> Path:
        return self.root / PREPARED

    @property
    def reference(self) -> Path:
        """data/reference.json: the TF-IDF + logistic regression accuracy and the majority class, on the same split."""
        return self.data / "reference.json"

    @property
    def base(self) -> Path:
        """base/: the base encoder the models continued from (a hard-linked copy of the shared one), if any."""
        return self.root / "base"

    def model(self, i: int) -> Path:
        return self.root / "models" / str(i)

    def pretrained(self, i: int) -> Path:
        return self.model(i) / "pretrained"

    def finetuned(self, i: int) -> Path:
        return self.model(i) / "finetuned"

    def queries(self, i: int) -> Path:
        return self.model(i) / "queries.npy"

    def signal(self, i: int, name: str) -> Path:
        return self.model(i) / "signals" / f"{name}.npy"

    def signal_masks(self, name: str, num_models: int) -> set[str]:
        """How the models' masked-LM signals drew their masks (signals/<name>.json); signals written before
        the record existed were masked by run.seed and the challenge order."""
        legacy = "run.seed and challenge order (older runs)"
        paths = [self.signal(i, name).with_suffix(".json") for i in range(num_models)]
        return {json.loads(p.read_text())["masks"] if p.exists() else legacy for p in paths}

    def attack(self, name: str) -> Path:
        return self.root / "attacks" / name

    @property
    def report(self) -> Path:
        return self.root / "report"

    # Manifests: each finished artifact's size and sha256, recorded when it is finished and checked before it is
    # used, so that a file cut short, flipped in place or edited is named instead of trusted by its existence.

    def stage_files(self, i: int, stage: str) -> list[Path]:
        """The files model i's `stage` finished."""
        folders = {"pretrain": [self.pretrained(i)], "signals": [self.model(i) / "signals"],
                   "finetune": [self.finetuned(i)]}[stage]
        files = [p for folder in folders if folder.is_dir() for p in sorted(folder.rglob("*")) if p.is_file()]
        return files + ([self.queries(i)] if stage == "finetune" else [])

    def _manifest(self, path: Path) -> dict:
        return json.loads(path.read_text()) if path.exists() else {}

    def stage_manifest(self, i: int, stage: str) -> Path:
        """models/<i>/manifest/<stage>.json: written once, when the stage is finished."""
        return self.model(i) / "manifest" / f"{stage}.json"

    def record_stage(self, i: int, stage: str) -> None:
        """Record model i's finished `stage`: each of its files' size and sha256."""
        atomic_write_json(self.stage_manifest(i, stage), {p.relative_to(self.root).as_posix(): file_record(p)
                                                          for p in self.stage_files(i, stage)})

    def record_prepared(self) -> None:
        """Record the files prepare wrote (config, plan, tokens) in manifest.json at the run's root."""
        files = [self.config, self.plan / "keep.npy", self.plan / "challenge.npy", self.plan / "pool.json",
                 self.plan / "plan.json", self.data / "tokens.json"]
        atomic_write_json(self.root / MANIFEST, {p.relative_to(self.root).as_posix(): file_record(p) for p in files})

    def verify(self, num_models: int, stages: tuple[str, ...] = MODEL_STAGES, hashes: bool = True) -> None:
        """Check the prepared files and every finished stage of models 0..n-1 against their manifests (sizes, and
        with `hashes` the sha256 too). What was finished before manifests existed is recorded as it is now."""
        if not (self.root / MANIFEST).exists():
            self.record_prepared()
        _check(self.root, self._manifest(self.root / MANIFEST), hashes)
        for i in range(num_models):
            for stage in stages:
                if not self.model_done(i, stage):
                    continue
                if not self.stage_manifest(i, stage).exists():
                    self.record_stage(i, stage)
                    continue
                _check(self.root, self._manifest(self.stage_manifest(i, stage)), hashes)

    # Readers.

    @property
    def prepared(self) -> bool:
        """prepare finished: config, plan, tokenizer and tokens are there (the fingerprint is written last)."""
        return self.fingerprint.exists()

    def refuse_outside_links(self) -> None:
        """A symbolic link inside the run folder that leads out of it would make tmi-nlp read, write or upload
        outside the run (`report/` linked to another folder, a model file linked to a private one): refused.
        (The run folder itself may be a link; links within the folder are harmless.)"""
        root = self.root.resolve()
        for folder, dirs, files in os.walk(self.root):
            for name in dirs + files:
                path = Path(folder) / name
                if path.is_symlink() and not path.resolve().is_relative_to(root):
                    raise RecipeError(f"{path}: a symbolic link to {path.resolve()}, outside the run folder {root}; "
                                      f"expected the run's own files (replace the link by what it points to)")

    def stored_config(self) -> dict:
        """config.yaml as written by prepare, moved to this version's keys."""
        if not self.config.exists():
            raise RecipeError(f"{self.root}: expected a run folder with config.yaml")
        try:
            raw = load_yaml(self.config.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise RecipeError(f"{self.config}: not the YAML tmi-nlp wrote ({str(err).splitlines()[0]}); restore it "
                              f"(it records how the run's models were made) or start a new run") from err
        if not isinstance(raw, dict) or not isinstance(raw.get("run"), dict):
            raise RecipeError(f"{self.config}: no run section; expected the config.yaml tmi-nlp wrote")
        return migrate(raw)

    def recipe(self) -> Recipe:
        """The recipe this folder was made with, pointed at where the folder is now (it may have moved)."""
        raw = self.stored_config()
        raw["run"].update(output_dir=str(self.root.parent), name=self.root.name)
        return recipe_from_dict(raw)

    def load_plan(self) -> Plan:
        return Plan.load(self.plan)

    def tokens(self) -> dict:
        """data/tokens.json: token ids of the pool, the challenge points (no specials) and the downstream task."""
        return json.loads((self.data / "tokens.json").read_text())

    def model_done(self, i: int, stage: str) -> bool:
        if stage == "pretrain":
            return (self.pretrained(i) / "config.json").exists()
        if stage == "signals":
            return self.signal(i, "mlm_loss").exists()
        if stage == "finetune":
            return (self.finetuned(i) / "metrics.json").exists() and self.queries(i).exists()
        raise ValueError(f"stage {stage!r}: expected one of {MODEL_STAGES}")

    def stacked(self, reads: str, num_models: int) -> np.ndarray:
        """What an attack reads, stacked over models: the query tensors [N, K, A, C] (memory-mapped), or
        signals/<reads>.npy [N, K]."""
        paths = [self.queries(i) if reads == QUERIES else self.signal(i, reads) for i in range(num_models)]
        missing = [i for i, path in enumerate(paths) if not path.exists()]
        if missing:
            stage = "finetune" if reads == QUERIES else "pretrain"
            raise FileNotFoundError(f"{self.root}: {reads} missing for models {missing}: run the {stage} stage first")
        return np.stack([np.load(path, mmap_mode="r" if reads == QUERIES else None) for path in paths])

    def finetune_metrics(self, num_models: int) -> list[dict]:
        """Each finetuned model's metrics.json (downstream accuracy; epsilon spent, for DP)."""
        return [json.loads((self.finetuned(i) / "metrics.json").read_text()) for i in range(num_models)]
