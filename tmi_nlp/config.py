"""Recipe: one plain dataclass per stage, read from a YAML file of sections.

A recipe is a YAML mapping of sections (`run`, `data`, `base`, `tokenizer`, `model`, `pretrain`,
`finetune`, `query`, `attack`); each section maps onto one dataclass below. Every default is
the demo's value, so `recipes/demo.yaml` and `Recipe()` describe the same run (a test holds
them equal). Keys, types and ranges are checked here, before anything trains: an unknown key, a
value of the wrong type or out of range raises `RecipeError` naming the field, the value and
what was expected.

This module is the ground floor: it imports no registry and no model code. Names that refer
to registries (finetuning methods and their `options`, attacks, augmentations) and the
Trainer's own arguments (`trainer`) are checked against them by `tmi_nlp.resolve`, which the
CLI, the API and the prepare stage call.
"""

import copy
import dataclasses
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml


class RecipeError(ValueError):
    """A recipe field has an unknown name, a wrong type or a value out of range."""


def shown(value: Any, limit: int = 120) -> str:
    """`repr(value)`, cut to `limit` characters: an error names a value without printing all of a huge one."""
    short = reprlib.Repr()  # attributes, not keywords: Python 3.10 and 3.11 take none
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 3, 8, 8, limit, limit
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require(ok: bool, section: str, name: str, value: Any, expected: str) -> None:
    """Raise `RecipeError` naming `section.name`, the value and what was expected, unless `ok`."""
    if not ok:
        raise RecipeError(f"{section}.{name} = {shown(value)}: expected {expected}")


# A recipe is a page of settings: bigger than this, or a YAML alias (which can expand a few lines into gigabytes,
# "billion laughs"), is not one.
MAX_YAML_CHARS = 1_000_000


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and without duplicate keys (where the last would silently win)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"an alias (*{event.anchor}) at line {event.start_mark.line + 1}: aliases are not "
                                 f"accepted in a recipe (write the value out)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                raise yaml.YAMLError(f"the key {key!r} twice in one mapping (line {key_node.start_mark.line + 1}); "
                                     f"expected each key once")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _PlainDumper(yaml.SafeDumper):
    """Never writes an alias (load_yaml refuses them), even where two fields hold one object."""

    def ignore_aliases(self, data) -> bool:
        return True


def load_yaml(text: str) -> Any:
    """Parse recipe YAML safely and within bounds: no tags that build objects, no aliases, no duplicate keys, at
    most MAX_YAML_CHARS characters. Raises `yaml.YAMLError`."""
    if len(text) > MAX_YAML_CHARS:
        raise yaml.YAMLError(f"{len(text):,} characters; expected at most {MAX_YAML_CHARS:,}")
    return yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 (a SafeLoader subclass)


MAX_MODELS = 10_000  # beyond it the membership plan alone (models x pool booleans) outgrows a machine


@dataclass
class RunArguments:
    name: str = field(default="demo", metadata={"help": "Run name: the folder under output_dir."})
    output_dir: str = field(default="runs", metadata={"help": "Folder that holds run folders."})
    seed: int = field(default=0, metadata={"help": "Seed of the plan, every model and every query."})
    num_models: int = field(default=16, metadata={"help": "Models trained; each is victim once (LOO)."})
    num_points: int = field(default=200, metadata={"help": "Challenge points K drawn from the pool."})
    workers: int = field(default=0, metadata={"help": "Worker processes over models (0: pick for machine)."})
    threads_per_model: int = field(default=1, metadata={
        "help": "Torch threads each model trains and is queried with. Part of what a run computes (the thread "
                "count changes the order of floating-point sums), so it is fixed by the recipe, not by the machine: "
                "the same recipe gives the same scores on any number of cores. 0: as many as the machine gives each "
                "worker, what runs made before this field did (machine-dependent)."})
    pretrained_from: str = field(default="", metadata={
        "help": "Run folder whose plan, tokenizer and pretrained models this run reuses (its data, "
                "tokenizer, model and pretrain sections, seed and sizes must equal this recipe's): "
                "compare finetuning methods or attacks without pretraining again."})

    def __post_init__(self) -> None:
        s = "run"
        require(bool(self.name) and "/" not in self.name and self.name not in {".", ".."}
                 and "\\" not in self.name and self.name.isprintable(), s, "name", self.name,
                "a plain folder name (no '/', '..', control characters)")
        require(3 <= self.num_models <= MAX_MODELS, s, "num_models", self.num_models,
                 f"an integer in [3, {MAX_MODELS}] (leave-one-out needs IN and OUT shadows)")
        # Model i's seed is seed * 100003 + i, a 32-bit unsigned integer for numpy and torch.
        require(self.seed >= 0 and self.seed * 100_003 + self.num_models < 2**32, s, "seed", self.seed,
                f"an integer in [0, {(2**32 - self.num_models) // 100_003}] (each model's seed must fit in 32 bits)")
        require(self.num_points >= 1, s, "num_points", self.num_points, "an integer >= 1")
        require(self.workers >= 0, s, "workers", self.workers, "an integer >= 0")
        require(self.threads_per_model >= 0, s, "threads_per_model", self.threads_per_model,
                 "an integer >= 0")


