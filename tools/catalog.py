"""The catalog: SkyScout's memory in one SQLite database (images, labels, captions, datasets, jobs, ...).

SQLite runs in WAL mode so that readers keep working while a long job writes; each thread gets its own
connection; every write is a short transaction. The schema is versioned: ``MIGRATIONS[i]`` takes the
database from version ``i`` to ``i + 1`` and ``PRAGMA user_version`` records where it stands.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

CaptionSource = Literal["human", "template", "tags", "blip", "blip2"]
CAPTION_SOURCES: tuple[str, ...] = ("human", "template", "tags", "blip", "blip2")
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]

MIGRATIONS: list[str] = [
    # 0 -> 1: images, labels, captions, datasets, jobs.
    """
    CREATE TABLE images (
        id          TEXT PRIMARY KEY,              -- sha256 of the file bytes
        uri         TEXT NOT NULL,                 -- absolute path (or URL) where it was found
        width       INTEGER,
        height      INTEGER,
        bands       INTEGER,
        format      TEXT,
        mode        TEXT,
        source      TEXT,                          -- which collection it came from
        bounds      TEXT,                          -- JSON [minx, miny, maxx, maxy] or NULL
        crs         TEXT,
        metadata    TEXT NOT NULL DEFAULT '{}',    -- JSON: tags, manifest fields, split hint
        status      TEXT NOT NULL CHECK (status IN ('ok', 'rejected')),
        reason      TEXT,                          -- why it was rejected
        added_at    REAL NOT NULL
    );
    CREATE INDEX images_status ON images(status);
    CREATE INDEX images_uri ON images(uri);
    CREATE INDEX images_source ON images(source);
    CREATE TABLE labels (
        image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        label       TEXT NOT NULL,
        PRIMARY KEY (image_id, label)
    );
    CREATE INDEX labels_label ON labels(label);
    CREATE TABLE captions (
        id          INTEGER PRIMARY KEY,
        image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        text        TEXT NOT NULL,
        source      TEXT NOT NULL CHECK (source IN ('human', 'template', 'tags', 'blip', 'blip2')),
        model       TEXT,
        created_at  REAL NOT NULL,
        UNIQUE (image_id, source, text)
    );
    CREATE INDEX captions_image ON captions(image_id, source);
    CREATE TABLE datasets (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        params      TEXT NOT NULL,                 -- JSON: how the split was made
        created_at  REAL NOT NULL
    );
    CREATE TABLE dataset_items (
        dataset_id  TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        image_id    TEXT NOT NULL REFERENCES images(id),
        split       TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
        PRIMARY KEY (dataset_id, image_id)
    );
    CREATE INDEX dataset_items_split ON dataset_items(dataset_id, split);
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        done        INTEGER NOT NULL DEFAULT 0,
        total       INTEGER,
        params      TEXT NOT NULL DEFAULT '{}',
        result      TEXT,
        error       TEXT,
        created_at  REAL NOT NULL,
        started_at  REAL,
        updated_at  REAL,
        finished_at REAL
    );
    CREATE INDEX jobs_kind_state ON jobs(kind, state);
    """,
    # 1 -> 2: model versions, evaluations, index versions and aliases, planner decisions, search feedback.
    """
    CREATE TABLE model_versions (
        id          TEXT PRIMARY KEY,              -- mv-...
        arch        TEXT NOT NULL,                 -- open_clip architecture
        base        TEXT NOT NULL,                 -- the model spec training started from
        parent      TEXT,                          -- parent model version id, when it was one
        dataset_id  TEXT REFERENCES datasets(id),
        checkpoint  TEXT NOT NULL,                 -- path of the weights
        params      TEXT NOT NULL DEFAULT '{}',    -- hyper-parameters and training summary
        status      TEXT NOT NULL CHECK (status IN ('candidate', 'active', 'retired', 'rejected')),
        created_at  REAL NOT NULL,
        promoted_at REAL
    );
    CREATE TABLE evaluations (
        id          INTEGER PRIMARY KEY,
        model       TEXT NOT NULL,                 -- model version id or model spec
        dataset     TEXT NOT NULL,                 -- dataset version id or manifest path
        split       TEXT NOT NULL,
        kind        TEXT NOT NULL,                 -- zeroshot | retrieval
        metrics     TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE INDEX evaluations_model ON evaluations(model, dataset, split, kind);
    CREATE TABLE indexes (
        name        TEXT PRIMARY KEY,              -- table / collection name
        model       TEXT NOT NULL,
        store       TEXT NOT NULL,
        dim         INTEGER NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('building', 'complete', 'failed', 'dropped')),
        count       INTEGER NOT NULL DEFAULT 0,
        created_at  REAL NOT NULL,
        completed_at REAL
    );
    CREATE TABLE aliases (
        name        TEXT PRIMARY KEY,              -- e.g. active_model, active_index:lancedb
        target      TEXT NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE decisions (
        id          INTEGER PRIMARY KEY,
        action      TEXT NOT NULL,
        reason      TEXT NOT NULL,
        evidence    TEXT NOT NULL DEFAULT '{}',
        actor       TEXT NOT NULL DEFAULT 'planner',
        outcome     TEXT,
        created_at  REAL NOT NULL
    );
    CREATE TABLE feedback (
        id          INTEGER PRIMARY KEY,
        query_id    TEXT,
        query       TEXT,
        image_id    TEXT NOT NULL,
        relevant    INTEGER NOT NULL,
        model       TEXT,
        used_in     TEXT,                          -- model version trained with it, once used
        created_at  REAL NOT NULL
    );
    """,
]


@dataclass(frozen=True)
class ImageRecord:
    """One catalogued image (accepted or rejected)."""

    id: str
    uri: str
    width: int | None
    height: int | None
    bands: int | None
    format: str | None
    mode: str | None
    source: str | None
    status: str
    reason: str | None = None
    bounds: list[float] | None = None
    crs: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    """A durable record of long work: kind, state, progress, parameters, outcome."""

    id: str
    kind: str
    state: str
    done: int
    total: int | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    started_at: float | None
    updated_at: float | None
    finished_at: float | None


def _image_from_row(row: sqlite3.Row, labels: list[str] | None = None) -> ImageRecord:
    return ImageRecord(
        id=row["id"],
        uri=row["uri"],
        width=row["width"],
        height=row["height"],
        bands=row["bands"],
        format=row["format"],
        mode=row["mode"],
        source=row["source"],
        status=row["status"],
        reason=row["reason"],
        bounds=json.loads(row["bounds"]) if row["bounds"] else None,
        crs=row["crs"],
        metadata=json.loads(row["metadata"] or "{}"),
        labels=labels or [],
    )


def _job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        state=row["state"],
        done=row["done"],
        total=row["total"],
        params=json.loads(row["params"] or "{}"),
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


class Catalog:
    """Typed access to the catalog database. Safe to share between threads (one connection each)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._migrate()

    # -- connections and schema -------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN ourselves, so a transaction is exactly a `with` block.
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block as one write transaction (BEGIN IMMEDIATE: writers queue, readers go on)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read-only query and return all rows."""
        return self._conn().execute(sql, params).fetchall()

    @property
    def schema_version(self) -> int:
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"catalog {self.path} has schema version {version}, newer than this SkyScout "
                    f"({len(MIGRATIONS)}); upgrade SkyScout or point SKYSCOUT_HOME elsewhere"
                )
            for target in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target + 1}")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

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
        return _image_from_row(rows[0], self.labels_of(image_id))

    def has_image(self, image_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM images WHERE id = ?", (image_id,)))

    def add_images(self, records: Iterable[ImageRecord]) -> int:
        """Insert images (and their labels) not yet present; returns how many rows were new."""
        added = 0
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
                added += cur.rowcount
                for label in r.labels:
                    conn.execute(
                        "INSERT OR IGNORE INTO labels (image_id, label) VALUES (?, ?)", (r.id, label)
                    )
        return added

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
                yield _image_from_row(row, labels.get(row["id"], []))

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

    def images_without_caption(
        self, source: str | None, limit: int | None = None
    ) -> list[str]:
        """Ids of accepted images with no caption from ``source`` (``None``: from any source)."""
        match = "" if source is None else " AND c.source = ?"
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
        """Accepted images with no caption from any source."""
        return int(self.query(
            "SELECT COUNT(*) FROM images i WHERE i.status = 'ok' AND NOT EXISTS "
            "(SELECT 1 FROM captions c WHERE c.image_id = i.id)"
        )[0][0])

    def caption_counts(self) -> dict[str, int]:
        rows = self.query("SELECT source, COUNT(*) AS n FROM captions GROUP BY source ORDER BY source")
        return {r["source"]: r["n"] for r in rows}

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
        """Make ``model_id`` the active model; the previous one is retired. One transaction."""
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
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO feedback (query_id, query, image_id, relevant, model, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (query_id, query, image_id, int(relevant), model, time.time()),
            )
        return int(cur.lastrowid or 0)

    def feedback(self, *, unused_only: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM feedback" + (" WHERE used_in IS NULL" if unused_only else "") + " ORDER BY id"
        return [dict(r) for r in self.query(sql)]

    # -- jobs -------------------------------------------------------------------------------------

    def create_job(self, kind: str, params: dict[str, Any] | None = None, total: int | None = None) -> Job:
        job_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, kind, state, total, params, created_at, started_at, updated_at) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
                (job_id, kind, total, json.dumps(params or {}, default=str), now, now, now),
            )
        job = self.get_job(job_id)
        assert job is not None
        return job

    def update_job(
        self, job_id: str, *, done: int | None = None, total: int | None = None,
        state: JobState | None = None, result: dict[str, Any] | None = None, error: str | None = None,
    ) -> None:
        sets: list[str] = ["updated_at = ?"]
        params: list[Any] = [time.time()]
        if done is not None:
            sets.append("done = ?")
            params.append(done)
        if total is not None:
            sets.append("total = ?")
            params.append(total)
        if state is not None:
            sets.append("state = ?")
            params.append(state)
            if state in ("succeeded", "failed", "cancelled"):
                sets.append("finished_at = ?")
                params.append(time.time())
        if result is not None:
            sets.append("result = ?")
            params.append(json.dumps(result, default=str))
        if error is not None:
            sets.append("error = ?")
            params.append(error)
        with self.transaction() as conn:
            conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", [*params, job_id])

    def get_job(self, job_id: str) -> Job | None:
        rows = self.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job_from_row(rows[0]) if rows else None

    def list_jobs(self, kind: str | None = None, limit: int = 50) -> list[Job]:
        sql, params = "SELECT * FROM jobs", list[Any]()
        if kind is not None:
            sql += " WHERE kind = ?"
            params.append(kind)
        sql += " ORDER BY created_at DESC LIMIT ?"
        params.append(limit)
        return [_job_from_row(r) for r in self.query(sql, params)]

    @contextmanager
    def job(self, kind: str, params: dict[str, Any] | None = None, total: int | None = None) -> Iterator[Job]:
        """Run a block as a job: marked succeeded on exit, failed (with the error) if it raises."""
        job = self.create_job(kind, params, total)
        try:
            yield job
        except BaseException as exc:
            state: JobState = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
            self.update_job(job.id, state=state, error=f"{type(exc).__name__}: {exc}")
            raise
        else:
            current = self.get_job(job.id)
            if current is not None and current.state == "running":
                self.update_job(job.id, state="succeeded")
