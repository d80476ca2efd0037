import json

import numpy as np
import pytest

from tmi_nlp.config import DataArguments
from tmi_nlp.data.augment import augment, augmented_queries
from tmi_nlp.data.loading import DataError, check_columns, load_downstream, load_pool
from tmi_nlp.data.plan import Plan, make_plan
from tmi_nlp.data.synthetic import LABEL_NAMES, synthetic_downstream, synthetic_pool


def test_synthetic_data_is_seeded_distinct_and_disjoint():
    pool = synthetic_pool(300, seed=3)
    assert pool == synthetic_pool(300, seed=3) and pool != synthetic_pool(300, seed=4)
    texts, labels = synthetic_downstream(500, seed=3)
    assert len(set(pool)) == 300 and not set(pool) & set(texts)
    assert set(labels) == set(range(len(LABEL_NAMES)))


def test_plan_is_seeded_and_half_in(tmp_path):
    pool = [f"text {i}" for i in range(400)]
    plan = make_plan(pool, num_models=32, num_points=50, seed=1)
    assert plan.keep.shape == (32, 400) and plan.labels().shape == (32, 50)
    assert abs(plan.keep.mean() - 0.5) < 0.02
    assert len(set(plan.challenge.tolist())) == 50
    again = make_plan(pool, 32, 50, seed=1)
    assert (again.keep == plan.keep).all() and (again.challenge == plan.challenge).all()
    assert not (make_plan(pool, 32, 50, seed=2).keep == plan.keep).all()
    plan.save(tmp_path)
    loaded = Plan.load(tmp_path)
    assert loaded.pool == pool and (loaded.keep == plan.keep).all()


def test_local_csv_with_column_mapping(tmp_path):
    pool_file = tmp_path / "pool.csv"
    pool_file.write_text("body\n" + "\n".join(f"record number {i} of the pool" for i in range(30)) + "\n")
    task = tmp_path / "task.csv"
    rows = [f"sentence {i} is {'good' if i % 2 else 'bad'},{i % 2}" for i in range(60)]
    task.write_text("sentence,y\nrecord number 3 of the pool,0\n" + "\n".join(rows) + "\n")
    args = DataArguments(pool=str(pool_file), pool_text_column="body", pool_size=20,
                         downstream=str(task), downstream_text_column="sentence",
                         downstream_label_column="y", num_train=40, num_eval=10)
    check_columns(args)
    pool, given = load_pool(args, seed=0)
    assert given == 0 and len(pool) == 20 and all(t.startswith("record number") for t in pool)
    task_data = load_downstream(args, seed=0, pool=pool + ["record number 3 of the pool"])
    assert task_data.num_labels == 2 and len(task_data.train_texts) == 40
    assert "record number 3 of the pool" not in task_data.train_texts + task_data.eval_texts


@pytest.mark.parametrize("field, value, fragment", [
    ("pool_text_column", "text", "data.pool_text_column = 'text': no such column"),
    ("downstream_label_column", "label", "data.downstream_label_column = 'label': no such column"),
])
def test_missing_columns_are_named(tmp_path, field, value, fragment):
    (tmp_path / "pool.csv").write_text("body\nsome text\nmore text\n")
    (tmp_path / "task.csv").write_text("sentence,y\na,0\nb,1\nc,0\n")
    args = DataArguments(pool=str(tmp_path / "pool.csv"), pool_text_column="body", pool_size=2,
                         downstream=str(tmp_path / "task.csv"), downstream_text_column="sentence",
                         downstream_label_column="y", num_train=2, num_eval=1)
    setattr(args, field, value)
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check_columns(args)


def test_bad_labels_and_small_pool_are_refused(tmp_path):
    (tmp_path / "task.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": -1}\n')
    with pytest.raises(DataError, match="row 1 has label -1; expected an integer >= 0 or a class name"):
        check_columns(DataArguments(downstream=str(tmp_path / "task.jsonl"), pool_size=2))
    (tmp_path / "pool.txt").write_text("one\ntwo\n")
    with pytest.raises(DataError, match="data.pool_size = 5: the pool .* has only 2"):
        load_pool(DataArguments(pool=str(tmp_path / "pool.txt"), pool_size=5), seed=0)