@dataclass
class DataArguments:
    pool: str = field(default="synthetic", metadata={
        "help": "Pretraining pool: 'synthetic' (built-in generator), a Hub dataset id, or local "
                "csv/tsv/json/jsonl/parquet/txt/raw file(s), comma-separated (files of different types are "
                "joined on their common columns)."})
    pool_text_column: str = field(default="text", metadata={"help": "Text column of the pool dataset."})
    pool_split: str = field(default="train", metadata={"help": "Split of the pool dataset."})
    challenge: str = field(default="", metadata={
        "help": "Candidate texts to test (local file(s) or Hub id, column `challenge_text_column`): they "
                "become the challenge points (run.num_points must equal their number) and join the pool, "
                "so every shadow includes each with probability 1/2. Used to attack a given model."})
    challenge_text_column: str = field(default="text", metadata={"help": "Text column of `challenge`."})
    known_pool_of: str = field(default="", metadata={
        "help": "Partial knowledge: a run folder whose models are the victims. This run's pool keeps a share "
                "`known_fraction` of that run's pool (its challenge points first) and fills the rest with "
                "other texts of `pool`, none from the victims' pool; its challenge points are the victims' "
                "challenge points it keeps. Then `tmi-nlp attack THIS_RUN --victims THAT_RUN`."})
    known_fraction: float = field(default=1.0, metadata={
        "help": "With `known_pool_of`: the share of the victims' pool the adversary knows, in (0, 1]."})
    pool_size: int = field(default=400, metadata={"help": "Candidate pretraining texts (each model: ~half)."})
    pool_chunk_words: int = field(default=0, metadata={
        "help": "Split pool texts into chunks of this many words (0: keep texts whole)."})
    downstream: str = field(default="synthetic", metadata={
        "help": "Downstream task: 'synthetic', a Hub id or local file(s), as for `pool`."})
    downstream_text_column: str = field(default="text", metadata={"help": "Text column (downstream)."})
    downstream_label_column: str = field(default="label", metadata={"help": "Label column (downstream)."})
    downstream_split: str = field(default="train", metadata={"help": "Split finetuned on."})
    downstream_eval_split: str = field(default="", metadata={
        "help": "Split for victims' accuracy ('' : hold out part of the train split)."})
    num_train: int = field(default=2000, metadata={"help": "Downstream training examples."})
    num_eval: int = field(default=500, metadata={"help": "Downstream evaluation examples."})

    def __post_init__(self) -> None:
        s = "data"
        require(self.pool_size >= 2, s, "pool_size", self.pool_size, "an integer >= 2")
        require(self.pool_chunk_words >= 0, s, "pool_chunk_words", self.pool_chunk_words, "an integer >= 0")
        require(0 < self.known_fraction <= 1, s, "known_fraction", self.known_fraction, "a number in (0, 1]")
        require(not (self.known_pool_of and self.challenge), s, "known_pool_of", self.known_pool_of,
                 "'' when data.challenge is set (the challenge points come from one or the other)")
        require(self.num_train >= 2, s, "num_train", self.num_train, "an integer >= 2")
        require(self.num_eval >= 1, s, "num_eval", self.num_eval, "an integer >= 1")
        for name in ("pool", "downstream", "pool_text_column", "downstream_text_column",
                     "downstream_label_column"):
            require(bool(getattr(self, name)), s, name, getattr(self, name), "a non-empty string")


