"""The catalog's images, their labels and their captions."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from tools.catalog.connection import CatalogBase
from tools.catalog.records import ImageRecord, image_from_row
from tools.catalog.schema import CAPTION_SOURCES


class ImagesMixin(CatalogBase):
    """Images (accepted and rejected), labels and captions."""

    # -- images -----------------------------------------------------------------------------------

    def image_uri_index(self) -> dict[str, str]:
        """Map of uri -> image id for every catalogued file (lets ingestion skip unchanged paths)."""
        return {row["uri"]: row["id"] for row in self.query("SELECT id, uri FROM images")}

    def image_ids(self, status: str | None = "ok") -> set[str]:
        if status is None:
            return {r["id"] for r in self.query("SELECT id FROM images")}
        return {r["id"] for r in self.query("SELECT id FROM images WHERE status = ?", (status,))}

    def add_labels(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Attach (image_id, label) pairs; existing pairs are ignored. Returns how many were new."""
        added = 0
        with self.transaction() as conn:
            for image_id, label in pairs:
                added += conn.execute(
                    "INSERT OR IGNORE INTO labels (image_id, label) VALUES (?, ?)", (image_id, label)
                ).rowcount
        return added

    def get_image(self, image_id: str) -> ImageRecord | None:
        rows = self.query("SELECT * FROM images WHERE id = ?", (image_id,))
        if not rows:
            return None
        return image_from_row(rows[0], self.labels_of(image_id))

    def has_image(self, image_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM images WHERE id = ?", (image_id,)))

    def ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Accepted image ids that start with ``prefix`` (hex), at most ``limit``."""
        # id >= prefix AND id < prefix + '~' walks the primary key index ('~' sorts after every hex digit)
        rows = self.query("SELECT id FROM images WHERE id >= ? AND id < ? AND status = 'ok' ORDER BY id LIMIT ?",
                          (prefix, prefix + "~", limit))
        return [r["id"] for r in rows]

    def add_images(self, records: Iterable[ImageRecord]) -> int:
        """Insert images (and their labels) not yet present; returns how many rows were new."""
        return len(self.insert_images(records))

    def insert_images(self, records: Iterable[ImageRecord]) -> set[str]:
        """Insert images (and their labels) not yet present; returns the ids this call inserted (a concurrent
        ingestion of the same files inserts each id once, and only one of them reports it)."""
        inserted: set[str] = set()
        now = time.time()
        with self.transaction() as conn:
            for r in records:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO images (id, uri, width, height, bands, format, mode, source, "
                    "bounds, crs, metadata, status, reason, added_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.id, r.uri, r.width, r.height, r.bands, r.format, r.mode, r.source,
                        json.dumps(r.bounds) if r.bounds is not None else None, r.crs,
                        json.dumps(r.metadata), r.status, r.reason, now,
                    ),
                )
                if cur.rowcount:
                    inserted.add(r.id)
                for label in r.labels:
                    conn.execute(
                        "INSERT OR IGNORE INTO labels (image_id, label) VALUES (?, ?)", (r.id, label)
                    )
        return inserted

    def get_images(self, image_ids: Sequence[str]) -> dict[str, ImageRecord]:
        """Many images at once (with their labels), by id; unknown ids are left out. Two queries per 900 ids."""
        out: dict[str, ImageRecord] = {}
        ids = list(dict.fromkeys(image_ids))
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            rows = self.query(f"SELECT * FROM images WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            labels = self.labels_for([row["id"] for row in rows])
            out.update((row["id"], image_from_row(row, labels.get(row["id"], []))) for row in rows)
        return out

    def iter_images(
        self,
        *,
        status: str | None = "ok",
        source: str | None = None,
        ids: Sequence[str] | None = None,
        batch_size: int = 1000,
    ) -> Iterator[ImageRecord]:
        """Yield images (with their labels) in id order, a page at a time so memory stays flat."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if source is not None:
            where.append("source = ?")
            params.append(source)
        id_list = list(ids) if ids is not None else None
        last = ""
        while True:
            clause = " AND ".join([*where, "id > ?"])
            if id_list is not None:
                chunk = id_list[:batch_size]
                id_list = id_list[batch_size:]
                if not chunk:
                    return
                marks = ",".join("?" * len(chunk))
                rows = self.query(
                    f"SELECT * FROM images WHERE id IN ({marks}) ORDER BY id", chunk
                )
            else:
                rows = self.query(
                    f"SELECT * FROM images WHERE {clause} ORDER BY id LIMIT ?",
                    [*params, last, batch_size],
                )
                if not rows:
                    return
                last = rows[-1]["id"]
            labels = self.labels_for([row["id"] for row in rows])
            for row in rows:
                yield image_from_row(row, labels.get(row["id"], []))

    def count_images(self, status: str | None = "ok", source: str | None = None) -> int:
        sql, params = "SELECT COUNT(*) FROM images WHERE 1=1", []
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        return int(self.query(sql, params)[0][0])

    def rejected_images(self) -> list[ImageRecord]:
        return list(self.iter_images(status="rejected"))

    def labels_of(self, image_id: str) -> list[str]:
        return [r["label"] for r in self.query(
            "SELECT label FROM labels WHERE image_id = ? ORDER BY label", (image_id,)
        )]

    def labels_for(self, image_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for start in range(0, len(image_ids), 900):
            chunk = list(image_ids[start:start + 900])
            marks = ",".join("?" * len(chunk))
            for r in self.query(
                f"SELECT image_id, label FROM labels WHERE image_id IN ({marks}) ORDER BY label", chunk
            ):
                out.setdefault(r["image_id"], []).append(r["label"])
        return out

    def label_counts(self) -> dict[str, int]:
        rows = self.query(
            "SELECT l.label, COUNT(*) AS n FROM labels l JOIN images i ON i.id = l.image_id "
            "WHERE i.status = 'ok' GROUP BY l.label ORDER BY l.label"
        )
        return {r["label"]: r["n"] for r in rows}

    def sources(self) -> dict[str, int]:
        rows = self.query(
            "SELECT source, COUNT(*) AS n FROM images WHERE status = 'ok' GROUP BY source ORDER BY source"
        )
        return {r["source"]: r["n"] for r in rows}

    # -- captions ---------------------------------------------------------------------------------

    def add_captions(
        self, rows: Iterable[tuple[str, str, str, str | None]]
    ) -> int:
        """Insert (image_id, text, source, model) captions; exact repeats are ignored. Returns new rows."""
        added = 0
        now = time.time()
        with self.transaction() as conn:
            for image_id, text, source, model in rows:
                if source not in CAPTION_SOURCES:
                    raise ValueError(f"unknown caption source {source!r}; valid: {', '.join(CAPTION_SOURCES)}")
                text = text.strip()
                if not text:
                    continue
                cur = conn.execute(
                    "INSERT OR IGNORE INTO captions (image_id, text, source, model, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (image_id, text, source, model, now),
                )
                added += cur.rowcount
        return added

    def captions_of(self, image_id: str, source: str | None = None) -> list[str]:
        sql, params = "SELECT text FROM captions WHERE image_id = ?", [image_id]
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        return [r["text"] for r in self.query(sql + " ORDER BY id", params)]

    def captions_for(
        self, image_ids: Sequence[str], sources: Sequence[str] | None = None
    ) -> dict[str, list[str]]:
        """Captions of many images at once, optionally only from the given sources."""
        out: dict[str, list[str]] = {}
        extra, extra_params = "", []
        if sources:
            extra = f" AND source IN ({','.join('?' * len(sources))})"
            extra_params = list(sources)
        for start in range(0, len(image_ids), 900):
            chunk = list(image_ids[start:start + 900])
            marks = ",".join("?" * len(chunk))
            for r in self.query(
                f"SELECT image_id, text FROM captions WHERE image_id IN ({marks}){extra} ORDER BY id",
                [*chunk, *extra_params],
            ):
                out.setdefault(r["image_id"], []).append(r["text"])
        return out

    def caption_rows_for(self, image_ids: Sequence[str]) -> dict[str, list[tuple[str, str, str | None]]]:
        """(text, source, model) of every caption of many images at once."""
        out: dict[str, list[tuple[str, str, str | None]]] = {}
        for start in range(0, len(image_ids), 900):
            chunk = list(image_ids[start:start + 900])
            for r in self.query(f"SELECT image_id, text, source, model FROM captions WHERE image_id IN "
                                f"({','.join('?' * len(chunk))}) ORDER BY id", chunk):
                out.setdefault(r["image_id"], []).append((r["text"], r["source"], r["model"]))
        return out

    def images_with_caption_from(self, sources: Sequence[str]) -> set[str]:
        """Ids of images with at least one caption from one of ``sources``."""
        marks = ",".join("?" * len(sources))
        return {r["image_id"] for r in self.query(
            f"SELECT DISTINCT image_id FROM captions WHERE source IN ({marks})", list(sources))}

    def images_without_caption(
        self, source: str | None, limit: int | None = None
    ) -> list[str]:
        """Ids of accepted images with no caption from ``source`` (``None``: from any source but ``feedback``,
        whose captions are additions to a description, not one)."""
        match = " AND c.source != 'feedback'" if source is None else " AND c.source = ?"
        sql = (
            "SELECT i.id FROM images i WHERE i.status = 'ok' AND NOT EXISTS "
            f"(SELECT 1 FROM captions c WHERE c.image_id = i.id{match}) ORDER BY i.id"
        )
        params: list[Any] = [] if source is None else [source]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [r["id"] for r in self.query(sql, params)]

    def count_uncaptioned(self) -> int:
        """Accepted images with no caption from any source (feedback captions do not count)."""
        return int(self.query(
            "SELECT COUNT(*) FROM images i WHERE i.status = 'ok' AND NOT EXISTS "
            "(SELECT 1 FROM captions c WHERE c.image_id = i.id AND c.source != 'feedback')"
        )[0][0])

    def caption_counts(self) -> dict[str, int]:
        rows = self.query("SELECT source, COUNT(*) AS n FROM captions GROUP BY source ORDER BY source")
        return {r["source"]: r["n"] for r in rows}