def test_augmentations():
    ids = list(range(10, 60))
    rng = np.random.default_rng(0)
    deleted = augment(ids, "delete", 0.3, rng, mask_id=4, first_regular=5, vocab_size=100)
    assert 0 < len(deleted) < len(ids) and set(deleted) <= set(ids)
    masked = augment(ids, "mask", 0.3, rng, 4, 5, 100)
    assert len(masked) == len(ids) and 0 < masked.count(4) < len(ids)
    swapped = augment(ids, "swap", 0.3, rng, 4, 5, 100)
    assert sorted(swapped) == ids and swapped != ids
    subbed = augment(ids, "substitute", 1.0, rng, 4, 5, 100)
    assert all(5 <= t < 100 for t in subbed)
    assert augment(ids, "delete", 1.0, rng, 4, 5, 100) != []  # never an empty text
    texts = [ids, ids[:5]]
    q1 = augmented_queries(texts, 4, "delete", 0.2, True, (0, 3, 1), 4, 5, 100)
    assert len(q1) == 8 and q1[0] == ids and q1[4] == ids[:5]
    assert q1 == augmented_queries(texts, 4, "delete", 0.2, True, (0, 3, 1), 4, 5, 100)
    assert q1 != augmented_queries(texts, 4, "delete", 0.2, True, (0, 3, 2), 4, 5, 100)


def test_a_pool_from_files_of_two_types(tmp_path):
    # WikiText's .raw next to the Wikipedia sample's .jsonl: loaded by type, concatenated on their common column.
    raw = tmp_path / "wiki.raw"
    raw.write_text("\n".join(f"raw paragraph number {i} of the first source" for i in range(12)) + "\n")
    jsonl = tmp_path / "articles.jsonl"
    jsonl.write_text("\n".join(json.dumps({"id": i, "title": f"t{i}", "text": f"json article number {i} here"})
                               for i in range(12)) + "\n")
    pool, _ = load_pool(DataArguments(pool=f"{raw},{jsonl}", pool_size=24), seed=0)
    assert sum(t.startswith("raw") for t in pool) == 12 and sum(t.startswith("json") for t in pool) == 12
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"body": "no text column"}) + "\n")
    with pytest.raises(DataError, match="share no column"):
        load_pool(DataArguments(pool=f"{raw},{other}", pool_size=2), seed=0)


def test_near_duplicates_are_one_text_to_the_pool_and_to_the_downstream_overlap(tmp_path):
    from tmi_nlp.data.loading import normalise

    texts = [f"note {i} about the patient in ward {i % 7}" for i in range(60)]
    pool_file = tmp_path / "pool.txt"
    # Each text, then its upper-case copy and a copy with doubled spaces: the same text to an uncased tokenizer.
    pool_file.write_text("\n".join(x for t in texts for x in (t, t.upper(), t.replace(" ", "  "))) + "\n")
    pool, _ = load_pool(DataArguments(pool=str(pool_file), pool_size=50), seed=0)
    assert len({normalise(t) for t in pool}) == 50  # no twins of possibly opposite membership
    task = tmp_path / "task.jsonl"
    rows = [{"text": t.upper() if i % 2 else "  ".join(t.split()), "label": i % 2} for i, t in enumerate(pool[:10])]
    rows += [{"text": f"an unrelated review number {i}", "label": i % 2} for i in range(40)]
    task.write_text("".join(json.dumps(r) + "\n" for r in rows))
    down = load_downstream(DataArguments(pool=str(pool_file), downstream=str(task), num_train=30, num_eval=10),
                           seed=0, pool=pool)
    assert not {normalise(t) for t in down.train_texts + down.eval_texts} & {normalise(t) for t in pool}
    assert len(down.train_texts) == 30 and len(down.eval_texts) == 10


