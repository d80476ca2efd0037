"""Load the pretraining pool and the downstream task: built-in synthetic data or any `datasets` source."""

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import normalizers, pre_tokenizers

from tmi_nlp.config import BaseArguments, DataArguments
from tmi_nlp.data.plan import Plan
from tmi_nlp.data.synthetic import LABEL_NAMES, synthetic_downstream, synthetic_pool

COMPRESSED = (".gz", ".bz2", ".xz")
_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet",
             ".txt": "text", ".raw": "text", ".tokens": "text"}


class DataError(ValueError):
    """A dataset lacks a named column, has empty texts or bad labels, or is too small."""


class DataNotFound(DataError):
    """A named dataset (file, Hub id, or the victims' run folder) cannot be found or loaded from here."""


@dataclass
class Downstream:
    train_texts: list[str]
    train_labels: list[int]
    eval_texts: list[str]
    eval_labels: list[int]
    num_labels: int
    classes: list[str]  # the label value of each class index, as text (class i is the i-th in sorted order)


def _file_type(path: str) -> str:
    """A file's type by its extension, through a compression suffix (`datasets` decompresses .gz, .bz2, .xz)."""
    suffixes = [x.lower() for x in Path(path).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in COMPRESSED:
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def _load_file(load_dataset, path: str, split: str, field_name: str):
    """One local file through `datasets`, its failures (empty, not UTF-8, malformed) as one DataError naming it."""
    if Path(path).stat().st_size == 0:
        raise DataError(f"{field_name}: {path!r} is empty; expected texts")
    try:
        # Into memory, through a cache of its own that is removed after: datasets would otherwise keep an Arrow
        # copy of every local file under the home folder for good (210 MB for a 1-million-line pool).
        with tempfile.TemporaryDirectory(prefix="tmi-nlp-datasets-") as cache:
            return load_dataset(_BUILDERS[_file_type(path)], data_files={split: [path]}, split=split,
                                cache_dir=cache, keep_in_memory=True,
                                **({"delimiter": "\t"} if _file_type(path) == ".tsv" else {}))
    except Exception as err:  # datasets wraps the reader's error (DatasetGenerationError): name its cause
        cause = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, UnicodeDecodeError):
            raise DataError(f"{field_name}: {path!r} is not UTF-8 text (byte {cause.start}: {cause.reason}); "
                            f"expected UTF-8") from err
        raise DataError(f"{field_name}: {path!r} could not be read as {_file_type(path)} "
                        f"({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})") from err


def load_text_dataset(spec: str, split: str, field_name: str):
    """`datasets.load_dataset` on a Hub id or on local file(s) named by extension (comma-separated).

    Files are loaded one by one (their columns may differ: say WikiText's .raw, a .jsonl and a .jsonl.gz) and
    concatenated in the order given, with the columns they all have. `field_name` is the recipe field that names
    `spec` ("data.pool", "base.corpus"), for errors.
    """
    from datasets import Dataset, load_dataset

    files = [str(Path(p.strip()).expanduser()) if p.strip().startswith("~") else p.strip()
             for p in spec.split(",") if p.strip()]
    if all(Path(f).exists() for f in files):
        unknown = sorted({_file_type(f) for f in files} - set(_BUILDERS))
        if unknown:
            raise DataError(f"{field_name} = {spec!r}: file type(s) {unknown}; expected types among "
                            f"{sorted(_BUILDERS)}")
        parts = [_load_file(load_dataset, f, split, field_name) for f in files]
        if len(parts) == 1:
            return parts[0]
        common = [c for c in parts[0].column_names if all(c in p.column_names for p in parts)]
        if not common:
            raise DataError(f"{field_name} = {spec!r}: the files share no column; expected a common text column")
        # Joined as Python values: the files' column types may differ (string and large_string, say).
        return Dataset.from_dict({c: [v for p in parts for v in p[c]] for c in common})
    if any(_file_type(f) in _BUILDERS for f in files):
        missing = [f for f in files if not Path(f).exists()]
        raise DataNotFound(f"{field_name} = {spec!r}: file(s) not found: {missing}")
    try:
        return load_dataset(spec, split=split)
    except Exception as err:  # datasets raises many types; name the field either way
        raise DataNotFound(f"{field_name} = {spec!r}: could not load split {split!r} ({err})") from err


