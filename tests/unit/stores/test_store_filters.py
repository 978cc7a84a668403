"""The shared filter language: parsing, reference semantics, bbox, and both translations (SQL escaping)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tools.stores.filters import (
    ASTRA_MAX_IN_VALUES,
    And,
    Cmp,
    FilterError,
    bbox_filter,
    fields_of,
    matches,
    parse_filter,
    sql_literal,
    to_astra_filter,
    to_lance_sql,
)


def test_parse_builds_a_tree() -> None:
    assert parse_filter(None) is None
    assert parse_filter({"label": "beach"}) == Cmp("label", "eq", "beach")
    node = parse_filter({"label": {"$in": ["a", "b"]}, "year": {"$gte": 2020, "$lt": 2022}})
    assert node == And((Cmp("label", "in", ("a", "b")), And((Cmp("year", "gte", 2020), Cmp("year", "lt", 2022)))))
    assert fields_of(node) == {"label", "year"}


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ({}, "empty filter"),
        ({"label": {"$regex": "b.*"}}, "unknown operator"),
        ({"$nor": [{"a": 1}]}, "unknown top-level operator"),
        ({"$and": []}, "non-empty list"),
        ({"label": {"$in": "beach"}}, "list of values"),
        ({"label": {"$in": []}}, "non-empty list"),
        ({"year": {"$gt": "2020"}}, "needs a number"),
        ({"year": {"$gt": True}}, "needs a number"),
        ({"tags": ["a", "b"]}, "only allowed with \\$in"),
        ({"bounds.minx": 1}, "invalid field name"),
        ({"label; DROP": 1}, "invalid field name"),
        ({"x": None}, "unsupported literal"),
        ({"x": float("nan")}, "finite"),
        ({"x": {}}, "empty operator"),
        ("label = 'x'", "a filter is a dict"),
    ],
)
def test_invalid_filters_are_refused(flt: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(flt)


META: dict[str, Any] = {"label": "beach", "year": 2020, "cloud": 0.3, "tags": ["sand", "sea"], "ok": True}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"label": "beach"}, True),
        ({"label": "Beach"}, False),
        ({"tags": "sea"}, True),  # equality with a list field: contains
        ({"tags": {"$in": ["x", "sand"]}}, True),
        ({"tags": {"$nin": ["x", "sand"]}}, False),
        ({"tags": {"$ne": "sea"}}, False),
        ({"year": 2020.0}, True),  # numbers compare as numbers
        ({"year": "2020"}, False),  # ...but not with strings
        ({"ok": 1}, False),  # booleans are not numbers
        ({"ok": True}, True),
        ({"missing": {"$ne": "x"}}, True),  # a missing key matches $ne / $nin
        ({"missing": {"$nin": ["x"]}}, True),
        ({"missing": {"$lt": 5}}, False),
        ({"label": {"$gt": 1}}, False),  # ranges only match numbers
        ({"cloud": {"$gt": 0.25, "$lte": 0.3}}, True),
        ({"$or": [{"label": "forest"}, {"year": {"$lt": 2021}}]}, True),
        ({"$and": [{"label": "beach"}, {"year": 2019}]}, False),
    ],
)
def test_reference_semantics(flt: dict[str, Any], expected: bool) -> None:
    assert matches(flt, META) is expected


def test_bbox_filter_is_an_intersection_test() -> None:
    box = bbox_filter(0.0, 0.0, 10.0, 10.0)

    def tile(minx: float, miny: float, maxx: float, maxy: float) -> dict[str, float]:
        return {"minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy}

    assert matches(box, tile(2, 2, 3, 3))  # inside
    assert matches(box, tile(-5, -5, 20, 20))  # contains the box
    assert matches(box, tile(9, 9, 11, 11))  # overlaps a corner
    assert matches(box, tile(10, 0, 12, 1))  # touches an edge
    assert not matches(box, tile(10.5, 0, 12, 1))  # right of it
    assert not matches(box, tile(0, -3, 1, -0.1))  # below it
    assert not matches(box, {"label": "no bounds"})
    custom = bbox_filter(0, 0, 1, 1, fields=("west", "south", "east", "north"))
    assert matches(custom, {"west": 0.5, "south": 0.5, "east": 2.0, "north": 2.0})
    with pytest.raises(FilterError, match="empty box"):
        bbox_filter(5, 0, 1, 1)


def test_astra_translation_prefixes_and_splits_long_in_lists() -> None:
    assert to_astra_filter(None) == {}
    assert to_astra_filter({"label": "beach", "year": {"$gte": 2020}}) == {
        "$and": [{"metadata.label": "beach"}, {"metadata.year": {"$gte": 2020}}]
    }
    assert to_astra_filter({"$or": [{"a": 1}, {"b": {"$ne": "x"}}]}, prefix="") == {
        "$or": [{"a": 1}, {"b": {"$ne": "x"}}]
    }
    values = [f"v{i}" for i in range(ASTRA_MAX_IN_VALUES * 2 + 5)]
    split = to_astra_filter({"label": {"$in": values}})
    assert [len(p["metadata.label"]["$in"]) for p in split["$or"]] == [100, 100, 5]
    nin = to_astra_filter({"label": {"$nin": values}})
    assert len(nin["$and"]) == 3


FIELDS: dict[str, Any] = {"label": "str", "year": "int", "cloud": "float", "tags": "list", "ok": "bool"}


@pytest.mark.parametrize(
    ("flt", "sql"),
    [
        ({"label": "it's"}, "`label` = 'it''s'"),
        ({"label": {"$in": ["a", "b"]}}, "`label` IN ('a', 'b')"),
        ({"label": {"$ne": "a"}}, "(`label` IS NULL OR NOT (`label` = 'a'))"),
        ({"tags": "sea"}, "array_has(`tags`, 'sea')"),
        ({"tags": {"$in": ["a", "b"]}}, "array_has_any(`tags`, ['a', 'b'])"),
        ({"year": {"$gt": 2020.5}}, "`year` > 2020"),
        ({"year": {"$gte": 2020.5}}, "`year` >= 2021"),
        ({"year": 2020.0}, "`year` = 2020"),
        ({"year": 2020.5}, "FALSE"),
        ({"cloud": {"$lt": 1}}, "`cloud` < 1.0"),
        ({"ok": True}, "`ok` = TRUE"),
        ({"label": 5}, "FALSE"),  # type mismatch: never equal
        ({"label": {"$ne": 5}}, "TRUE"),
        ({"nope": "x"}, "FALSE"),  # no such column: no row has the key
        ({"nope": {"$nin": ["x"]}}, "TRUE"),
        ({"$or": [{"label": "a"}, {"ok": False}]}, "(`label` = 'a' OR `ok` = FALSE)"),
    ],
)
def test_lance_sql(flt: dict[str, Any], sql: str) -> None:
    assert to_lance_sql(flt, FIELDS) == sql


def test_sql_literals_cannot_break_out() -> None:
    assert sql_literal("x' OR '1'='1") == "'x'' OR ''1''=''1'"
    assert sql_literal(1e-5) == "1e-05"
    with pytest.raises(FilterError):
        sql_literal("nul\x00byte")


NASTY = [
    "x' OR '1'='1",
    "back\\slash",
    'double "quotes"',
    "semi; DROP TABLE t; --",
    "percent % and _ underscore",
    "new\nline",
    "unicode: é 北京 🌊",
    "'",
    "''",
    "trailing\\",
]


def test_nasty_strings_round_trip_through_lancedb(tmp_path: Path) -> None:
    from tools.stores.lance import LanceIndexes

    store = LanceIndexes(tmp_path).open("nasty", 4)
    vecs = np.eye(4, dtype=np.float32)[np.arange(len(NASTY)) % 4]
    ids = [f"id{n}" for n in range(len(NASTY))]
    store.upsert(ids, vecs, [{"label": s, "tags": [s]} for s in NASTY])
    for n, s in enumerate(NASTY):
        assert store.count({"label": s}) == 1, s
        assert store.count({"tags": s}) == 1, s
        assert [h.id for h in store.search(vecs[n], k=10, filter={"label": s})] == [ids[n]]
    assert store.count({"label": {"$in": NASTY}}) == len(NASTY)
    assert store.count({"label": "x"}) == 0
    assert store.count() == len(NASTY)  # nothing was dropped or rewritten
    ids_quoted = ["it's", "a'b'c"]
    store.upsert(ids_quoted, vecs[:2], [{}, {}])
    assert set(store.get(ids_quoted)) == set(ids_quoted)
    assert store.delete(["it's"]) == 1
