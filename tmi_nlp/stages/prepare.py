"""prepare: the only stage that reads the raw data. It writes config, plan, tokenizer and tokens (each once).

After it, the run folder holds everything the later stages read; `open_run` is how they enter
it: it checks the recipe against the folder's config.yaml and never touches the raw data.
Re-checking the raw data against the folder's fingerprint is explicit (`prepare` on a prepared
folder, which `run` and `check` call): where the data cannot be found any more, the folder's own
copy is used and a note says so.
"""

import json
import math
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from tmi_nlp.atomic import atomic_dir, atomic_write_json, atomic_write_text, clean_temporaries, link_or_copy
from tmi_nlp.config import Recipe, RecipeError
from tmi_nlp.data import loading
from tmi_nlp.data.loading import DataError, DataNotFound, Downstream
from tmi_nlp.data.plan import Plan, make_plan, text_hash
from tmi_nlp.models.tfidf import reference_accuracy
from tmi_nlp.models.tokenizer import load_tokenizer, train_wordpiece
from tmi_nlp.resolve import resolve
from tmi_nlp.stages.base import build_base, fetch_checkpoint, split_corpus
from tmi_nlp.store import RunDir

# Fields that change where or how a run executes, not what it computes: they may differ on resume
# (a run folder may be moved or renamed).
# (run.threads_per_model is not one: the thread count changes the arithmetic, so a resume must keep it.)
EXECUTION_FIELDS = {("run", "workers"), ("run", "pretrained_from"), ("run", "name"),
                    ("run", "output_dir"),
                    # Which attacks run: each writes its own attacks/<name>/, so more can be added later.
                    ("attack", "metaclassifiers"), ("attack", "baselines"),
                    # The set test's record names its settings and is redone when they change.
                    ("attack", "dataset_statistic"), ("attack", "dataset_sizes"), ("attack", "dataset_sets"),
                    ("attack", "dataset_reference")}
# The data fields the plan depends on.
POOL_FIELDS = ("pool", "pool_text_column", "pool_split", "challenge", "challenge_text_column", "known_pool_of",
               "known_fraction", "pool_size", "pool_chunk_words")


def pretraining_fields(recipe: Recipe) -> dict[str, tuple[str, ...] | None]:
    """What the plan, the tokenizer and the pretrained models depend on, by section (None: every field).

    run.num_models may differ: the plan of n models is the first n rows of a larger plan (checked). With a base,
    the tokenizer is the base's, so the downstream task does not matter: one set of pretrained models serves
    every task; without one, the tokenizer is trained on the downstream texts too.
    """
    return {"run": ("seed", "num_points"), "data": POOL_FIELDS if recipe.has_base else None, "base": None,
            "tokenizer": None, "model": None, "pretrain": None}
PACKAGES = ("tmi-nlp", "torch", "transformers", "tokenizers", "datasets", "peft", "accelerate", "opacus",
            "evaluate", "scikit-learn", "numpy", "safetensors", "huggingface_hub")


def stored_config(run: RunDir) -> dict:
    """config.yaml as a mapping, moved to this version's keys and with the fields it lacks set to their defaults."""
    stored = run.stored_config()
    return {section: {**values, **stored.get(section, {})} for section, values in Recipe().to_dict().items()}