def _column(dataset, column: str, field_name: str, spec: str) -> list:
    if column not in dataset.column_names:
        raise DataError(f"{field_name} = {column!r}: no such column in {spec!r}; "
                        f"expected one of {dataset.column_names}")
    return list(dataset[column])


def _chunk(texts: list[str], words: int) -> list[str]:
    chunks = []
    for text in texts:
        tokens = text.split()
        chunks.extend(" ".join(tokens[i:i + words]) for i in range(0, len(tokens), words))
    return chunks


def load_challenge(args: DataArguments) -> list[str]:
    """The given candidate texts (`data.challenge`), distinct and non-empty, in file order; [] if none."""
    if not args.challenge:
        return []
    dataset = load_text_dataset(args.challenge, "train", "data.challenge")
    texts = _column(dataset, args.challenge_text_column, "data.challenge_text_column", args.challenge)
    texts = distinct([t.strip() for t in texts if isinstance(t, str) and t.strip()], "data.challenge")
    if not texts:
        raise DataError(f"data.challenge = {args.challenge!r}: no non-empty texts")
    return texts


def load_pool(args: DataArguments, seed: int) -> tuple[list[str], int]:
    """The candidate pretraining texts (distinct, non-empty, exactly `pool_size`), and how many given
    challenge points lead them (0: the plan draws the challenge points).

    Given candidates (`data.challenge`, or the known challenge points of `data.known_pool_of`) come
    first, then texts of the pool source fill the rest.
    """
    if args.known_pool_of:
        return _known_pool(args, seed)
    candidates = load_challenge(args)
    if candidates:
        if len(candidates) > args.pool_size:
            raise DataError(f"data.challenge = {args.challenge!r}: {len(candidates)} candidates; expected at most "
                            f"data.pool_size ({args.pool_size})")
        drawn = _draw(_source_texts(args, seed, args.pool_size), args, seed, args.pool_size)
        given = {normalise(t) for t in candidates}
        rest = [t for t in drawn if normalise(t) not in given]
        return candidates + rest[: args.pool_size - len(candidates)], len(candidates)
    return _draw(_source_texts(args, seed, args.pool_size), args, seed, args.pool_size), 0


def _known_pool(args: DataArguments, seed: int) -> tuple[list[str], int]:
    """The adversary's pool under partial knowledge: the known share of the victims' pool (their
    challenge points first, so that as many as possible can be attacked), then other texts of the
    pool source (none from the victims' pool)."""
    plan_dir = Path(args.known_pool_of) / "plan"
    if not Plan.exists(plan_dir):
        raise DataNotFound(f"data.known_pool_of = {args.known_pool_of!r}: expected a run folder with a plan "
                        f"(run `tmi-nlp prepare` on the victims' recipe first)")
    victims = Plan.load(plan_dir)
    num_known = round(args.known_fraction * len(victims.pool))
    if not 1 <= num_known <= args.pool_size:
        raise DataError(f"data.known_fraction = {args.known_fraction}: keeps {num_known} of the victims' "
                        f"{len(victims.pool)} texts; expected between 1 and data.pool_size ({args.pool_size})")
    rng = np.random.default_rng([seed, 13])
    is_challenge = np.isin(np.arange(len(victims.pool)), victims.challenge)
    order = [*rng.permutation(np.flatnonzero(is_challenge)), *rng.permutation(np.flatnonzero(~is_challenge))]
    known = sorted(order[:num_known])
    challenge = [victims.pool[j] for j in known if is_challenge[j]]
    rest = [victims.pool[j] for j in known if not is_challenge[j]]
    needed = args.pool_size - num_known
    exclude = {normalise(t) for t in victims.pool}
    others = [t for t in _source_texts(args, seed, args.pool_size + len(exclude)) if normalise(t) not in exclude]
    if len(others) < needed:
        raise DataError(f"data.pool_size = {args.pool_size}: the pool {args.pool!r} has only {len(others)} texts "
                        f"outside the victims' pool; expected at least {needed} to fill it")
    return challenge + rest + _draw(others, args, seed, needed), len(challenge)


def _draw(texts: list[str], args: DataArguments, seed: int, size: int) -> list[str]:
    """`size` of the texts, a seeded draw kept in source order."""
    if len(texts) < size:
        raise DataError(f"data.pool_size = {args.pool_size}: the pool {args.pool!r} has only "
                        f"{len(texts)} distinct non-empty texts")
    order = np.random.default_rng([seed, 11]).permutation(len(texts))[:size]
    return [texts[i] for i in sorted(order)]


