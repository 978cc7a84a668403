"""The catalog's planner decision log and the relevance feedback given on search results."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from tools.catalog.connection import CatalogBase


class JournalMixin(CatalogBase):
    """The planner's decisions (with evidence and outcome) and users' relevant / not relevant marks."""

    # -- planner decisions and user feedback -----------------------------------------------------

    def add_decision(self, action: str, reason: str, evidence: dict[str, Any], *, actor: str = "planner",
                     outcome: str | None = None) -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO decisions (action, reason, evidence, actor, outcome, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (action, reason, json.dumps(evidence, default=str), actor, outcome, time.time()),
            )
        return int(cur.lastrowid or 0)

    def set_decision_outcome(self, decision_id: int, outcome: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE decisions SET outcome = ? WHERE id = ?", (outcome, decision_id))

    def decisions(self, limit: int = 50, action: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM decisions", []
        if action is not None:
            sql += " WHERE action = ?"
            params.append(action)
        rows = self.query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [dict(r) | {"evidence": json.loads(r["evidence"])} for r in rows]

    def add_feedback(self, *, image_id: str, relevant: bool, query: str | None = None,
                     query_id: str | None = None, model: str | None = None, concept_id: str | None = None) -> int:
        """Record a mark on a search result (or on a concept's image); one mark per (concept, query id, image):
        a repeat replaces it (same id, counted once; the last one wins) and is no longer marked as used."""
        with self.transaction() as conn:
            return mark(conn, image_id=image_id, relevant=relevant, query=query, query_id=query_id, model=model,
                        concept_id=concept_id)

    def feedback(self, *, unused_only: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM feedback" + (" WHERE used_in IS NULL" if unused_only else "") + " ORDER BY id"
        return [dict(r) for r in self.query(sql)]

    def set_feedback_used(self, feedback_ids: Sequence[int], model_version: str) -> int:
        """Record that ``model_version`` was trained with these marks (``used_in``); returns how many."""
        ids = list(feedback_ids)
        with self.transaction() as conn:
            for start in range(0, len(ids), 900):
                chunk = ids[start:start + 900]
                conn.execute(f"UPDATE feedback SET used_in = ? WHERE id IN ({','.join('?' * len(chunk))})",
                             [model_version, *chunk])
        return len(ids)


def mark(conn: sqlite3.Connection, *, image_id: str, relevant: bool, query: str | None, query_id: str | None,
         model: str | None, concept_id: str | None) -> int:
    """Insert or replace one mark inside an open transaction; returns its id."""
    found = conn.execute("SELECT id, relevant FROM feedback WHERE COALESCE(concept_id, '') = ? AND "
                         "COALESCE(query_id, '') = ? AND image_id = ?",
                         (concept_id or "", query_id or "", image_id)).fetchone()
    if found is not None:
        changed = int(found["relevant"]) != int(relevant)
        conn.execute("UPDATE feedback SET relevant = ?, query = COALESCE(?, query), model = COALESCE(?, model), "
                     "created_at = ?, used_in = CASE WHEN ? THEN NULL ELSE used_in END WHERE id = ?",
                     (int(relevant), query, model, time.time(), int(changed), found["id"]))
        return int(found["id"])
    cur = conn.execute(
        "INSERT INTO feedback (query_id, query, image_id, relevant, model, concept_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (query_id, query, image_id, int(relevant), model, concept_id, time.time()),
    )
    return int(cur.lastrowid or 0)
