"""base: the public base encoder every shadow and victim continues from, trained once and shared.

The realistic threat is domain adaptation: an organisation takes a public encoder, continues
masked-LM pretraining on its private texts, finetunes and releases a classifier; the adversary
has the same public encoder. Where the Hub is reachable, `model.init_from` names a public
checkpoint; `base.corpus` instead pretrains one here on public text.

A base is stored content-addressed, in `<cache>/<key>/` where the key hashes the corpus texts,
the model sizes, the vocabulary size and the base's training settings: a second run that asks
for the same base reuses it, a changed corpus or setting gives a new one, and two runs asking
at once train it once (a file lock). The folder holds the masked LM, its tokenizer and
`base.json` (the held-out masked-LM loss, tokens seen, tokens/s, time); it appears whole or not
at all.
"""

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from transformers import set_seed

from tmi_nlp.atomic import atomic_dir, atomic_write_json, file_lock
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
from tmi_nlp.models.tokenizer import train_wordpiece
from tmi_nlp.models.training import quiet_transformers

BASE_INFO = "base.json"
# How the weights are initialised; in the key, so that a base made before the init was seeded is not reused.
INIT = "seeded by base.seed"
# Base settings that change where a base is stored, not what it is.
NOT_IN_KEY = ("corpus", "cache_dir")


def split_corpus(texts: list[str], heldout: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) texts: a seeded draw of `heldout` texts is kept out of training."""
    out = set(np.random.default_rng([seed, 19]).choice(len(texts), heldout, replace=False).tolist())
    return [t for i, t in enumerate(texts) if i not in out], [t for i, t in enumerate(texts) if i in out]


def base_key(recipe: Recipe, corpus: list[str]) -> str:
    """The content hash a base is stored under: its corpus texts and everything its training depends on."""
    settings = {k: v for k, v in dataclasses.asdict(recipe.base).items() if k not in NOT_IN_KEY}
    model = {k: v for k, v in dataclasses.asdict(recipe.model).items() if k != "init_from"}
    text = json.dumps({"corpus_sha256": text_hash(corpus), "base": settings, "model": model,
                       "vocab_size": recipe.tokenizer.vocab_size, "init": INIT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def base_folder(recipe: Recipe, corpus: list[str]) -> Path:
    cache = Path(recipe.base.cache_dir) if recipe.base.cache_dir else Path(recipe.run.output_dir) / "bases"
    return cache.expanduser() / base_key(recipe, corpus)


def build_base(recipe: Recipe, corpus: list[str] | None = None) -> Path:
    """The base encoder of `recipe` (its folder), trained now unless a finished one is stored under its key."""
    if not recipe.base.corpus:
        raise RecipeError("base.corpus = '': expected the public text files the base encoder is trained on")
    if corpus is None:
        corpus = load_base_corpus(recipe.base)
    folder = base_folder(recipe, corpus)
    if (folder / BASE_INFO).exists():
        return folder
    with file_lock(folder.with_name(f".{folder.name}.lock")):
        if not (folder / BASE_INFO).exists():  # another run may have trained it while this one waited
            with quiet_transformers():
                _train_base(recipe, corpus, folder)
    return folder


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