def _source_texts(args: DataArguments, seed: int, synthetic_size: int) -> list[str]:
    """Every distinct candidate text of the pool source (`synthetic_size` generated notes for 'synthetic')."""
    if args.pool == "synthetic":
        return synthetic_pool(synthetic_size, seed)
    return corpus_texts(args.pool, args.pool_split, args.pool_text_column, args.pool_chunk_words, "data.pool",
                        "data.pool_text_column")


def corpus_texts(spec: str, split: str, column: str, chunk_words: int, spec_field: str, column_field: str) -> list[str]:
    """The distinct non-empty texts of a text source, in source order, split into chunks of `chunk_words` words
    (0: whole; chunks under half that size are dropped). Errors name the recipe fields of `spec` and `column`."""
    dataset = load_text_dataset(spec, split, spec_field)
    texts = [t.strip() if isinstance(t, str) else t for t in _column(dataset, column, column_field, spec)]
    if any(not isinstance(t, str) for t in texts):
        raise DataError(f"{column_field} = {column!r}: expected strings")
    texts = [t for t in texts if t and not t.startswith("=")]  # drop blanks and WikiText headings
    if chunk_words:
        texts = [t for t in _chunk(texts, chunk_words) if len(t.split()) >= chunk_words // 2]
    return distinct(texts, spec_field)


# BERT's own text normalisation and word splitting, as every uncased WordPiece tokenizer of this project applies
# them: lower case, accents stripped, control and zero-width characters removed, punctuation split off.
_NORMALIZER = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True,
                                         lowercase=True)
_WORDS = pre_tokenizers.BertPreTokenizer()


def normalise(text: str) -> str:
    """What an uncased BERT tokenizer sees of a text: its words after BERT's normalisation, one space apart. Texts
    equal here get equal token ids from any WordPiece vocabulary; '' for a text with no token at all."""
    return " ".join(word for word, _ in _WORDS.pre_tokenize_str(_NORMALIZER.normalize_str(text)))


def distinct(texts: list[str], field_name: str = "") -> list[str]:
    """The texts without repeats, compared as the model sees them (`normalise`): the first of each is kept, and
    texts with no token (only control or zero-width characters) are dropped, with a note naming `field_name`.
    Texts that differ only in case, accents, spacing or invisible characters are one text to the tokenizer, and
    as twins of opposite membership they would make a challenge point unanswerable."""
    seen: set[str] = set()
    kept, tokenless = [], 0
    for text in texts:
        key = normalise(text)
        tokenless += not key
        if key and key not in seen:
            seen.add(key)
            kept.append(text)
    if tokenless and field_name:
        print(f"tmi-nlp: note: {field_name}: {tokenless} text(s) have no token (only control or zero-width "
              f"characters); dropped", file=sys.stderr)
    return kept


def load_base_corpus(args: BaseArguments) -> list[str]:
    """The base encoder's public corpus: distinct chunks (by normalised text), in source order, at most
    `max_texts`."""
    texts = corpus_texts(args.corpus, args.split, args.text_column, args.chunk_words, "base.corpus",
                         "base.text_column")
    if args.max_texts:
        texts = texts[: args.max_texts]
    if len(texts) <= args.heldout_texts:
        raise DataError(f"base.corpus = {args.corpus!r}: {len(texts)} distinct texts; expected more than "
                        f"base.heldout_texts ({args.heldout_texts})")
    return texts


def check_disjoint(pool: list[str], corpus: list[str]) -> None:
    """Refuse a private pool that shares a text (compared normalised) with the public base corpus."""
    public = {normalise(t) for t in corpus}
    shared = [t for t in pool if normalise(t) in public]
    if shared:
        raise DataError(f"base.corpus: {len(shared)} of the {len(pool)} pool texts are in the base corpus too (e.g. "
                        f"{shared[0][:60]!r}); expected a corpus disjoint from data.pool, or the base would have "
                        f"seen every candidate")


