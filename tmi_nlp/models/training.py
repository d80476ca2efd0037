"""Trainer settings shared by pretraining and finetuning, and the scopes a training runs in.

A recipe's `pretrain` and `finetune` sections name the settings a user changes most; every
other `TrainingArguments` field is reachable through their `trainer` mapping and is parsed by
`HfArgumentParser`, as transformers' example scripts do, so no Trainer knob needs a code change.
"""

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, HfArgumentParser, PrinterCallback, Trainer, TrainingArguments

from tmi_nlp.config import RecipeError

# TrainingArguments fields a recipe section sets under its own name, per section.
OWN_FIELDS = {
    "pretrain": {"num_train_epochs": "epochs", "learning_rate": "learning_rate",
                 "per_device_train_batch_size": "batch_size", "weight_decay": "weight_decay",
                 "warmup_steps": "warmup_ratio", "warmup_ratio": "warmup_ratio", "bf16": "precision",
                 "fp16": "precision"},
    "finetune": {"num_train_epochs": "epochs", "learning_rate": "learning_rate",
                 "per_device_train_batch_size": "batch_size", "weight_decay": "weight_decay", "bf16": "precision",
                 "fp16": "precision", "train_sampling_strategy": "group_by_length"},
}
OWN_FIELDS["base"] = OWN_FIELDS["pretrain"]
# Fields tmi-nlp sets for every model: seeds come from run.seed and the model's index, the output is the model's
# folder, the device is chosen by the machine.
SET_BY_TMI_NLP = ("output_dir", "seed", "data_seed", "use_cpu")
# Many models train per process and tqdm shows progress over them: no checkpoints, loggers or bars, unless the
# recipe's `trainer` mapping asks for them.
QUIET = {"save_strategy": "no", "logging_strategy": "no", "report_to": "none", "disable_tqdm": True,
         "dataloader_num_workers": 0}


def check_trainer_fields(trainer: dict[str, Any], section: str) -> None:
    """Refuse `trainer` keys that are not TrainingArguments fields, or that tmi-nlp sets itself."""
    known = set(TrainingArguments.__dataclass_fields__)
    for key in trainer:
        if key in OWN_FIELDS[section]:
            raise RecipeError(f"{section}.trainer.{key}: set by this section; expected {section}."
                              f"{OWN_FIELDS[section][key]} instead")
        if key in SET_BY_TMI_NLP:
            raise RecipeError(f"{section}.trainer.{key}: set by tmi-nlp for each model; expected it left out")
        if key not in known:
            raise RecipeError(f"{section}.trainer.{key}: not a field of transformers.TrainingArguments; expected "
                              f"one of its fields (e.g. gradient_accumulation_steps, lr_scheduler_type)")
    try:
        training_arguments(Path("unused"), epochs=1.0, learning_rate=1e-3, batch_size=1, weight_decay=0.0,
                           warmup_ratio=0.0, precision="fp32", seed=0, trainer=trainer)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{section}.trainer = {trainer!r}: {err}") from err


def training_arguments(output_dir: Path, *, epochs: float, learning_rate: float, batch_size: int,
                       weight_decay: float, warmup_ratio: float, precision: str, seed: int,
                       trainer: dict[str, Any], group_by_length: bool = False) -> TrainingArguments:
    """The Trainer's arguments: a section's own fields, then its `trainer` mapping over quiet defaults."""
    if precision == "bf16" and not torch.cuda.is_available() and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        warnings.warn(f"precision = 'bf16' on a CPU without native bf16 ({torch.backends.cpu.get_cpu_capability()}):"
                      " training runs about 10x slower than with 'fp32' (docs/performance.md)", stacklevel=2)
    values = {**QUIET, **trainer,
              "output_dir": str(output_dir), "num_train_epochs": epochs, "learning_rate": learning_rate,
              "per_device_train_batch_size": batch_size, "weight_decay": weight_decay,
              "bf16": precision == "bf16", "use_cpu": not torch.cuda.is_available(), "seed": seed,
              "data_seed": seed}
    if group_by_length:
        values["train_sampling_strategy"] = "group_by_length"
    values.setdefault("warmup_steps", warmup_ratio)  # transformers 5 reads a value below 1 as a share of the steps
    (args,) = HfArgumentParser(TrainingArguments).parse_dict(values, allow_extra_keys=False)
    return args


def quiet_trainer(trainer_class: type[Trainer] = Trainer, **kwargs) -> Trainer:
    """A `Trainer` without the callback that prints its logs."""
    trainer = trainer_class(**kwargs)
    trainer.remove_callback(PrinterCallback)
    return trainer


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off for the duration, restored after."""
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set for the duration (0: unchanged), restored after."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_checkpoint(spec: str, field_name: str) -> None:
    """Refuse, before anything is written, a checkpoint tmi-nlp would refuse to load later: weights that are not
    safetensors (a pickle runs code when loaded) or a config that needs remote code. A local folder is read;
    a Hub id has its config fetched (no code runs either way)."""
    folder = Path(spec).expanduser()
    if folder.is_dir():
        names = sorted(p.name for p in folder.iterdir())
        if not any(name.endswith(".safetensors") for name in names):
            raise RecipeError(f"{field_name} = {spec!r}: no .safetensors weights (files: {names[:8]}); expected "
                              f"safetensors (pickle checkpoints such as pytorch_model.bin can run code when loaded)")
        if not (folder / "config.json").is_file():
            raise RecipeError(f"{field_name} = {spec!r}: no config.json; expected a Hugging Face checkpoint folder")
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RecipeError(f"{field_name} = {spec!r}: config.json is not JSON ({err})") from err
        if "auto_map" in config:
            raise RecipeError(f"{field_name} = {spec!r}: its config.json maps to remote code (auto_map); expected a "
                              f"checkpoint of a built-in architecture (tmi-nlp never runs a checkpoint's code)")
        return
    try:
        AutoConfig.from_pretrained(spec, trust_remote_code=False)
    except (OSError, ValueError) as err:  # not found, unreachable, or it needs remote code
        raise RecipeError(f"{field_name} = {spec!r}: cannot be used ({str(err).splitlines()[0]}); expected a local "
                          f"checkpoint folder or a Hub id of a safetensors checkpoint without remote code") from err
