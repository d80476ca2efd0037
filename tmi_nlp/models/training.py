"""Trainer settings shared by pretraining and finetuning."""

from pathlib import Path

import torch
import transformers
from transformers import PrinterCallback, Trainer, TrainingArguments


def bf16_supported() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # bf16 autocast on a CPU without native bf16 instructions is slower than fp32.
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def training_arguments(output_dir: Path, *, epochs: float, learning_rate: float, batch_size: int,
                       weight_decay: float, warmup: float, bf16: bool, seed: int,
                       **extra) -> TrainingArguments:
    """Trainer settings shared by pretraining and finetuning: no checkpoints, no loggers, quiet."""
    return TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=epochs, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, weight_decay=weight_decay, warmup_steps=warmup,
        bf16=bf16 and bf16_supported(), use_cpu=not torch.cuda.is_available(), seed=seed, data_seed=seed,
        save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
        dataloader_num_workers=0, **extra)


def quiet_trainer(trainer_class: type[Trainer] = Trainer, **kwargs) -> Trainer:
    """A `Trainer` that prints nothing: many models train per process, and tqdm shows progress over them."""
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    trainer = trainer_class(**kwargs)
    trainer.remove_callback(PrinterCallback)
    return trainer