def load_downstream(args: DataArguments, seed: int, pool: list[str]) -> Downstream:
    """Downstream train/eval texts and integer labels, with every pool text removed, and every eval text that is a
    training text too (compared as the model sees them).

    Pool texts are removed before the evaluation examples are held out, so that removal does not
    shrink the training set.
    """
    pool_set = {normalise(t) for t in pool}
    eval_texts: list[str] | None = None
    if args.downstream == "synthetic":
        texts, labels = _without(synthetic_downstream(args.num_train + args.num_eval, seed), pool_set)
        num_labels, class_names = len(LABEL_NAMES), list(LABEL_NAMES)
    else:
        texts, labels = _without(_labelled(args, args.downstream_split), pool_set)
        if args.downstream_eval_split:
            eval_texts, eval_labels = _without(_labelled(args, args.downstream_eval_split), pool_set)
        # Labels index the classes 0..C-1 in sorted order of their values (AG News uses 1..4; names sort too).
        classes = sorted(set(labels + (eval_labels if eval_texts is not None else [])))
        class_names = [str(c) for c in classes]
        index = {value: i for i, value in enumerate(classes)}
        labels = [index[y] for y in labels]
        if eval_texts is not None:
            eval_labels = [index[y] for y in eval_labels]
        num_labels = len(classes)
        if num_labels < 2:
            raise DataError(f"data.downstream_label_column = {args.downstream_label_column!r}: every example has "
                            f"label {classes[0]}; expected at least 2 classes")
    if eval_texts is None:
        eval_texts, eval_labels = texts[args.num_train:], labels[args.num_train:]
    texts, labels = texts[: args.num_train], labels[: args.num_train]
    # An eval text that is also a training text (as the model sees it) would grade the model on what it trained on.
    eval_texts, eval_labels = _without((eval_texts, eval_labels), {normalise(t) for t in texts})
    eval_texts, eval_labels = eval_texts[: args.num_eval], eval_labels[: args.num_eval]
    if len(texts) < 2 or not eval_texts:
        raise DataError(f"data.downstream = {args.downstream!r}: after removing pool texts, and eval texts that are "
                        f"training texts too, {len(texts)} train and {len(eval_texts)} eval examples remain; expected "
                        f">= 2 and >= 1")
    return Downstream(texts, labels, eval_texts, eval_labels, num_labels, class_names)


def _without(labelled: tuple[list[str], list], texts: set[str]) -> tuple[list[str], list]:
    """The labelled texts whose normalised form is not in `texts` (normalised)."""
    kept = [(t, y) for t, y in zip(*labelled, strict=True) if normalise(t) not in texts]
    return [t for t, _ in kept], [y for _, y in kept]


def _labelled(args: DataArguments, split: str) -> tuple[list[str], list[int]]:
    dataset = load_text_dataset(args.downstream, split, "data.downstream")
    texts = _column(dataset, args.downstream_text_column, "data.downstream_text_column", args.downstream)
    labels = _label_values(_column(dataset, args.downstream_label_column, "data.downstream_label_column",
                                   args.downstream), args.downstream_label_column)
    keep = [i for i, t in enumerate(texts) if isinstance(t, str) and normalise(t)]
    if not keep:
        raise DataError(f"data.downstream_text_column = {args.downstream_text_column!r}: no non-empty texts")
    order = np.random.default_rng(len(keep)).permutation(keep)
    return [texts[i].strip() for i in order], [labels[i] for i in order]


def _label_values(labels: list, column: str) -> list:
    """Integers >= 0 (whole floats too: a CSV column with a gap is read as floats) or class names, one kind per
    column; the first bad row (0-based, after any header) is named."""
    values = []
    for i, label in enumerate(labels):
        if isinstance(label, float) and label.is_integer():
            label = int(label)
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label >= 0:
            values.append(int(label))
        elif isinstance(label, str) and label.strip():
            values.append(label.strip())
        else:
            raise DataError(f"data.downstream_label_column = {column!r}: row {i} has label {label!r}; expected an "
                            f"integer >= 0 or a class name")
    if len({type(v) for v in values}) > 1:
        first = next(i for i, v in enumerate(values) if type(v) is not type(values[0]))
        raise DataError(f"data.downstream_label_column = {column!r}: row {first} has label {values[first]!r} but row "
                        f"0 has {values[0]!r}; expected integers or class names, not both")
    return values


def check_columns(args: DataArguments) -> None:
    """Fail fast (before any training) when a named dataset or column does not exist."""
    load_challenge(args)
    if args.pool != "synthetic":
        dataset = load_text_dataset(args.pool, args.pool_split, "data.pool")
        _column(dataset, args.pool_text_column, "data.pool_text_column", args.pool)
    if args.downstream != "synthetic":
        _labelled(args, args.downstream_split)
        if args.downstream_eval_split:
            _labelled(args, args.downstream_eval_split)

