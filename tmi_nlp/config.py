"""Recipe: one dataclass per stage, parsed with `HfArgumentParser` from a YAML file of sections.

A recipe is a YAML mapping of sections (`run`, `data`, `tokenizer`, `model`, `pretrain`,
`finetune`, `query`, `attack`); each section maps onto one dataclass below. Every default is
the demo's value, so `recipes/demo.yaml` and `Recipe()` describe the same run (a test holds
them equal). Keys and types are checked before anything trains: an unknown key, a value of
the wrong type or out of range raises `RecipeError` naming the field, the value and what was
expected.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser


class RecipeError(ValueError):
    """A recipe field has an unknown name, a wrong type or a value out of range."""


def _require(ok: bool, section: str, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise RecipeError(f"{section}.{name} = {value!r}: expected {expected}")


@dataclass
class RunArguments:
    name: str = field(default="demo", metadata={"help": "Run name: the folder under output_dir."})
    output_dir: str = field(default="runs", metadata={"help": "Folder that holds run folders."})
    seed: int = field(default=0, metadata={"help": "Seed of the plan, every model and every query."})
    num_models: int = field(default=16, metadata={"help": "Models trained; each is victim once (LOO)."})
    num_points: int = field(default=200, metadata={"help": "Challenge points K drawn from the pool."})
    workers: int = field(default=0, metadata={"help": "Worker processes over models (0: pick for machine)."})
    threads_per_worker: int = field(default=0, metadata={"help": "Torch threads per worker (0: pick)."})
    pretrained_from: str = field(default="", metadata={
        "help": "Run folder whose plan, tokenizer and pretrained models this run reuses (its data, "
                "tokenizer, model and pretrain sections, seed and sizes must equal this recipe's): "
                "compare finetuning methods or attacks without pretraining again."})

    def __post_init__(self) -> None:
        s = "run"
        _require(bool(self.name) and "/" not in self.name and self.name not in {".", ".."}
                 and "\\" not in self.name, s, "name", self.name, "a plain folder name (no '/', '..')")
        _require(self.num_models >= 3, s, "num_models", self.num_models,
                 "an integer >= 3 (leave-one-out needs IN and OUT shadows)")
        _require(self.num_points >= 1, s, "num_points", self.num_points, "an integer >= 1")
        _require(self.workers >= 0, s, "workers", self.workers, "an integer >= 0")
        _require(self.threads_per_worker >= 0, s, "threads_per_worker", self.threads_per_worker,
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
        _require(self.pool_size >= 2, s, "pool_size", self.pool_size, "an integer >= 2")
        _require(self.pool_chunk_words >= 0, s, "pool_chunk_words", self.pool_chunk_words, "an integer >= 0")
        _require(0 < self.known_fraction <= 1, s, "known_fraction", self.known_fraction, "a number in (0, 1]")
        _require(not (self.known_pool_of and self.challenge), s, "known_pool_of", self.known_pool_of,
                 "'' when data.challenge is set (the challenge points come from one or the other)")
        _require(self.num_train >= 2, s, "num_train", self.num_train, "an integer >= 2")
        _require(self.num_eval >= 1, s, "num_eval", self.num_eval, "an integer >= 1")
        for name in ("pool", "downstream", "pool_text_column", "downstream_text_column",
                     "downstream_label_column"):
            _require(bool(getattr(self, name)), s, name, getattr(self, name), "a non-empty string")


@dataclass
class TokenizerArguments:
    path: str = field(default="", metadata={"help": "Load this tokenizer instead of training one."})
    vocab_size: int = field(default=4000, metadata={"help": "WordPiece vocabulary size when training."})

    def __post_init__(self) -> None:
        _require(self.vocab_size >= 100, "tokenizer", "vocab_size", self.vocab_size, "an integer >= 100")


@dataclass
class ModelArguments:
    hidden_size: int = field(default=128, metadata={"help": "BERT hidden size."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Transformer layers."})
    num_attention_heads: int = field(default=2, metadata={"help": "Attention heads."})
    intermediate_size: int = field(default=512, metadata={"help": "Feed-forward size."})
    max_length: int = field(default=64, metadata={"help": "Tokens per text (longer texts are truncated)."})
    init_from: str = field(default="", metadata={
        "help": "Continued pretraining: a masked-LM checkpoint (local folder or Hub id, safetensors) every "
                "shadow starts from, then trains on its half pool (the domain-adaptation threat). Its own "
                "tokenizer is used, and its config replaces the sizes above (max_length still applies)."})

    def __post_init__(self) -> None:
        s = "model"
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            _require(getattr(self, name) >= 1, s, name, getattr(self, name), "an integer >= 1")
        _require(self.hidden_size % self.num_attention_heads == 0, s, "hidden_size", self.hidden_size,
                 f"a multiple of num_attention_heads ({self.num_attention_heads})")
        _require(8 <= self.max_length <= 512, s, "max_length", self.max_length, "an integer in [8, 512]")


@dataclass
class PretrainArguments:
    epochs: float = field(default=40.0, metadata={"help": "Masked-LM epochs over the model's half pool."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (linear decay)."})
    batch_size: int = field(default=32, metadata={"help": "Texts per batch."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Fraction of tokens masked."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Warm-up fraction of steps."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast where the hardware supports it."})

    def __post_init__(self) -> None:
        s = "pretrain"
        _require(self.epochs > 0, s, "epochs", self.epochs, "a number > 0")
        _require(self.learning_rate > 0, s, "learning_rate", self.learning_rate, "a number > 0")
        _require(self.batch_size >= 1, s, "batch_size", self.batch_size, "an integer >= 1")
        _require(0 < self.mlm_probability < 1, s, "mlm_probability", self.mlm_probability,
                 "a number in (0, 1)")
        _require(0 <= self.warmup_ratio < 1, s, "warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        _require(self.weight_decay >= 0, s, "weight_decay", self.weight_decay, "a number >= 0")


@dataclass
class FinetuneArguments:
    method: str = field(default="linear", metadata={"help": "Finetuning method (registry name)."})
    epochs: float = field(default=3.0, metadata={"help": "Downstream epochs."})
    learning_rate: float = field(default=5e-3, metadata={"help": "Learning rate."})
    batch_size: int = field(default=32, metadata={"help": "Examples per batch."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast where supported."})
    pooling: str = field(default="cls", metadata={
        "help": "linear: what the head reads, the [CLS] state ('cls') or the mean token state ('mean')."})
    lora_r: int = field(default=8, metadata={"help": "lora: adapter rank."})
    lora_alpha: float = field(default=16.0, metadata={"help": "lora: scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "lora: dropout on the adapter input."})
    lora_target_modules: list[str] = field(default_factory=lambda: ["query", "value"], metadata={
        "help": "lora: names of the Linear layers that get adapters."})
    lora_modules_to_save: list[str] = field(default_factory=lambda: ["classifier", "pooler"], metadata={
        "help": "lora: modules trained in full next to the adapters. Keep 'pooler': masked-LM pretraining "
                "never trains it, so a frozen pooler feeds the head random features."})
    dp_parameters: str = field(default="linear", metadata={
        "help": "dp: which parameters train under DP-SGD, as in the method of that name: full, linear or lora."})
    dp_epsilon: float = field(default=8.0, metadata={"help": "dp: target epsilon, spent by the last step."})
    dp_delta: float = field(default=1e-5, metadata={"help": "dp: target delta."})
    dp_max_grad_norm: float = field(default=1.0, metadata={"help": "dp: per-example gradient clipping norm."})

    def __post_init__(self) -> None:
        from tmi_nlp.models.finetune import FINETUNE_METHODS

        s = "finetune"
        _require(self.method in FINETUNE_METHODS, s, "method", self.method,
                 f"one of {sorted(FINETUNE_METHODS)}")
        _require(self.epochs > 0, s, "epochs", self.epochs, "a number > 0")
        _require(self.learning_rate > 0, s, "learning_rate", self.learning_rate, "a number > 0")
        _require(self.batch_size >= 1, s, "batch_size", self.batch_size, "an integer >= 1")
        _require(self.weight_decay >= 0, s, "weight_decay", self.weight_decay, "a number >= 0")
        _require(self.pooling in ("cls", "mean"), s, "pooling", self.pooling, "'cls' or 'mean'")
        _require(self.lora_r >= 1, s, "lora_r", self.lora_r, "an integer >= 1")
        _require(self.lora_alpha > 0, s, "lora_alpha", self.lora_alpha, "a number > 0")
        _require(0 <= self.lora_dropout < 1, s, "lora_dropout", self.lora_dropout, "a number in [0, 1)")
        _require(len(self.lora_target_modules) >= 1, s, "lora_target_modules", self.lora_target_modules,
                 "a non-empty list of module names")
        _require(self.dp_parameters in ("full", "linear", "lora"), s, "dp_parameters", self.dp_parameters,
                 "one of ['full', 'linear', 'lora']")
        _require(self.dp_epsilon > 0, s, "dp_epsilon", self.dp_epsilon, "a number > 0")
        _require(0 < self.dp_delta < 1, s, "dp_delta", self.dp_delta, "a number in (0, 1)")
        _require(self.dp_max_grad_norm > 0, s, "dp_max_grad_norm", self.dp_max_grad_norm, "a number > 0")
        if self.method == "dp":
            # Poisson sampling: a batch is empty with probability exp(-batch_size) per step.
            _require(self.batch_size >= 16, s, "batch_size", self.batch_size,
                     "an integer >= 16 with method 'dp' (Poisson batches of a smaller mean can be empty)")


@dataclass
class QueryArguments:
    num_augmentations: int = field(default=8, metadata={"help": "Augmented queries A per challenge point."})
    augmentation: str = field(default="delete", metadata={
        "help": "Token-level augmentation: delete, mask, swap, substitute, or none."})
    rate: float = field(default=0.05, metadata={"help": "Per-token probability of the augmentation."})
    include_original: bool = field(default=True, metadata={
        "help": "Query 0 is the unaugmented text (the other A-1 are augmented)."})
    batch_size: int = field(default=256, metadata={"help": "Texts per query forward pass."})

    def __post_init__(self) -> None:
        from tmi_nlp.data.augment import AUGMENTATIONS

        s = "query"
        _require(self.num_augmentations >= 1, s, "num_augmentations", self.num_augmentations,
                 "an integer >= 1")
        _require(self.augmentation in AUGMENTATIONS, s, "augmentation", self.augmentation,
                 f"one of {sorted(AUGMENTATIONS)}")
        _require(0 <= self.rate <= 1, s, "rate", self.rate, "a number in [0, 1]")
        _require(self.batch_size >= 1, s, "batch_size", self.batch_size, "an integer >= 1")


DEFAULT_BASELINES = ("lira_online", "lira_online_global_var", "lira_offline", "lira_offline_global_var", "rmia",
                     "rmia_offline", "label_only", "calibrated_confidence", "confidence", "entropy", "stability",
                     "mlm_loss_lira")


@dataclass
class AttackArguments:
    metaclassifiers: list[str] = field(default_factory=lambda: ["mlp", "shared_centred"], metadata={
        "help": "Attacks on the query tensor: per-point mlp, logistic, knn, svm, sklearn_mlp, "
                "or shared_centred (one classifier across points on per-point centred features)."})
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES), metadata={
        "help": "Attacks TMI is compared with, on the same models: lira_online, lira_offline (and "
                "_global_var), rmia, rmia_offline, label_only, calibrated_confidence, confidence, entropy, "
                "stability, and the white-box reference mlm_loss_lira."})
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

    def __post_init__(self) -> None:
        from tmi_nlp.attacks import ATTACKS

        s = "attack"
        _require(len(self.metaclassifiers) >= 1, s, "metaclassifiers", self.metaclassifiers,
                 "a non-empty list")
        for field_name in ("metaclassifiers", "baselines"):
            for name in getattr(self, field_name):
                _require(name in ATTACKS, s, field_name, name, f"names from {sorted(ATTACKS)}")
        _require(self.hidden_size >= 1, s, "hidden_size", self.hidden_size, "an integer >= 1")
        _require(self.epochs >= 1, s, "epochs", self.epochs, "an integer >= 1")
        _require(self.learning_rate > 0, s, "learning_rate", self.learning_rate, "a number > 0")
        _require(self.weight_decay >= 0, s, "weight_decay", self.weight_decay, "a number >= 0")
        _require(0 <= self.dropout < 1, s, "dropout", self.dropout, "a number in [0, 1)")
        _require(self.batch_size >= 1, s, "batch_size", self.batch_size, "an integer >= 1")
        _require(self.bootstrap >= 0, s, "bootstrap", self.bootstrap, "an integer >= 0")


SECTIONS: dict[str, type] = {
    "run": RunArguments,
    "data": DataArguments,
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
    tokenizer: TokenizerArguments = field(default_factory=TokenizerArguments)
    model: ModelArguments = field(default_factory=ModelArguments)
    pretrain: PretrainArguments = field(default_factory=PretrainArguments)
    finetune: FinetuneArguments = field(default_factory=FinetuneArguments)
    query: QueryArguments = field(default_factory=QueryArguments)
    attack: AttackArguments = field(default_factory=AttackArguments)

    def __post_init__(self) -> None:
        _require(self.run.num_points <= self.data.pool_size, "run", "num_points", self.run.num_points,
                 f"at most data.pool_size ({self.data.pool_size})")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.output_dir) / self.run.name


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return isinstance(value, annotation)


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is not None:
        return str(annotation).replace("typing.", "")
    return annotation.__name__


def _parse_section(section: str, values: Any) -> Any:
    cls = SECTIONS[section]
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RecipeError(f"{section} = {values!r}: expected a mapping of {cls.__name__} fields")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise RecipeError(f"{section}.{key}: unknown key; expected one of {sorted(known)}")
        if not _type_ok(value, hints[key]):
            raise RecipeError(f"{section}.{key} = {value!r}: expected {_type_name(hints[key])}")
    values = {k: float(v) if hints[k] is float else v for k, v in values.items()}
    try:
        (parsed,) = HfArgumentParser(cls).parse_dict(values, allow_extra_keys=False)
    except RecipeError:
        raise
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{section}: {err}") from err
    return parsed


def recipe_from_dict(raw: Any) -> Recipe:
    """Build a `Recipe` from a mapping of sections, checking every key and type."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe = {raw!r}: expected a mapping of sections {sorted(SECTIONS)}")
    for section in raw:
        if section not in SECTIONS:
            raise RecipeError(f"{section}: unknown section; expected one of {sorted(SECTIONS)}")
    return Recipe(**{name: _parse_section(name, raw.get(name)) for name in SECTIONS})


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe (safely) and apply `section.key=value` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe = {str(path)!r}: expected an existing YAML file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {str(path)!r}: not valid YAML ({err})") from err
    return recipe_from_dict(apply_overrides(raw, overrides or []))


def apply_overrides(raw: Any, overrides: list[str]) -> Any:
    """Set `section.key=value` pairs on a raw recipe mapping (values parsed as YAML scalars)."""
    if not isinstance(raw, dict):
        return raw
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise RecipeError(f"override {item!r}: expected section.key=value")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise RecipeError(f"{section} = {raw[section]!r}: expected a mapping")
        try:
            raw[section][name] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise RecipeError(f"override {item!r}: value is not valid YAML ({err})") from err
    return raw
