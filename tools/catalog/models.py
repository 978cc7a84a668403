"""The catalog's model versions, evaluations, vector-index versions and aliases."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tools.catalog.connection import CatalogBase


class ModelsMixin(CatalogBase):
    """Model versions with their lineage, evaluation results, index versions and the aliases naming the active ones."""

    # -- model versions and evaluations ----------------------------------------------------------------

    def add_model_version(
        self, *, arch: str, base: str, checkpoint: str, dataset_id: str | None, params: dict[str, Any],
        parent: str | None = None, model_id: str | None = None,
    ) -> str:
        """Record a trained candidate and return its id (``mv-YYYYmmdd-HHMMSS-xxxxxx``)."""
        model_id = model_id or f"mv-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO model_versions (id, arch, base, parent, dataset_id, checkpoint, params, status, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'candidate', ?)",
                (model_id, arch, base, parent, dataset_id, checkpoint, json.dumps(params, default=str),
                 time.time()),
            )
        return model_id

    def get_model_version(self, model_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM model_versions WHERE id = ?", (model_id,))
        if not rows:
            return None
        out = dict(rows[0])
        out["params"] = json.loads(out["params"])
        return out

    def list_model_versions(self, status: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT id FROM model_versions", []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(status)
        rows = self.query(sql + " ORDER BY created_at, id", params)
        return [m for m in (self.get_model_version(r["id"]) for r in rows) if m is not None]

    def promote_model(self, model_id: str) -> None:
        """Make ``model_id`` the active model; the previous one is retired. One transaction, after a snapshot
        of the catalog (``<home>/backups``)."""
        if self.get_model_version(model_id) is None:
            raise LookupError(f"unknown model version {model_id!r}")
        self.snapshot(f"pre-promote-{model_id}")
        with self.transaction() as conn:
            if not conn.execute("SELECT 1 FROM model_versions WHERE id = ?", (model_id,)).fetchone():
                raise LookupError(f"unknown model version {model_id!r}")
            conn.execute("UPDATE model_versions SET status = 'retired' WHERE status = 'active'")
            conn.execute("UPDATE model_versions SET status = 'active', promoted_at = ? WHERE id = ?",
                         (time.time(), model_id))
            conn.execute("INSERT OR REPLACE INTO aliases (name, target, updated_at) VALUES (?, ?, ?)",
                         ("active_model", model_id, time.time()))

    def set_model_status(self, model_id: str, status: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE model_versions SET status = ? WHERE id = ?", (status, model_id))

    def add_evaluation(self, *, model: str, dataset: str, split: str, kind: str, metrics: dict[str, Any]) -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO evaluations (model, dataset, split, kind, metrics, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (model, dataset, split, kind, json.dumps(metrics, default=float), time.time()),
            )
        return int(cur.lastrowid or 0)

    def evaluations(
        self, *, model: str | None = None, dataset: str | None = None, split: str | None = None,
        kind: str | None = None, limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Stored evaluation results, newest first."""
        where, params = [], []
        for col, val in (("model", model), ("dataset", dataset), ("split", split), ("kind", kind)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        sql = "SELECT * FROM evaluations" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self.query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [dict(r) | {"metrics": json.loads(r["metrics"])} for r in rows]

    # -- aliases, index versions -----------------------------------------------------------------

    def get_alias(self, name: str) -> str | None:
        rows = self.query("SELECT target FROM aliases WHERE name = ?", (name,))
        return rows[0]["target"] if rows else None

    def set_alias(self, name: str, target: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO aliases (name, target, updated_at) VALUES (?, ?, ?)",
                         (name, target, time.time()))

    def upsert_index(self, name: str, *, model: str, store: str, dim: int, state: str, count: int = 0) -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO indexes (name, model, store, dim, state, count, created_at, completed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET state = excluded.state, "
                "count = excluded.count, completed_at = excluded.completed_at",
                (name, model, store, dim, state, count, now, now if state == "complete" else None),
            )

    def get_index(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM indexes WHERE name = ?", (name,))
        return dict(rows[0]) if rows else None

    def list_indexes(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT * FROM indexes ORDER BY created_at")]
