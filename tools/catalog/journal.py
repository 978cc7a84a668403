"""The catalog's planner decision log and the relevance feedback given on search results."""

from __future__ import annotations

import json
import time
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
                     query_id: str | None = None, model: str | None = None) -> int:
        """Record a mark on a search result; one mark per (query id, image): a repeat replaces it (same id)."""
        with self.transaction() as conn:
            found = conn.execute("SELECT id FROM feedback WHERE COALESCE(query_id, '') = ? AND image_id = ?",
                                 (query_id or "", image_id)).fetchone()
            if found is not None:
                conn.execute("UPDATE feedback SET relevant = ?, query = COALESCE(?, query), "
                             "model = COALESCE(?, model), created_at = ? WHERE id = ?",
                             (int(relevant), query, model, time.time(), found["id"]))
                return int(found["id"])
            cur = conn.execute(
                "INSERT INTO feedback (query_id, query, image_id, relevant, model, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (query_id, query, image_id, int(relevant), model, time.time()),
            )
        return int(cur.lastrowid or 0)

    def feedback(self, *, unused_only: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM feedback" + (" WHERE used_in IS NULL" if unused_only else "") + " ORDER BY id"
        return [dict(r) for r in self.query(sql)]