def test_texts_the_tokenizer_sees_as_one_are_one_and_texts_without_tokens_are_dropped(tmp_path, capsys):
    """Accents, zero-width and control characters, punctuation spacing: twins to the tokenizer (equal token ids)
    are one text to the pool and to the downstream overlap; a text of invisible characters is no text."""
    from tmi_nlp.models.tokenizer import train_wordpiece

    texts = [f"note {i}, about the cafe patient in ward {i % 7}." for i in range(60)]
    twins = [t.replace("cafe", "caf\u00e9").replace(" ", " \u200b", 1).replace(",", " ,") for t in texts]
    pool_file = tmp_path / "pool.txt"
    lines = [x for pair in zip(texts, twins, strict=True) for x in pair] + ["\u200b\u200d", "\x07"]
    pool_file.write_text("\n".join(lines) + "\n")
    tokenizer = train_wordpiece(texts, 300)
    assert all(tokenizer(a)["input_ids"] == tokenizer(b)["input_ids"] for a, b in zip(texts, twins, strict=True))
    pool, _ = load_pool(DataArguments(pool=str(pool_file), pool_size=60), seed=0)
    ids = [tuple(tokenizer(t)["input_ids"]) for t in pool]
    assert len(set(ids)) == 60 and all(len(i) > 2 for i in ids)  # 60 distinct texts, none without a token
    assert "2 text(s) have no token" in capsys.readouterr().err
    task = tmp_path / "task.jsonl"
    rows = [{"text": twins[i], "label": i % 2} for i in range(30)] + [{"text": "\u200b", "label": 0}]
    rows += [{"text": f"an unrelated review number {i}", "label": i % 2} for i in range(40)]
    task.write_text("".join(json.dumps(r) + "\n" for r in rows))
    down = load_downstream(DataArguments(pool=str(pool_file), downstream=str(task), num_train=30, num_eval=10),
                           seed=0, pool=pool)
    pool_ids = set(ids)
    assert not any(tuple(tokenizer(t)["input_ids"]) in pool_ids for t in down.train_texts + down.eval_texts)
    assert all(len(tokenizer(t)["input_ids"]) > 2 for t in down.train_texts + down.eval_texts)


def test_class_names_are_mapped_in_sorted_order_and_a_missing_label_names_its_row(tmp_path):
    task = tmp_path / "task.csv"
    rows = [(f"review {i} of a film", ["pos", "neg"][i % 2]) for i in range(40)]
    task.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    args = DataArguments(downstream=str(task), num_train=30, num_eval=10)
    down = load_downstream(args, seed=0, pool=[])
    assert down.classes == ["neg", "pos"] and down.num_labels == 2
    by_text = dict(rows)
    assert all(["neg", "pos"][y] == by_text[t] for t, y in zip(down.train_texts, down.train_labels, strict=True))
    gap = tmp_path / "gap.csv"  # a gap in an integer column: pandas reads the column as floats
    gap.write_text("text,label\n" + "".join(f"text {i},{'' if i == 7 else i % 3}\n" for i in range(40)))
    with pytest.raises(DataError, match=r"row 7 has label None; expected an integer >= 0 or a class name"):
        load_downstream(DataArguments(downstream=str(gap), num_train=30, num_eval=10), seed=0, pool=[])


def test_a_pool_of_csv_txt_and_jsonl_files_loads_as_one_text_column(tmp_path):
    # datasets types the csv column string and the others large_string; concatenating them failed before.
    from tmi_nlp.data.loading import load_text_dataset

    (tmp_path / "p.csv").write_text("text\nfirst csv text\nsecond csv text\n")
    (tmp_path / "p.txt").write_text("a plain line\nanother plain line\n")
    (tmp_path / "p.jsonl").write_text('{"text": "json one"}\n{"text": "json two"}\n')
    spec = ",".join(str(tmp_path / name) for name in ("p.csv", "p.txt", "p.jsonl"))
    dataset = load_text_dataset(spec, "train", "data.pool")
    assert list(dataset["text"]) == ["first csv text", "second csv text", "a plain line", "another plain line",
                                     "json one", "json two"]


def test_a_home_relative_data_path_is_expanded_and_no_copy_is_left_in_the_datasets_cache(tmp_path, monkeypatch):
    import datasets.config

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "pool.txt").write_text("\n".join(synthetic_pool(30, seed=1)) + "\n")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    pool, _ = load_pool(DataArguments(pool="~/pool.txt", pool_size=20), seed=0)
    assert len(pool) == 20
    cache = tmp_path / "datasets-cache"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))