TRAINER_HELP = ("Any other field of transformers.TrainingArguments, passed to the Trainer as is (e.g. "
                "gradient_accumulation_steps, lr_scheduler_type, max_grad_norm, logging_strategy). The fields "
                "this section names itself, the seeds and output_dir are set by tmi-nlp.")

PRECISIONS = ("bf16", "fp32")
PRECISION_HELP = ("Training precision, applied as written on every machine (it changes the numbers a run produces): "
                  "'fp32' (the default: fast on every CPU) or 'bf16' (autocast; 1.46x the tokens/s of fp32 on a CPU "
                  "with native bf16, AVX-512 bf16 or AMX, but 0.09x on one without, AVX2 only: docs/performance.md).")


@dataclass
class MaskedLMArguments:
    """The settings of a masked-LM training, shared by the base encoder (`base`) and the shadows' (`pretrain`)."""

    section: ClassVar[str] = ""
    epochs: float = field(default=1.0, metadata={"help": "Masked-LM epochs."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (linear decay)."})
    batch_size: int = field(default=32, metadata={"help": "Texts per batch."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Fraction of tokens masked."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Warm-up fraction of steps."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    precision: str = field(default="fp32", metadata={"help": PRECISION_HELP})
    trainer: dict[str, Any] = field(default_factory=dict, metadata={"help": TRAINER_HELP})

    @property
    def may_skip_training(self) -> bool:
        """Whether `epochs` may be 0 (a base adopted from a checkpoint needs no training)."""
        return False

    def __post_init__(self) -> None:
        s = self.section
        require(0 < self.epochs < float("inf") or (self.epochs == 0 and self.may_skip_training), s, "epochs",
                self.epochs, "a finite number > 0" + (" (or 0)" if self.may_skip_training else ""))
        require(self.learning_rate > 0, s, "learning_rate", self.learning_rate, "a number > 0")
        require(self.batch_size >= 1, s, "batch_size", self.batch_size, "an integer >= 1")
        require(0 < self.mlm_probability < 1, s, "mlm_probability", self.mlm_probability, "a number in (0, 1)")
        require(0 <= self.warmup_ratio < 1, s, "warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        require(self.weight_decay >= 0, s, "weight_decay", self.weight_decay, "a number >= 0")
        require(self.precision in PRECISIONS, s, "precision", self.precision, f"one of {list(PRECISIONS)}")


@dataclass
class BaseArguments(MaskedLMArguments):
    section: ClassVar[str] = "base"
    epochs: float = field(default=1.0, metadata={
        "help": "Masked-LM epochs over the corpus. With base.checkpoint: epochs of masked-LM training on the corpus "
                "that adapt the checkpoint before any shadow (the head only, or every weight: "
                "base.freeze_encoder); 0: the checkpoint as it is, a missing head fresh and seeded."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate (linear decay)."})
    batch_size: int = field(default=64, metadata={"help": "Texts per batch."})
    checkpoint: str = field(default="", metadata={
        "help": "A public encoder to continue from instead of one trained here: a local checkpoint folder or a Hub "
                "id (safetensors, a built-in BERT-style architecture, with or without a masked-LM head). Its own "
                "tokenizer is used and its config replaces the model sizes (model.max_length still applies). A "
                "missing masked-LM head is built once, seeded by base.seed, and stored with the base, so every "
                "shadow and victim starts from the same weights."})
    freeze_encoder: bool = field(default=True, metadata={
        "help": "With base.checkpoint: train only the masked-LM head on the corpus (true), or every weight (false: "
                "a checkpoint whose encoder was tuned for another objective, as sentence embedders are, relearns "
                "masked LM on public text first). The result is public either way: the adversary has it too."})
    checkpoint_sha256: str = field(default="", metadata={
        "help": "The sha256 of base.checkpoint's model.safetensors; a checkpoint whose weights differ is refused "
                "before anything is written. '': not checked."})
    corpus: str = field(default="", metadata={
        "help": "Public text: local file(s) as for data.pool, or a Hub id. Without base.checkpoint, the base encoder "
                "is pretrained on it, once, before any shadow; with one, it trains the head (base.epochs). Shadows "
                "and victims continue pretraining from the base on their half of the private pool (the "
                "domain-adaptation threat), and its texts are their public background (pretrain.private_share). "
                "It must share no text with the pool (checked). '' with no checkpoint: no base, every model is "
                "pretrained from scratch."})
    text_column: str = field(default="text", metadata={"help": "Text column of the corpus."})
    split: str = field(default="train", metadata={"help": "Split of the corpus."})
    chunk_words: int = field(default=40, metadata={"help": "Split corpus texts into chunks of this many words."})
    max_texts: int = field(default=0, metadata={"help": "Use at most this many chunks (0: all of them)."})
    heldout_texts: int = field(default=500, metadata={
        "help": "Chunks kept out of training: the base's held-out masked-LM loss is measured on them."})
    seed: int = field(default=0, metadata={"help": "Seed of the base (not run.seed: runs of any seed share it)."})
    cache_dir: str = field(default="", metadata={
        "help": "Where bases are stored, one folder per content hash of (corpus texts, model sizes, "
                "vocabulary, these settings): a base is trained once and reused by every run that asks for it. "
                "'': <run.output_dir>/bases."})

    @property
    def may_skip_training(self) -> bool:
        return bool(self.checkpoint)

    def __post_init__(self) -> None:
        super().__post_init__()
        s = self.section
        require(self.checkpoint_sha256 == "" or re.fullmatch(r"[0-9a-f]{64}", self.checkpoint_sha256) is not None,
                s, "checkpoint_sha256", self.checkpoint_sha256, "'' or 64 lower-case hex digits")
        require(bool(self.checkpoint) or not self.checkpoint_sha256, s, "checkpoint_sha256", self.checkpoint_sha256,
                "'' unless base.checkpoint is set (it is the hash of that checkpoint's model.safetensors)")
        require(self.chunk_words >= 0, s, "chunk_words", self.chunk_words, "an integer >= 0")
        require(self.max_texts >= 0, s, "max_texts", self.max_texts, "an integer >= 0")
        require(self.heldout_texts >= 1, s, "heldout_texts", self.heldout_texts, "an integer >= 1")
        require(bool(self.text_column), s, "text_column", self.text_column, "a non-empty string")


@dataclass
class TokenizerArguments:
    path: str = field(default="", metadata={"help": "Load this tokenizer instead of training one."})
    vocab_size: int = field(default=4000, metadata={"help": "WordPiece vocabulary size when training."})

    def __post_init__(self) -> None:
        require(self.vocab_size >= 100, "tokenizer", "vocab_size", self.vocab_size, "an integer >= 100")


@dataclass
class ModelArguments:
    hidden_size: int = field(default=128, metadata={"help": "BERT hidden size."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Transformer layers."})
    num_attention_heads: int = field(default=2, metadata={"help": "Attention heads."})
    intermediate_size: int = field(default=512, metadata={"help": "Feed-forward size."})
    max_length: int = field(default=64, metadata={"help": "Tokens per text (longer texts are truncated)."})

    def __post_init__(self) -> None:
        s = "model"
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            require(getattr(self, name) >= 1, s, name, getattr(self, name), "an integer >= 1")
        require(self.hidden_size % self.num_attention_heads == 0, s, "hidden_size", self.hidden_size,
                 f"a multiple of num_attention_heads ({self.num_attention_heads})")
        require(8 <= self.max_length <= 512, s, "max_length", self.max_length, "an integer in [8, 512]")



@dataclass
class PretrainArguments(MaskedLMArguments):
    section: ClassVar[str] = "pretrain"
    epochs: float = field(default=40.0, metadata={
        "help": "The dose: passes over the model's half of the private pool (each private text is seen this many "
                "times)."})
    private_share: float = field(default=1.0, metadata={
        "help": "Share of the texts a model pretrains on that come from its private half pool; the rest are "
                "public background texts of base.corpus, fresh ones on each pass (needs a base). 1.0: the private "
                "texts only, for `epochs` Trainer epochs."})

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.private_share <= 1, self.section, "private_share", self.private_share, "a number in (0, 1]")


@dataclass
class FinetuneArguments:
    method: str = field(default="linear", metadata={
        "help": "Finetuning method: a name registered in tmi_nlp.models.finetune (full, linear, lora, dp)."})
    # None: the method's own default (its module's `defaults`), filled in when the recipe is resolved: a linear
    # probe wants a learning rate a hundred times that of full finetuning.
    epochs: float | None = field(default=None, metadata={"help": "Downstream epochs (default: the method's)."})
    learning_rate: float | None = field(default=None, metadata={"help": "Learning rate (default: the method's)."})
    batch_size: int | None = field(default=None, metadata={"help": "Examples per batch (default: the method's)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    precision: str = field(default="fp32", metadata={"help": PRECISION_HELP})
    group_by_length: bool = field(default=True, metadata={
        "help": "Batches of texts of similar length (less padding: 1.3x the tokens/s on AG News, "
                "docs/performance.md); false: uniformly shuffled batches. DP-SGD samples its own (Poisson) batches."})
    options: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={
        "help": "Each method's own options, by method name; the method's module defines them (with their "
                "defaults and help): linear {pooling}, lora {r, alpha, dropout, target_modules, "
                "modules_to_save}, dp {parameters, epsilon, delta, max_grad_norm}. A resolved recipe "
                "(config.yaml) lists every option of the methods it uses."})
    trainer: dict[str, Any] = field(default_factory=dict, metadata={"help": TRAINER_HELP})

    def __post_init__(self) -> None:
        s = "finetune"
        require(bool(self.method), s, "method", self.method, "a method name")
        require(self.epochs is None or 0 < self.epochs < float("inf"), s, "epochs", self.epochs,
                "a finite number > 0, or null for the method's default")
        require(self.learning_rate is None or self.learning_rate > 0, s, "learning_rate", self.learning_rate,
                "a number > 0, or null for the method's default")
        require(self.batch_size is None or self.batch_size >= 1, s, "batch_size", self.batch_size,
                "an integer >= 1, or null for the method's default")
        require(self.weight_decay >= 0, s, "weight_decay", self.weight_decay, "a number >= 0")
        require(self.precision in PRECISIONS, s, "precision", self.precision, f"one of {list(PRECISIONS)}")
        for name, values in self.options.items():
            require(isinstance(values, dict), s, f"options.{name}", values, "a mapping of that method's options")


@dataclass
class QueryArguments:
    num_queries: int = field(default=8, metadata={
        "help": "Queries per challenge point (A in the tensor [points, A, classes]): augmented copies, the "
                "first one unaugmented with include_original."})
    augmentation: str = field(default="delete", metadata={
        "help": "Token-level augmentation: delete, mask, swap, substitute, or none."})
    rate: float = field(default=0.05, metadata={"help": "Per-token probability of the augmentation."})
    include_original: bool = field(default=True, metadata={
        "help": "Query 0 is the unaugmented text (the other A-1 are augmented)."})
    batch_size: int = field(default=256, metadata={"help": "Texts per query forward pass."})

    def __post_init__(self) -> None:
        s = "query"
        require(self.num_queries >= 1, s, "num_queries", self.num_queries, "an integer >= 1")
        require(0 <= self.rate <= 1, s, "rate", self.rate, "a number in [0, 1]")
        require(self.batch_size >= 1, s, "batch_size", self.batch_size, "an integer >= 1")


DEFAULT_METACLASSIFIERS = ("mlp", "shared_centred", "shared_confidence")  # by measurement: docs/experiments.md
DEFAULT_BASELINES = ("lira_online", "lira_online_global_var", "lira_offline", "lira_offline_global_var", "rmia",
                     "rmia_offline", "label_only", "calibrated_confidence", "confidence", "entropy", "stability",
                     "mlm_loss_lira")
BACKENDS = ("auto", "kernel", "torch")


@dataclass
class AttackArguments:
    metaclassifiers: list[str] = field(default_factory=lambda: list(DEFAULT_METACLASSIFIERS), metadata={
        "help": "Attacks on the query tensor: per-point mlp (the project's variant), mlp_paper (the official "
                "code's recipe exactly), logistic, knn, svm, sklearn_mlp, "
                "shared_centred (one classifier across points on per-point centred features), or on calibrated "
                "class logits that do not saturate on confident victims: mlp_calibrated, shared_calibrated, "
                "shared_combined, shared_confidence (with each query's confidence relative to the model's level), "
                "shared_direction (besides, the class logits along each model's own direction of membership), "
                "shared_neighbourhood (besides, the confidence on the exact text less on its neighbours, the "
                "augmented queries; needs query.include_original)."})
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES), metadata={
        "help": "Attacks TMI is compared with, on the same models: lira_online, lira_offline (and "
                "_global_var), rmia, rmia_offline, label_only, calibrated_confidence, confidence, entropy, "
                "stability, neighbourhood (the exact text against its augmented neighbours; needs "
                "query.include_original), and the white-box reference mlm_loss_lira."})
    hidden_size: int = field(default=64, metadata={"help": "Metaclassifier MLP hidden units."})
    epochs: int = field(default=20, metadata={"help": "Metaclassifier epochs."})
    learning_rate: float = field(default=5e-3, metadata={"help": "Metaclassifier Adam learning rate."})
    weight_decay: float = field(default=5e-4, metadata={"help": "Metaclassifier Adam weight decay."})
    dropout: float = field(default=0.5, metadata={"help": "Metaclassifier dropout."})
    batch_size: int = field(default=64, metadata={"help": "Metaclassifier batch size."})
    class_balanced: bool = field(default=True, metadata={"help": "Weight IN and OUT equally."})
    shuffle_labels: bool = field(default=False, metadata={
        "help": "Control: shuffle the shadows' membership labels (AUC should be ~0.5)."})
    bootstrap: int = field(default=200, metadata={"help": "Bootstrap resamples for confidence intervals."})
    dataset_statistic: str = field(default="shared_confidence", metadata={
        "help": "Dataset-level inference (was this set of texts used?): the per-text statistic the set test "
                "sums, an attack on the queries or 'confidence' (docs/RESULTS.md)."})
    dataset_sizes: list[int] = field(default_factory=lambda: [10, 50], metadata={
        "help": "Set sizes at which the report measures the set test's power on the run's victims; [] skips it."})
    dataset_sets: int = field(default=5, metadata={"help": "Sets per victim and size in that measurement."})
    dataset_reference: int = field(default=0, metadata={
        "help": "Known non-member texts per reference set in that measurement of the two-sample test (a set "
                "against texts known unused); 0: every non-member challenge text of the victim outside the set."})
    backend: str = field(default="auto", metadata={
        "help": "What trains the MLP metaclassifiers: 'kernel' (the fused C kernel, built on first use with the "
                "machine's C compiler), 'torch' (batched torch code, same algorithm, another dropout stream), "
                "or 'auto' (the kernel where it builds). A run's attacks all use one backend (recorded in "
                "each attack's metrics.json)."})

    def __post_init__(self) -> None:
        s = "attack"
        require(len(self.metaclassifiers) >= 1, s, "metaclassifiers", self.metaclassifiers,
                "a non-empty list")
        require(self.hidden_size >= 1, s, "hidden_size", self.hidden_size, "an integer >= 1")
        require(self.epochs >= 1, s, "epochs", self.epochs, "an integer >= 1")
        require(self.learning_rate > 0, s, "learning_rate", self.learning_rate, "a number > 0")
        require(self.weight_decay >= 0, s, "weight_decay", self.weight_decay, "a number >= 0")
        require(0 <= self.dropout < 1, s, "dropout", self.dropout, "a number in [0, 1)")
        require(self.batch_size >= 1, s, "batch_size", self.batch_size, "an integer >= 1")
        require(self.bootstrap >= 0, s, "bootstrap", self.bootstrap, "an integer >= 0")
        require(self.backend in BACKENDS, s, "backend", self.backend, f"one of {list(BACKENDS)}")
        require(all(isinstance(n, int) and n >= 2 for n in self.dataset_sizes), s, "dataset_sizes",
                self.dataset_sizes, "a list of integers >= 2")
        require(self.dataset_sets >= 1, s, "dataset_sets", self.dataset_sets, "an integer >= 1")
        require(isinstance(self.dataset_reference, int) and self.dataset_reference >= 0, s, "dataset_reference",
                self.dataset_reference, "an integer >= 0")

    @property
    def names(self) -> list[str]:
        """Every attack to run: the metaclassifiers, then the baselines."""
        return [*self.metaclassifiers, *self.baselines]


SECTIONS: dict[str, type] = {
    "run": RunArguments,
    "data": DataArguments,
    "base": BaseArguments,
    "tokenizer": TokenizerArguments,
    "model": ModelArguments,
    "pretrain": PretrainArguments,
    "finetune": FinetuneArguments,
    "query": QueryArguments,
    "attack": AttackArguments,
}


@dataclass
class Recipe:
    run: RunArguments = field(default_factory=RunArguments)
    data: DataArguments = field(default_factory=DataArguments)
    base: BaseArguments = field(default_factory=BaseArguments)
    tokenizer: TokenizerArguments = field(default_factory=TokenizerArguments)
    model: ModelArguments = field(default_factory=ModelArguments)
    pretrain: PretrainArguments = field(default_factory=PretrainArguments)
    finetune: FinetuneArguments = field(default_factory=FinetuneArguments)
    query: QueryArguments = field(default_factory=QueryArguments)
    attack: AttackArguments = field(default_factory=AttackArguments)

    def __post_init__(self) -> None:
        require(self.run.num_points <= self.data.pool_size, "run", "num_points", self.run.num_points,
                 f"at most data.pool_size ({self.data.pool_size})")
        require(self.pretrain.private_share == 1 or bool(self.base.corpus), "pretrain", "private_share",
                self.pretrain.private_share, "1.0 unless base.corpus is set (the background texts come from it)")
        require(not (self.has_base and self.tokenizer.path), "tokenizer", "path", self.tokenizer.path,
                "'' when base.corpus or base.checkpoint is set (the run uses the base's tokenizer)")

    @property
    def has_base(self) -> bool:
        """Whether every model continues from a shared base encoder (trained on base.corpus, or a checkpoint)."""
        return bool(self.base.corpus or self.base.checkpoint)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_PlainDumper, sort_keys=False)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.output_dir).expanduser() / self.run.name


# Keys that moved, old place -> new place: a recipe that uses the old key gets an error naming the new
# one; a config.yaml written by an older version is moved over when it is read (`migrate`).
MOVED_KEYS = {
    "run.threads_per_worker": "run.threads_per_model",
    "query.num_augmentations": "query.num_queries",
    "finetune.pooling": "finetune.options.linear.pooling",
    "finetune.lora_r": "finetune.options.lora.r",
    "finetune.lora_alpha": "finetune.options.lora.alpha",
    "finetune.lora_dropout": "finetune.options.lora.dropout",
    "finetune.lora_target_modules": "finetune.options.lora.target_modules",
    "finetune.lora_modules_to_save": "finetune.options.lora.modules_to_save",
    "finetune.dp_parameters": "finetune.options.dp.parameters",
    "finetune.dp_epsilon": "finetune.options.dp.epsilon",
    "finetune.dp_delta": "finetune.options.dp.delta",
    "finetune.dp_max_grad_norm": "finetune.options.dp.max_grad_norm",
    "model.init_from": "base.checkpoint",
    "pretrain.bf16": "pretrain.precision",
    "finetune.bf16": "finetune.precision",
}


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(annotation)
        return isinstance(value, dict) and all(_type_ok(k, key) and _type_ok(v, item) for k, v in value.items())
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return isinstance(value, annotation)


def _is_number_text(value: Any) -> bool:
    """Text YAML did not read as a number but float() does ('1e-4', 'nan', 'inf'): the range checks judge it."""
    try:
        float(value)
        return isinstance(value, str)
    except ValueError:
        return False


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is not None:
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def parse_dataclass(cls: type, values: Any, where: str) -> Any:
    """An instance of dataclass `cls` from a mapping, checking every key and type; errors name `where.key`.

    Ints are accepted for floats (YAML writes 3 for 3.0) and stored as floats.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RecipeError(f"{where} = {shown(values)}: expected a mapping of {cls.__name__} fields")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known:
            moved = MOVED_KEYS.get(f"{where}.{key}")
            if moved:
                raise RecipeError(f"{where}.{key}: this key moved to {moved}; expected it there")
            raise RecipeError(f"{where}.{key}: unknown key; expected one of {sorted(known)}")
        if not _type_ok(value, hints[key]) and not (_takes_float(hints[key]) and _is_number_text(value)):
            raise RecipeError(f"{where}.{key} = {shown(value)}: expected {_type_name(hints[key])}")
    values = {k: _as_float(v) if _takes_float(hints[k]) else v for k, v in values.items()}
    for key, value in values.items():
        if isinstance(value, float) and value != value:
            raise RecipeError(f"{where}.{key} = nan: expected a number")
    return cls(**values)


def _takes_float(annotation: Any) -> bool:
    return annotation is float or float in typing.get_args(annotation)


def _as_float(value: Any) -> Any:
    """Ints as floats; strings YAML did not read as numbers ('1e-4' is a string to YAML 1.1) parsed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return float(value)
    return value


def recipe_from_dict(raw: Any) -> Recipe:
    """Build a `Recipe` from a mapping of sections, checking every key and type."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe = {shown(raw)}: expected a mapping of sections {sorted(SECTIONS)}")
    for section in raw:
        if section not in SECTIONS:
            raise RecipeError(f"{section}: unknown section; expected one of {sorted(SECTIONS)}")
    return Recipe(**{name: parse_dataclass(SECTIONS[name], raw.get(name), name) for name in SECTIONS})


def migrate(raw: dict) -> dict:
    """A stored config (config.yaml of an older version) with its moved keys in their new places.

    Old configs listed every method's options whatever the method; only those of the methods the
    run used (the method, and the parameters DP trained) are kept.
    """
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    if isinstance(raw.get("finetune"), dict):
        raw["finetune"].setdefault("group_by_length", False)  # batches were shuffled uniformly before the field
    finetune = raw.get("finetune", {})
    used = {finetune.get("method"), finetune.get("dp_parameters") if finetune.get("method") == "dp" else None}
    for old, new in MOVED_KEYS.items():
        section, key = old.split(".")
        if key not in raw.get(section, {}):
            continue
        value = raw[section].pop(key)
        path = new.split(".")
        if path[1] == "options" and path[2] not in used:
            continue
        target = raw.setdefault(path[0], {})
        for part in path[1:-1]:
            target = target.setdefault(part, {})
        if path[-1] == "precision" and isinstance(value, bool):
            # bf16 was applied where the CPU had native bf16: the machines runs were made on had it.
            value = "bf16" if value else "fp32"
        target[path[-1]] = value
    return raw


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe (safely) and apply `section.key=value` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe = {str(path)!r}: expected an existing YAML file")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise RecipeError(f"recipe {str(path)!r}: not UTF-8 text ({err.reason} at byte {err.start}); expected a "
                          f"UTF-8 YAML file") from err
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {str(path)!r}: not valid YAML ({err})") from err
    return recipe_from_dict(apply_overrides(raw, overrides or []))


def apply_overrides(raw: Any, overrides: list[str]) -> Any:
    """Set `section.key=value` pairs on a raw recipe mapping (values parsed as YAML scalars).

    Keys may go deeper into mappings: `finetune.options.lora.r=4`, `pretrain.trainer.lr_scheduler_type=cosine`.
    """
    if not isinstance(raw, dict):
        return raw
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        path = key.split(".")
        if not sep or len(path) < 2 or not all(path):
            raise RecipeError(f"override {shown(item)}: expected section.key=value")
        target = raw
        for depth, part in enumerate(path[:-1]):
            target.setdefault(part, {})
            if not isinstance(target[part], dict):
                raise RecipeError(f"{'.'.join(path[:depth + 1])} = {shown(target[part])}: expected a mapping")
            target = target[part]
        try:
            target[path[-1]] = load_yaml(value)
        except yaml.YAMLError as err:
            raise RecipeError(f"override {shown(item)}: value is not valid YAML ({err})") from err
    return raw
