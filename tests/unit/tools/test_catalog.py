"""The catalog: schema versioning, WAL readers during writes, captions and jobs."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tools.catalog import MIGRATIONS, Catalog, ImageRecord


def _img(i: int, **kw: object) -> ImageRecord:
    return ImageRecord(id=f"{i:064x}", uri=f"/x/{i}.jpg", width=8, height=8, bands=3, format="JPEG",
                       mode="RGB", source="s", status="ok", labels=[f"c{i % 3}"], **kw)  # type: ignore[arg-type]


def _schema_version(cat: Catalog) -> int:
    return int(cat.query("PRAGMA user_version")[0][0])


def test_schema_is_versioned_and_pragmas_are_set(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    assert _schema_version(cat) == len(MIGRATIONS)
    assert cat.query("PRAGMA journal_mode")[0][0] == "wal"
    assert cat.query("PRAGMA foreign_keys")[0][0] == 1
    # Opening again does not re-run migrations.
    assert _schema_version(Catalog(tmp_path / "c.db")) == len(MIGRATIONS)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    Catalog(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this SkyScout"):
        Catalog(path)


def test_images_labels_captions_roundtrip(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    assert cat.add_images([_img(i) for i in range(5)]) == 5
    assert cat.add_images([_img(i) for i in range(5)]) == 0
    assert cat.label_counts() == {"c0": 2, "c1": 2, "c2": 1}
    rec = cat.get_image(f"{1:064x}")
    assert rec is not None and rec.labels == ["c1"]
    assert cat.add_captions([(rec.id, "a beach", "human", None), (rec.id, "a beach", "human", None)]) == 1
    with pytest.raises(ValueError, match="unknown caption source"):
        cat.add_captions([(rec.id, "x", "gpt", None)])
    assert cat.images_without_caption("human") == sorted(f"{i:064x}" for i in (0, 2, 3, 4))
    assert [r.id for r in cat.iter_images(batch_size=2)] == sorted(f"{i:064x}" for i in range(5))


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    with pytest.raises(sqlite3.IntegrityError):
        cat.add_captions([("f" * 64, "orphan", "human", None)])


def test_readers_keep_working_while_a_job_writes(tmp_path: Path) -> None:
    """WAL: a long stream of write transactions never blocks or breaks a concurrent reader."""
    cat = Catalog(tmp_path / "c.db")
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = 0

    def writer() -> None:
        try:
            for start in range(0, 3000, 50):
                cat.add_images([_img(i) for i in range(start, start + 50)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    t = threading.Thread(target=writer)
    t.start()
    seen = []
    while not stop.is_set():
        seen.append(cat.count_images())
        reads += 1
    t.join()
    assert not errors
    assert reads > 5
    assert seen == sorted(seen), "a reader saw the count go backwards"
    assert cat.count_images() == 3000


def test_job_context_records_success_and_failure(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    with cat.job("demo", {"a": 1}, total=3) as job:
        cat.update_job(job.id, done=3)
    done = cat.get_job(job.id)
    assert done is not None and done.state == "succeeded" and done.done == 3 and done.finished_at
    with pytest.raises(ZeroDivisionError), cat.job("demo") as failing:
        1 / 0  # noqa: B018
    failed = cat.get_job(failing.id)
    assert failed is not None and failed.state == "failed" and "ZeroDivisionError" in (failed.error or "")
