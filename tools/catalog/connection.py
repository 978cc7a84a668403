"""The catalog's SQLite plumbing: one connection per thread, WAL mode, short write transactions, migrations,
checks at open (a read-only home, a truncated or damaged file) and online backups."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools.catalog.schema import MIGRATIONS

#: automatic snapshots (before migrations and promotions) kept in ``<home>/backups``; manual ones are kept
KEEP_SNAPSHOTS = 10
BACKUP_DIR = "backups"


class CatalogError(RuntimeError):
    """The catalog cannot be used as it is (the message names the file and what to do)."""


class CatalogUnwritableError(CatalogError):
    """The catalog file or its folder cannot be written (e.g. a read-only SKYSCOUT_HOME)."""


class CatalogDamagedError(CatalogError):
    """The catalog file is truncated or damaged; it is never replaced by an empty one."""


class CatalogBase:
    """Connections (one per thread), transactions, queries and schema migrations of the catalog database.

    ``guard_dirs`` are folders whose content means the home is in use (models, indexes): an empty catalog
    file beside them was truncated, and is refused rather than made into a new, empty catalog.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0, guard_dirs: Sequence[Path] = ()) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._refuse_truncated(guard_dirs)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._migrate()
            self._check_integrity()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._explain(exc) from None
        except PermissionError as exc:
            self.close()
            raise CatalogUnwritableError(self._unwritable(exc.strerror or str(exc))) from None

    # -- checks at open ---------------------------------------------------------------------------

    @property
    def backup_dir(self) -> Path:
        return self.path.parent / BACKUP_DIR

    def _restore_hint(self) -> str:
        return (f"restore a copy (`skyscout backup` writes them; automatic snapshots are in {self.backup_dir}) "
                f"or move {self.path} aside")

    def _refuse_truncated(self, guard_dirs: Sequence[Path]) -> None:
        if not self.path.is_file() or self.path.stat().st_size > 0:
            return
        in_use = [d for d in guard_dirs if d.is_dir() and any(p.is_file() for p in d.rglob("*"))]
        if in_use:
            raise CatalogDamagedError(
                f"the catalog {self.path} is empty (0 bytes) while {', '.join(map(str, in_use))} hold models or "
                f"indexes: it was truncated, and is not re-created; {self._restore_hint()}")

    def _unwritable(self, why: str) -> str:
        return (f"cannot write the catalog {self.path}: {why}; SKYSCOUT_HOME ({self.path.parent}) must be a "
                "writable folder")

    def _explain(self, exc: sqlite3.DatabaseError) -> CatalogError:
        text = str(exc)
        lowered = text.lower()
        if any(s in lowered for s in ("readonly", "read-only", "unable to open", "permission", "disk i/o")):
            return CatalogUnwritableError(self._unwritable(text))
        return CatalogDamagedError(f"the catalog {self.path} is damaged ({text}); {self._restore_hint()}")

    def _check_integrity(self) -> None:
        """``PRAGMA quick_check`` (a page-level check, milliseconds for a catalog of thousands of images)."""
        rows = self._conn().execute("PRAGMA quick_check").fetchall()
        problems = [line.strip() for r in rows if str(r[0]) != "ok" for line in str(r[0]).splitlines()
                    if line.strip() and not line.startswith("***")]
        if problems:
            raise CatalogDamagedError(f"the catalog {self.path} is damaged ({'; '.join(problems[:3])}); "
                                      f"{self._restore_hint()}")

    # -- connections and schema -------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN ourselves, so a transaction is exactly a `with` block.
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
            conn.row_factory = sqlite3.Row
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                conn.close()
                raise
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

    def _migrate(self) -> None:
        version = int(self._conn().execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise CatalogError(
                f"catalog {self.path} has schema version {version}, newer than this SkyScout "
                f"({len(MIGRATIONS)}); upgrade SkyScout or point SKYSCOUT_HOME elsewhere"
            )
        if 0 < version < len(MIGRATIONS):
            self.snapshot(f"pre-migration-v{version}")
        with self.transaction() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for target in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target + 1}")

    # -- backups ----------------------------------------------------------------------------------

    def snapshot(self, reason: str, *, dest: str | Path | None = None) -> Path:
        """A consistent copy of the catalog by SQLite's online backup (readers and writers go on).

        Without ``dest`` the copy goes to ``<home>/backups/catalog-<time>-<reason>.db``; automatic snapshots
        (every reason but ``manual``) beyond the newest :data:`KEEP_SNAPSHOTS` are deleted.
        """
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in reason)[:60]
        target = Path(dest) if dest is not None else (
            self.backup_dir / f"catalog-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}-{slug}.db")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:6]}")
        copy = sqlite3.connect(tmp)
        try:
            self._conn().backup(copy)
        finally:
            copy.close()
        tmp.replace(target)
        if dest is None and reason != "manual":
            self._prune_snapshots()
        return target

    def _prune_snapshots(self) -> None:
        automatic = sorted(p for p in self.backup_dir.glob("catalog-*.db") if not p.name.endswith("-manual.db"))
        for old in automatic[:-KEEP_SNAPSHOTS]:
            old.unlink(missing_ok=True)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
