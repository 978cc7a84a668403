"""The catalog's dataset versions and each image's split in them."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from tools.catalog.connection import CatalogBase


class DatasetsMixin(CatalogBase):
    """Dataset versions (id = hash of parameters and items) and their train / val / test items."""

    # -- datasets ---------------------------------------------------------------------------------

    def create_dataset(
        self, dataset_id: str, name: str, params: dict[str, Any], items: Sequence[tuple[str, str]]
    ) -> bool:
        """Record a dataset version with its (image_id, split) items; False if that id exists already."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM datasets WHERE id = ?", (dataset_id,)).fetchone():
                return False
            conn.execute(
                "INSERT INTO datasets (id, name, params, created_at) VALUES (?, ?, ?, ?)",
                (dataset_id, name, json.dumps(params, sort_keys=True), time.time()),
            )
            conn.executemany(
                "INSERT INTO dataset_items (dataset_id, image_id, split) VALUES (?, ?, ?)",
                [(dataset_id, image_id, split) for image_id, split in items],
            )
        return True

    def get_dataset(self, dataset_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM datasets WHERE id = ?", (dataset_id,))
        if not rows:
            return None
        counts = {
            r["split"]: r["n"]
            for r in self.query(
                "SELECT split, COUNT(*) AS n FROM dataset_items WHERE dataset_id = ? GROUP BY split",
                (dataset_id,),
            )
        }
        row = rows[0]
        return {
            "id": row["id"],
            "name": row["name"],
            "params": json.loads(row["params"]),
            "created_at": row["created_at"],
            "splits": {s: counts.get(s, 0) for s in ("train", "val", "test")},
        }

    def list_datasets(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT id FROM datasets ORDER BY created_at, id")
        return [d for d in (self.get_dataset(r["id"]) for r in rows) if d is not None]

    def latest_dataset(self) -> dict[str, Any] | None:
        rows = self.query("SELECT id FROM datasets ORDER BY created_at DESC, id DESC LIMIT 1")
        return self.get_dataset(rows[0]["id"]) if rows else None

    def dataset_split(self, dataset_id: str, split: str) -> list[str]:
        """Image ids in one split of a dataset version, in id order."""
        return [r["image_id"] for r in self.query(
            "SELECT image_id FROM dataset_items WHERE dataset_id = ? AND split = ? ORDER BY image_id",
            (dataset_id, split),
        )]
