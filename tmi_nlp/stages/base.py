"""base: the public base encoder every shadow and victim continues from, built once and shared.

The realistic threat is domain adaptation: an organisation takes a public encoder, continues
masked-LM pretraining on its private texts, finetunes and releases a classifier; the adversary
has the same public encoder. `base.checkpoint` names that encoder (a local folder or a Hub id,
its weights checked against `base.checkpoint_sha256`); without one, `base.corpus` pretrains a
base here on public text. Many public encoders ship without their masked-LM head (a plain
BertModel): the head is built once, seeded, optionally trained on the corpus with the encoder
frozen, and stored with the base, so every model starts from identical weights.

A base is stored content-addressed, in `<cache>/<key>/` where the key hashes the checkpoint's
weights or the model sizes and vocabulary size, the corpus texts and the base's training
settings: a second run that asks for the same base reuses it, a changed corpus or setting gives
a new one, and two runs asking at once build it once (a file lock). The folder holds the masked
LM, its tokenizer and `base.json` (the held-out masked-LM loss, tokens seen, tokens/s, time);
it appears whole or not at all.
"""

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from transformers import set_seed

from tmi_nlp.atomic import atomic_dir, atomic_write_json, file_lock, file_sha256
from tmi_nlp.config import Recipe, RecipeError
from tmi_nlp.data.loading import load_base_corpus
from tmi_nlp.data.plan import text_hash
from tmi_nlp.models.pretrain import (
    BertForMaskedLMSparse,
    bert_config,
    masked_lm_losses,
    save_masked_lm,
    train_masked_lm,
)
from tmi_nlp.models.tokenizer import load_tokenizer, train_wordpiece
from tmi_nlp.models.training import check_checkpoint, quiet_transformers

BASE_INFO = "base.json"
# How the weights are initialised; in the key, so that a base made before the init was seeded is not reused.
INIT = "seeded by base.seed"
# Base settings that change where a base is stored, not what it is.
NOT_IN_KEY = ("corpus", "cache_dir", "checkpoint", "checkpoint_sha256")
# What a checkpoint's download takes from a Hub repository: config, weights and tokenizer, nothing that runs code.
CHECKPOINT_FILES = ["*.json", "*.safetensors", "vocab.txt", "merges.txt", "*.model"]


def split_corpus(texts: list[str], heldout: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) texts: a seeded draw of `heldout` texts is kept out of training."""
    out = set(np.random.default_rng([seed, 19]).choice(len(texts), heldout, replace=False).tolist())
    return [t for i, t in enumerate(texts) if i not in out], [t for i, t in enumerate(texts) if i in out]


def weights_sha256(folder: Path) -> str:
    """sha256 of a checkpoint's model.safetensors; of its shards' hashes where it is sharded."""
    single = folder / "model.safetensors"
    if single.is_file():
        return file_sha256(single)
    shards = sorted(folder.glob("*.safetensors"))
    return hashlib.sha256("".join(file_sha256(p) for p in shards).encode()).hexdigest()


def fetch_checkpoint(recipe: Recipe) -> tuple[Path, str]:
    """The local folder of `base.checkpoint` (a Hub id is downloaded to the Hub cache first) and its weights' sha256,
    checked: safetensors, no remote code, and the sha256 equal to `base.checkpoint_sha256` where that is set.
    Writes nothing of the run's."""
    spec, expected = recipe.base.checkpoint, recipe.base.checkpoint_sha256
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        check_checkpoint(spec, "base.checkpoint")  # before any weights are downloaded
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(spec, allow_patterns=CHECKPOINT_FILES))
        except (OSError, ValueError) as err:
            raise RecipeError(f"base.checkpoint = {spec!r}: cannot be downloaded ({str(err).splitlines()[0]}); "
                              f"expected a local checkpoint folder or a reachable Hub id") from err
    check_checkpoint(str(folder), "base.checkpoint")
    if expected and not (folder / "model.safetensors").is_file():
        raise RecipeError(f"base.checkpoint = {spec!r}: no model.safetensors to check against "
                          f"base.checkpoint_sha256; expected a single-file checkpoint")
    actual = weights_sha256(folder)  # of model.safetensors itself where there is one
    if expected and actual != expected:
        raise RecipeError(f"base.checkpoint = {spec!r}: model.safetensors has sha256 {actual}; expected "
                          f"{expected} (base.checkpoint_sha256): another or a damaged file")
    return folder, actual