def differences(old: dict, new: dict) -> list[str]:
    """Fields that differ, except those that only say where or how the run executes."""
    changed = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section, {}), new.get(section, {})
        for key in sorted(set(a) | set(b)):
            if (section, key) not in EXECUTION_FIELDS and a.get(key) != b.get(key):
                changed.append(f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return changed


def _refuse_other_recipe(recipe: Recipe, run: RunDir) -> None:
    changed = differences(stored_config(run), recipe.to_dict())
    if changed:
        raise RecipeError(f"run folder {run.root} was made by a different recipe; refusing to mix "
                          f"artifacts. Changed: {'; '.join(changed)}. Use a new run.name.")


def open_run(recipe: Recipe) -> tuple[RunDir, Recipe]:
    """The prepared run folder of `recipe`, and the recipe resolved; reads only the run folder.

    Refuses a folder made by another recipe (execution fields aside), not prepared yet, or holding a link
    that leads out of it.
    """
    recipe = resolve(recipe)
    run = RunDir(recipe.run_dir)
    if not run.prepared:
        raise RecipeError(f"run folder {run.root}: not prepared (no {run.fingerprint.relative_to(run.root)}); "
                          f"run `tmi-nlp prepare` or `tmi-nlp run` on its recipe first")
    _refuse_other_recipe(recipe, run)
    run.refuse_outside_links()
    return run, recipe


def data_fingerprint(pool: list[str], downstream: Downstream) -> dict[str, str]:
    """sha256 of the pool and of the downstream texts and labels (train and eval)."""
    labels = ",".join(map(str, downstream.train_labels + downstream.eval_labels))
    return {"pool_sha256": text_hash(pool),
            "downstream_sha256": text_hash(downstream.train_texts + downstream.eval_texts + [labels])}


@dataclass
class RawData:
    pool: list[str]
    num_given: int  # given challenge points that lead the pool (0: the plan draws them)
    downstream: Downstream
    corpus: list[str] | None  # the base's public corpus, where the recipe has one
    fingerprint: dict[str, str]


def load_data(recipe: Recipe) -> RawData:
    """The pool, the downstream task, the base corpus (checked disjoint from the pool) and their fingerprint."""
    pool, num_given = loading.load_pool(recipe.data, recipe.run.seed)
    downstream = loading.load_downstream(recipe.data, recipe.run.seed, pool)
    fingerprint = data_fingerprint(pool, downstream)
    corpus = None
    if recipe.base.corpus:
        corpus = loading.load_base_corpus(recipe.base)
        loading.check_disjoint(pool, corpus)
        fingerprint["base_corpus_sha256"] = text_hash(corpus)
    return RawData(pool, num_given, downstream, corpus, fingerprint)


def check_fingerprint(run: RunDir, fingerprint: dict[str, str]) -> None:
    """Refuse data that differs from what the run folder was prepared with."""
    old = json.loads(run.fingerprint.read_text())
    changed = [f"{key}: {old.get(key)} -> {value}" for key, value in fingerprint.items() if old.get(key) != value]
    if changed:
        raise RecipeError(f"run folder {run.root}: the data changed since it was made; refusing to mix "
                          f"artifacts. Changed: {'; '.join(changed)}. Use a new run.name.")


def prepare(recipe: Recipe) -> RunDir:
    """Check the data, then write config, plan, tokenizer and the token cache (each once).

    On a rerun, the recipe and the data (their sha256) must be those the folder was made with:
    otherwise nothing is mixed, and the error says what changed. A prepared folder whose data
    cannot be found any more (copied to another machine, pulled from the Hub) is used as it is.
    """
    recipe = resolve(recipe)
    run = RunDir(recipe.run_dir)
    if run.config.exists():
        _refuse_other_recipe(recipe, run)
    if recipe.base.checkpoint and not run.prepared:
        fetch_checkpoint(recipe)  # a wrong hash or an unsafe checkpoint is refused before anything is written
    try:
        raw = load_data(recipe)
    except DataNotFound as err:
        if not run.prepared:
            raise
        print(f"tmi-nlp: note: {err}; {run.root} is prepared, so its own copy of the data is used unchecked",
              file=sys.stderr)
        return run
    if run.prepared:
        check_fingerprint(run, raw.fingerprint)
    elif raw.num_given and raw.num_given != recipe.run.num_points:  # refused before anything is written
        given_by = "data.challenge has" if recipe.data.challenge else "data.known_pool_of leaves"
        raise DataError(f"run.num_points = {recipe.run.num_points}: {given_by} {raw.num_given} "
                        f"candidate texts; expected them equal")
    run.root.mkdir(parents=True, exist_ok=True)
    clean_temporaries(run.root)
    if not run.config.exists():
        atomic_write_text(run.config, recipe.to_yaml())
    _record_environment(run)
    source = _reusable_pretraining(recipe, run) if recipe.run.pretrained_from else None
    if recipe.has_base and not run.base.exists():
        # Hard links: the base is written once and never modified, and the run folder stays self-contained.
        with atomic_dir(run.base) as tmp:
            shutil.copytree(build_base(recipe, raw.corpus), tmp, dirs_exist_ok=True, copy_function=link_or_copy)
    if not Plan.exists(run.plan):
        given = np.arange(raw.num_given) if raw.num_given else None
        plan = make_plan(raw.pool, recipe.run.num_models, recipe.run.num_points, recipe.run.seed, challenge=given)
        plan.save(run.plan)
    plan = run.load_plan()
    if source is not None:
        _link_pretrained(source, run, plan)
    if not (run.tokenizer / "tokenizer.json").exists():
        _make_tokenizer(recipe, plan, raw.downstream, run)
    _check_tokenizer(recipe, run)
    if not (run.data / "tokens.json").exists():
        _tokenize(recipe, plan, raw, run)
    if not run.reference.exists():
        d = raw.downstream
        atomic_write_json(run.reference, reference_accuracy(d.train_texts, d.train_labels, d.eval_texts,
                                                            d.eval_labels))
    if not run.prepared:
        atomic_write_json(run.fingerprint, raw.fingerprint)  # last: marks the folder prepared
        run.record_prepared()
    return run


def _record_environment(run: RunDir) -> None:
    """environment.json: Python and package versions the run was made with (a resume under others warns)."""

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    now = {"python": platform.python_version(), **{name: installed(name) for name in PACKAGES}}
    path = run.root / "environment.json"
    if not path.exists():
        atomic_write_json(path, now)
        return
    then = json.loads(path.read_text())
    changed = [f"{k} {then.get(k)} -> {v}" for k, v in now.items() if then.get(k) != v]
    if changed:
        print(f"tmi-nlp: warning: {run.root} was made with other versions ({'; '.join(changed)}); "
              f"finished artifacts are kept, new ones may differ slightly", file=sys.stderr)


def _check_tokenizer(recipe: Recipe, run: RunDir) -> None:
    """The shared tokenizer must fit every pretrained model already on disk (vocabulary size)."""
    tokenizer_size = len(load_tokenizer(run.tokenizer))
    for i in range(recipe.run.num_models):
        config = run.pretrained(i) / "config.json"
        if config.exists():
            vocab = json.loads(config.read_text())["vocab_size"]
            if vocab != tokenizer_size:
                raise RecipeError(f"tokenizer.path = {recipe.tokenizer.path!r}: the tokenizer has {tokenizer_size} "
                                  f"tokens but models/{i}/pretrained has vocab_size {vocab}; expected equal")


def _reusable_pretraining(recipe: Recipe, run: RunDir) -> RunDir:
    """Check that `run.pretrained_from` was pretrained as this recipe says; copy its tokenizer."""
    source = RunDir(recipe.run.pretrained_from)
    if not source.config.exists():
        raise RecipeError(f"run.pretrained_from = {recipe.run.pretrained_from!r}: expected a run folder with a "
                          f"config.yaml")
    if source.root.resolve() == run.root.resolve():
        raise RecipeError(f"run.pretrained_from = {recipe.run.pretrained_from!r}: expected another run's folder")
    before, ours = stored_config(source), recipe.to_dict()
    changed = [f"{section}.{key}: {before[section][key]!r} -> {ours[section][key]!r}"
               for section, keys in pretraining_fields(recipe).items() for key in (keys or ours[section])
               if before[section][key] != ours[section][key]]
    if changed:
        raise RecipeError(f"run.pretrained_from = {recipe.run.pretrained_from!r} was pretrained differently: "
                          f"{'; '.join(changed)}")
    if not run.tokenizer.exists() and source.tokenizer.exists():
        with atomic_dir(run.tokenizer) as tmp:
            shutil.copytree(source.tokenizer, tmp, dirs_exist_ok=True)
    return source


def _link_pretrained(source: RunDir, run: RunDir, plan: Plan) -> None:
    """Hard-link the source's pretrained models whose membership rows equal this plan's."""
    theirs = source.load_plan()
    shared = min(theirs.num_models, plan.num_models)
    if (theirs.pool != plan.pool or not np.array_equal(theirs.challenge, plan.challenge)
            or not np.array_equal(theirs.keep[:shared], plan.keep[:shared])):
        raise RecipeError(f"run.pretrained_from = {str(source.root)!r}: its membership plan differs from this run's "
                          f"(pool, challenge points or the first {shared} models' rows); expected the same seed "
                          f"and data")
    for i in range(shared):
        if source.model_done(i, "pretrain") and not run.model_done(i, "pretrain"):
            # Hard links: the weights are written once and never modified in place.
            with atomic_dir(run.pretrained(i)) as tmp:
                shutil.copytree(source.pretrained(i), tmp, dirs_exist_ok=True, copy_function=link_or_copy)


def _make_tokenizer(recipe: Recipe, plan: Plan, downstream: Downstream, run: RunDir) -> None:
    if recipe.has_base:  # the base's own: a public checkpoint's, or the one trained on the public corpus
        tokenizer = load_tokenizer(run.base)
    elif recipe.tokenizer.path:
        tokenizer = load_tokenizer(recipe.tokenizer.path)
    else:
        # Trained on the whole candidate pool and the downstream text: the same for every model,
        # so the vocabulary carries no information about any model's membership.
        tokenizer = train_wordpiece(plan.pool + downstream.train_texts, recipe.tokenizer.vocab_size)
    with atomic_dir(run.tokenizer) as tmp:
        tokenizer.save_pretrained(tmp)


def background_texts(recipe: Recipe, corpus: list[str]) -> list[str]:
    """The public texts the run's models mix with their private ones: a seeded draw from the base's training
    texts, as many as a model of an over-full half pool needs without repeating one."""
    share = recipe.pretrain.private_share
    if share == 1:
        return []
    train, _ = split_corpus(corpus, recipe.base.heldout_texts, recipe.base.seed)
    needed = math.ceil(0.6 * recipe.data.pool_size * math.ceil(recipe.pretrain.epochs) * (1 - share) / share)
    drawn = np.random.default_rng([recipe.run.seed, 23]).permutation(len(train))[:needed]
    return [train[i] for i in np.sort(drawn)]


def _tokenize(recipe: Recipe, plan: Plan, raw: RawData, run: RunDir) -> None:
    tokenizer = load_tokenizer(run.tokenizer)
    max_len = recipe.model.max_length
    downstream = raw.downstream

    def encode(texts: list[str], specials: bool = True) -> list[list[int]]:
        if not texts:
            return []
        limit = max_len if specials else max_len - 2
        return tokenizer(texts, add_special_tokens=specials, truncation=True, max_length=limit)["input_ids"]

    atomic_write_json(run.data / "tokens.json", {
        "pool": encode(plan.pool),
        "background": encode(background_texts(recipe, raw.corpus) if raw.corpus is not None else []),
        "challenge": encode([plan.pool[j] for j in plan.challenge], specials=False),
        "train": encode(downstream.train_texts), "train_labels": downstream.train_labels,
        "eval": encode(downstream.eval_texts), "eval_labels": downstream.eval_labels,
        "num_labels": downstream.num_labels, "classes": downstream.classes,
    })
