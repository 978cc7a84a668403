"""Item 6: a read-only or damaged home is one line naming the path (never a traceback); an empty catalog beside
models and indexes is refused, not re-created; a damaged catalog is never written into; `skyscout backup`
copies it online, and promotions snapshot it first."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.hardening.conftest import cli_env, copy_tiles, skyscout


@contextmanager
def read_only(home: Path) -> Iterator[None]:
    """Make ``home`` unwritable, for root too (the immutable attribute), and restore it afterwards."""
    paths = [home, *home.iterdir()]
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    else:
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
        else:
            for p in paths:
                p.chmod(0o755 if p.is_dir() else 0o644)


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_read_only_home_is_a_one_line_error_naming_the_path(indexed_home: Path, tmp_path: Path,
                                                              roots: str) -> None:
    conn = sqlite3.connect(indexed_home / "catalog.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()  # the last connection closed: SQLite removes -wal and -shm, as after any clean exit
    copy_tiles(tmp_path / "new", 2)
    with read_only(indexed_home):
        procs = [skyscout(*args, env=cli_env(indexed_home, roots))
                 for args in (["status"], ["ingest", str(tmp_path / "new")])]
    for proc in procs:
        _one_line_error(proc, str(indexed_home / "catalog.db"), "writable")


def test_an_empty_catalog_beside_models_and_indexes_is_refused_not_recreated(indexed_home: Path,
                                                                             roots: str) -> None:
    (indexed_home / "catalog.db").write_bytes(b"")
    for extra in ("catalog.db-wal", "catalog.db-shm"):
        (indexed_home / extra).unlink(missing_ok=True)
    proc = skyscout("status", env=cli_env(indexed_home, roots))
    _one_line_error(proc, str(indexed_home / "catalog.db"), "empty", "not re-created")
    assert (indexed_home / "catalog.db").stat().st_size == 0


def test_a_damaged_catalog_is_never_written_into(indexed_home: Path, tmp_path: Path, roots: str) -> None:
    path = indexed_home / "catalog.db"
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    page = 4096
    with path.open("r+b") as fh:  # scribble over the third page (a b-tree page, not the header)
        fh.seek(2 * page)
        fh.write(os.urandom(page))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    copy_tiles(tmp_path / "new", 4)
    proc = skyscout("ingest", str(tmp_path / "new"), env=cli_env(indexed_home, roots))
    _one_line_error(proc, str(path), "damaged")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_backup_copies_the_catalog_online(indexed_home: Path, tmp_path: Path, cli: Any) -> None:
    code, doc = cli("backup", "--out", str(tmp_path / "copy.db"))
    assert code == 0, doc
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 80
    copy.close()


def test_a_promotion_snapshots_the_catalog_first(indexed_home: Path, cli: Any) -> None:
    conn = sqlite3.connect(indexed_home / "catalog.db")
    conn.execute("INSERT INTO model_versions (id, arch, base, checkpoint, params, status, created_at) "
                 "VALUES ('mv-test', 'skyscout-tiny', 'skyscout-tiny', '/nowhere/model.pt', '{}', 'candidate', 0)")
    conn.commit()
    conn.close()
    code, doc = cli("promote", "mv-test")
    assert code == 0, doc
    snapshots = sorted((indexed_home / "backups").glob("catalog-*pre-promote-mv-test.db"))
    assert len(snapshots) == 1
    snap = sqlite3.connect(snapshots[0])
    assert snap.execute("SELECT status FROM model_versions WHERE id = 'mv-test'").fetchone()[0] == "candidate"
    snap.close()
