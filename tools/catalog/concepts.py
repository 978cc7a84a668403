"""The catalog's concepts: named, saved searches (texts, example images, negatives) and the marks a user gave them."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from tools.catalog.connection import CatalogBase
from tools.catalog.journal import mark


class ConceptExistsError(ValueError):
    """A concept with that name (without regard to case) exists already."""


def _concept(row: sqlite3.Row, counts: dict[str, int]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "texts": json.loads(row["texts"]),
            "image_ids": json.loads(row["image_ids"]), "negative_texts": json.loads(row["negative_texts"]),
            "labels": {"relevant": counts.get("relevant", 0), "not_relevant": counts.get("not_relevant", 0)},
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


class ConceptsMixin(CatalogBase):
    """Concepts (id ``c-<hex>``, names unique without case) and their marks, kept in the feedback table."""

    def create_concept(self, name: str, *, texts: Sequence[str] = (), image_ids: Sequence[str] = (),
                       negative_texts: Sequence[str] = ()) -> dict[str, Any]:
        """A new concept; :class:`ConceptExistsError` when its name is taken (case does not count)."""
        name = name.strip()
        if not name:
            raise ValueError("a concept needs a name")
        concept_id, now = f"c-{uuid.uuid4().hex[:10]}", time.time()
        try:
            with self.transaction() as conn:
                conn.execute("INSERT INTO concepts (id, name, name_key, texts, image_ids, negative_texts, created_at, "
                             "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (concept_id, name, name.casefold(), json.dumps(list(texts)), json.dumps(list(image_ids)),
                              json.dumps(list(negative_texts)), now, now))
        except sqlite3.IntegrityError:
            raise ConceptExistsError(f"a concept named {name!r} exists already (names are unique without regard "
                                     "to case); label it, or delete it first") from None
        found = self.get_concept(concept_id)
        assert found is not None
        return found

    def get_concept(self, concept_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM concepts WHERE id = ?", (concept_id,))
        return _concept(rows[0], self._mark_counts(concept_id)) if rows else None

    def find_concept(self, id_or_name: str) -> dict[str, Any] | None:
        """A concept by its id or its name (without regard to case)."""
        rows = self.query("SELECT id FROM concepts WHERE id = ? OR name_key = ?",
                          (id_or_name.strip(), id_or_name.strip().casefold()))
        return self.get_concept(rows[0]["id"]) if rows else None

    def list_concepts(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM concepts ORDER BY created_at, id")
        counts: dict[str, dict[str, int]] = {}
        for r in self.query("SELECT concept_id, relevant, COUNT(*) AS n FROM feedback WHERE concept_id IS NOT NULL "
                            "GROUP BY concept_id, relevant"):
            counts.setdefault(r["concept_id"], {})["relevant" if r["relevant"] else "not_relevant"] = r["n"]
        return [_concept(r, counts.get(r["id"], {})) for r in rows]

    def update_concept(self, concept_id: str, **fields: Sequence[str]) -> None:
        """Replace some of ``texts``, ``image_ids``, ``negative_texts``."""
        allowed = {"texts", "image_ids", "negative_texts"}
        if set(fields) - allowed:
            raise ValueError(f"a concept's {sorted(set(fields) - allowed)} cannot be changed")
        with self.transaction() as conn:
            for key, value in fields.items():
                conn.execute(f"UPDATE concepts SET {key} = ?, updated_at = ? WHERE id = ?",
                             (json.dumps(list(value)), time.time(), concept_id))

    def delete_concept(self, concept_id: str) -> dict[str, int]:
        """Delete a concept and its marks; marks a model was already trained with stay (their ``used_in`` is the
        lineage of that model) but no longer belong to any living concept. Returns what went."""
        with self.transaction() as conn:
            if not conn.execute("SELECT 1 FROM concepts WHERE id = ?", (concept_id,)).fetchone():
                raise LookupError(f"no concept {concept_id!r}")
            kept = conn.execute("SELECT COUNT(*) FROM feedback WHERE concept_id = ? AND used_in IS NOT NULL",
                                (concept_id,)).fetchone()[0]
            deleted = conn.execute("DELETE FROM feedback WHERE concept_id = ? AND used_in IS NULL",
                                   (concept_id,)).rowcount
            conn.execute("DELETE FROM concepts WHERE id = ?", (concept_id,))
        return {"marks_deleted": int(deleted), "marks_kept_as_lineage": int(kept)}

    def label_concept(self, concept_id: str, labels: Iterable[tuple[str, bool]], *, model: str | None = None
                      ) -> list[int]:
        """Mark images relevant / not relevant for a concept, in one transaction; within the call and across
        calls the last mark of an image wins (one mark per image). Returns the mark ids."""
        ids: list[int] = []
        with self.transaction() as conn:
            row = conn.execute("SELECT name FROM concepts WHERE id = ?", (concept_id,)).fetchone()
            if row is None:
                raise LookupError(f"no concept {concept_id!r}")
            for image_id, relevant in labels:
                ids.append(mark(conn, image_id=image_id, relevant=relevant, query=row["name"], query_id=None,
                                model=model, concept_id=concept_id))
            conn.execute("UPDATE concepts SET updated_at = ? WHERE id = ?", (time.time(), concept_id))
        return ids

    def concept_marks(self, concept_id: str) -> dict[str, bool]:
        """Image id -> relevant, for each image marked for the concept."""
        return {r["image_id"]: bool(r["relevant"]) for r in self.query(
            "SELECT image_id, relevant FROM feedback WHERE concept_id = ? ORDER BY id", (concept_id,))}

    def _mark_counts(self, concept_id: str) -> dict[str, int]:
        rows = self.query("SELECT relevant, COUNT(*) AS n FROM feedback WHERE concept_id = ? GROUP BY relevant",
                          (concept_id,))
        return {("relevant" if r["relevant"] else "not_relevant"): int(r["n"]) for r in rows}


__all__ = ["ConceptExistsError", "ConceptsMixin"]
