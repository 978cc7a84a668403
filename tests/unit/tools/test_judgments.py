"""Concepts in the catalog and marks as judgments and training data: the migration, duplicate and contradicting
marks, a concept with only negatives, a deleted concept, held-back marks, feedback pairs and hard negatives in
dataset versions and training items."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tools.catalog import MIGRATIONS, Catalog, ConceptExistsError, ImageRecord
from tools.datasets import create_dataset, held_out_ids, split_items
from tools.judgments import read_judgments, training_feedback
from tools.modelops import training_items
from tools.training.data import batch_partners


def _img(i: int, label: str, split: str | None = None) -> ImageRecord:
    return ImageRecord(id=f"{i:064x}", uri=f"/x/{label}{i}.jpg", width=8, height=8, bands=3, format="JPEG",
                       mode="RGB", source="s", status="ok", labels=[label],
                       metadata={"split": split} if split else {})


def iid(i: int) -> str:
    return f"{i:064x}"


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    c = Catalog(tmp_path / "c.db")
    c.add_images([_img(i, "beach" if i < 10 else "forest", "val" if i % 5 == 4 else "train") for i in range(20)])
    c.add_captions([(iid(i), f"a photo of {'beach' if i < 10 else 'forest'} {i}", "human", None) for i in range(20)])
    return c


def test_migration_keeps_marks_and_captions(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:4]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 4")
    conn.execute("INSERT INTO images (id, uri, status, added_at) VALUES (?, '/x/a.jpg', 'ok', 0)", (iid(1),))
    conn.execute("INSERT INTO captions (image_id, text, source, created_at) VALUES (?, 'a beach', 'human', 0)",
                 (iid(1),))
    conn.execute("INSERT INTO feedback (query_id, query, image_id, relevant, created_at) VALUES "
                 "('q-1', 'beach', ?, 1, 0)", (iid(1),))
    conn.commit()
    conn.close()
    cat = Catalog(path)
    assert cat.query("PRAGMA user_version")[0][0] == len(MIGRATIONS)
    assert cat.captions_of(iid(1)) == ["a beach"] and len(cat.feedback()) == 1
    assert cat.add_captions([(iid(1), "beach", "feedback", "mark")]) == 1  # the new caption source
    a = cat.create_concept("A")
    b = cat.create_concept("B")
    cat.label_concept(a["id"], [(iid(1), True)])
    cat.label_concept(b["id"], [(iid(1), False)])  # the same image in two concepts and one search: three marks
    assert len(cat.feedback()) == 3


def test_concept_names_are_unique_without_case(cat: Catalog) -> None:
    c = cat.create_concept("Vineyards", texts=["vineyard rows"])
    with pytest.raises(ConceptExistsError):
        cat.create_concept("vineyards")
    assert cat.find_concept("VINEYARDS")["id"] == c["id"] == cat.find_concept(c["id"])["id"]  # type: ignore[index]


def test_duplicate_marks_last_one_wins_and_counts_once(cat: Catalog) -> None:
    c = cat.create_concept("beaches")
    first = cat.label_concept(c["id"], [(iid(0), True)])
    again = cat.label_concept(c["id"], [(iid(0), True)])
    assert first == again and cat.get_concept(c["id"])["labels"] == {"relevant": 1, "not_relevant": 0}  # type: ignore[index]
    # contradicting marks in one call and across calls: the last one wins, one mark per image
    cat.label_concept(c["id"], [(iid(1), True), (iid(1), False), (iid(2), False)])
    cat.label_concept(c["id"], [(iid(2), True)])
    assert cat.concept_marks(c["id"]) == {iid(0): True, iid(1): False, iid(2): True}
    assert cat.get_concept(c["id"])["labels"] == {"relevant": 2, "not_relevant": 1}  # type: ignore[index]


def test_contradicting_search_and_concept_marks_resolve_to_the_newest(cat: Catalog) -> None:
    cat.add_feedback(image_id=iid(3), relevant=True, query="Beaches", query_id="q-1")
    c = cat.create_concept("beaches")
    cat.label_concept(c["id"], [(iid(3), False)])  # later, on the same text: the newer word wins
    cat.add_feedback(image_id=iid(5), relevant=True, query_id="q-2")  # no query text: cannot be judged
    found = read_judgments(cat)
    assert [(j.image_id, j.relevant) for j in found.judgments] == [(iid(3), False)]
    assert found.superseded == 1 and found.without_text == 1 and list(found.queries) == ["beaches"]


def test_a_deleted_concept_takes_its_marks_but_keeps_those_a_model_used(cat: Catalog) -> None:
    c = cat.create_concept("beaches")
    ids = cat.label_concept(c["id"], [(iid(0), True), (iid(1), True), (iid(11), False)])
    cat.set_feedback_used(ids[:1], "mv-x")
    assert cat.delete_concept(c["id"]) == {"marks_deleted": 2, "marks_kept_as_lineage": 1}
    assert cat.get_concept(c["id"]) is None and cat.find_concept("beaches") is None
    found = read_judgments(cat)
    assert found.judgments == [] and found.deleted_concept == 1
    with pytest.raises(LookupError):
        cat.label_concept(c["id"], [(iid(0), True)])
    assert cat.create_concept("Beaches")["labels"] == {"relevant": 0, "not_relevant": 0}  # the name is free again


def test_held_back_marks_judge_and_train_marks_teach(cat: Catalog) -> None:
    c = cat.create_concept("beaches")
    cat.label_concept(c["id"], [(iid(0), True), (iid(4), True), (iid(10), False), (iid(14), False)])
    assert held_out_ids(cat) == {iid(i) for i in range(20) if i % 5 == 4}  # by the manifest's split, unplaced
    ds = create_dataset(cat, val_frac=0.0, test_frac=0.0)
    feedback = ds["params"]["feedback"]
    assert feedback["pairs"] == [[iid(0), "beaches"]] and feedback["hard_negatives"] == [[iid(10), "beaches"]]
    assert cat.captions_of(iid(0), "feedback") == ["beaches"] and cat.captions_of(iid(4), "feedback") == []
    held = read_judgments(cat).held_back(set(cat.dataset_split(ds["id"], "train")))
    assert sorted(j.image_id for j in held.judgments) == [iid(4), iid(14)]
    # a feedback caption joins the image's best (human) captions instead of replacing them
    item = next(it for it in split_items(cat, ds["id"], "train") if it.image_id == iid(0))
    assert item.captions == ["a photo of beach 0", "beaches"]
    # the same marks make the same version; a new mark a new one; a mark turned not relevant takes its caption
    assert create_dataset(cat, val_frac=0.0, test_frac=0.0)["id"] == ds["id"]
    cat.label_concept(c["id"], [(iid(0), False), (iid(1), True)])
    ds2 = create_dataset(cat, val_frac=0.0, test_frac=0.0)
    assert ds2["id"] != ds["id"]
    assert cat.captions_of(iid(0), "feedback") == [] and cat.captions_of(iid(1), "feedback") == ["beaches"]
    assert not cat.images_without_caption(None)  # feedback captions never count as "captioned" or not


def test_a_concept_with_only_negatives_gives_hard_negatives_without_partners(cat: Catalog) -> None:
    c = cat.create_concept("beaches")
    cat.label_concept(c["id"], [(iid(10), False), (iid(11), False)])
    ds = create_dataset(cat, val_frac=0.0, test_frac=0.0)
    found = training_feedback(read_judgments(cat), set(cat.dataset_split(ds["id"], "train")))
    assert found.pairs == [] and len(found.hard_negatives) == 2
    items = training_items(cat, ds["id"])
    assert all(it.batch_with is None for it in items)  # no positive of that text to batch them with
    assert len(items) == 16  # the train split (every fifth image is val by its manifest split)


def test_training_items_pair_marks_and_batch_hard_negatives_with_positives(cat: Catalog) -> None:
    c = cat.create_concept("beaches")
    cat.label_concept(c["id"], [(iid(0), True), (iid(1), True), (iid(10), False), (iid(11), False),
                                (iid(12), False)])
    ds = create_dataset(cat, val_frac=0.0, test_frac=0.0)
    items = training_items(cat, ds["id"])
    pairs = [n for n, it in enumerate(items) if it.captions == ["beaches"]]
    assert len(items) == 16 + 2 and len(pairs) == 2
    partners = {it.image_path: it.batch_with for it in items if it.batch_with is not None}
    assert partners == {"/x/forest10.jpg": pairs[0], "/x/forest11.jpg": pairs[1], "/x/forest12.jpg": pairs[0]}
    assert training_items(cat, ds["id"], caption_sources=["human"]) == [  # feedback not asked for
        dataclasses.replace(it, captions=it.captions[:1], batch_with=None) for it in items[:16]]


@pytest.mark.parametrize("seed", range(5))
def test_batch_partners_meet_their_positive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, batch = 40, 8
    order = rng.permutation(n)
    partners = np.full(n, -1)
    movers = rng.choice(np.arange(10, n), 6, replace=False)
    partners[movers] = rng.choice(np.arange(10), 6)
    out = batch_partners(order, partners, batch, usable=n)
    assert sorted(out.tolist()) == list(range(n))  # a permutation
    pos = {int(v): i for i, v in enumerate(out)}
    for m in movers:
        assert pos[int(m)] // batch == pos[int(partners[m])] // batch
    assert np.array_equal(batch_partners(order, np.full(n, -1), batch, n), order)  # no partners: unchanged