def base_key(recipe: Recipe, corpus: list[str], checkpoint_sha256: str = "") -> str:
    """The content hash a base is stored under: its checkpoint's weights (or the model sizes), its corpus texts and
    everything its training depends on."""
    settings = {k: v for k, v in dataclasses.asdict(recipe.base).items() if k not in NOT_IN_KEY}
    if not checkpoint_sha256:
        model = {"model": dataclasses.asdict(recipe.model), "vocab_size": recipe.tokenizer.vocab_size}
    else:  # the checkpoint's config gives the sizes; max_length still truncates the corpus
        model = {"checkpoint_sha256": checkpoint_sha256, "max_length": recipe.model.max_length}
    text = json.dumps({"corpus_sha256": text_hash(corpus), "base": settings, **model, "init": INIT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def base_folder(recipe: Recipe, corpus: list[str], checkpoint_sha256: str = "") -> Path:
    cache = Path(recipe.base.cache_dir) if recipe.base.cache_dir else Path(recipe.run.output_dir) / "bases"
    return cache.expanduser() / base_key(recipe, corpus, checkpoint_sha256)


def build_base(recipe: Recipe, corpus: list[str] | None = None) -> Path:
    """The base encoder of `recipe` (its folder), built now unless a finished one is stored under its key."""
    if not recipe.has_base:
        raise RecipeError("base.corpus = '' and base.checkpoint = '': expected the public text files a base encoder "
                          "is trained on, or a public checkpoint")
    if corpus is None:
        corpus = load_base_corpus(recipe.base) if recipe.base.corpus else []
    checkpoint, sha256 = fetch_checkpoint(recipe) if recipe.base.checkpoint else (None, "")
    folder = base_folder(recipe, corpus, sha256)
    if (folder / BASE_INFO).exists():
        return folder
    with file_lock(folder.with_name(f".{folder.name}.lock")):
        if not (folder / BASE_INFO).exists():  # another run may have built it while this one waited
            with quiet_transformers():
                if checkpoint is None:
                    _train_base(recipe, corpus, folder)
                else:
                    _adopt_checkpoint(recipe, checkpoint, sha256, corpus, folder)
    return folder


def _adopt_checkpoint(recipe: Recipe, checkpoint: Path, sha256: str, corpus: list[str], folder: Path) -> None:
    """The base from a public checkpoint: its weights and tokenizer, with a masked-LM head (built seeded where it
    has none), trained `base.epochs` on the public corpus (the head alone where `base.freeze_encoder`)."""
    args, start = recipe.base, time.perf_counter()
    tokenizer = load_tokenizer(checkpoint)
    set_seed(args.seed)  # the weights the checkpoint lacks (a head) are initialised under this seed
    model, loading = BertForMaskedLMSparse.from_pretrained(checkpoint, use_safetensors=True,
                                                           output_loading_info=True)
    built = sorted(loading["missing_keys"])
    def encode(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, truncation=True, max_length=recipe.model.max_length)["input_ids"] if texts else []

    train, heldout = split_corpus(corpus, args.heldout_texts, args.seed) if corpus else ([], [])
    no_specials = [ids[1:-1] for ids in encode(heldout)]
    heldout_loss = lambda: float(np.mean(masked_lm_losses(model, no_specials, tokenizer))) if heldout else None  # noqa: E731
    info = {"key": folder.name, "checkpoint": args.checkpoint, "checkpoint_sha256": sha256,
            "built_weights": built, "corpus_sha256": text_hash(corpus), "corpus_texts": len(corpus),
            "train_texts": len(train), "heldout_texts": len(heldout), "heldout_mlm_loss_as_loaded": heldout_loss()}
    with atomic_dir(folder) as tmp:
        result = {"train_loss": None, "tokens_per_s": None}
        train_ids = encode(train)
        if train and args.epochs > 0:
            # The head only: its decoder is tied to the word embeddings, which stay frozen with the encoder.
            model.bert.requires_grad_(not args.freeze_encoder)
            result = train_masked_lm(model, train_ids, tokenizer, args, args.epochs, args.seed, tmp, progress=True)
            model.bert.requires_grad_(True)
        save_masked_lm(model, tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / BASE_INFO, {
            **info, "tokens_seen": int(sum(map(len, train_ids)) * args.epochs),
            "train_loss": result["train_loss"], "heldout_mlm_loss": heldout_loss(),
            "tokens_per_s": result["tokens_per_s"], "seconds": time.perf_counter() - start,
            "parameters": sum(p.numel() for p in model.parameters()), "base": dataclasses.asdict(args),
            "model": dataclasses.asdict(recipe.model), "vocab_size": len(tokenizer)})


def _train_base(recipe: Recipe, corpus: list[str], folder: Path) -> None:
    args, start = recipe.base, time.perf_counter()
    train, heldout = split_corpus(corpus, args.heldout_texts, args.seed)
    # The vocabulary comes from public text only, so it says nothing about any private pool.
    tokenizer = train_wordpiece(train, recipe.tokenizer.vocab_size)
    encode = lambda texts: tokenizer(texts, truncation=True, max_length=recipe.model.max_length)["input_ids"]  # noqa: E731
    train_ids = encode(train)
    # Seeded here: the Trainer seeds only after the model exists, and torch's initial seed is random per process,
    # so an unseeded init differed from run to run (docs/experiments.md: bases of one recipe read 4.44 to 5.14).
    set_seed(args.seed)
    model = BertForMaskedLMSparse(bert_config(recipe.model, tokenizer))
    with atomic_dir(folder) as tmp:
        result = train_masked_lm(model, train_ids, tokenizer, args, args.epochs, args.seed, tmp, progress=True)
        save_masked_lm(model, tmp)
        tokenizer.save_pretrained(tmp)
        no_specials = [ids[1:-1] for ids in encode(heldout)]
        heldout_loss = float(np.mean(masked_lm_losses(model, no_specials, tokenizer)))
        atomic_write_json(tmp / BASE_INFO, {
            "key": folder.name, "corpus_sha256": text_hash(corpus), "corpus_texts": len(corpus),
            "train_texts": len(train), "heldout_texts": len(heldout),
            "tokens_seen": int(sum(map(len, train_ids)) * args.epochs), "train_loss": result["train_loss"],
            "heldout_mlm_loss": heldout_loss, "tokens_per_s": result["tokens_per_s"],
            "seconds": time.perf_counter() - start, "parameters": sum(p.numel() for p in model.parameters()),
            "base": dataclasses.asdict(args), "model": dataclasses.asdict(recipe.model),
            "vocab_size": len(tokenizer)})


def base_info(folder: str | Path) -> dict:
    """A base's base.json: its held-out masked-LM loss, tokens seen, speed and settings."""
    return json.loads((Path(folder) / BASE_INFO).read_text())
