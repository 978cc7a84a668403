"""What the application needs to know about its environment, as one typed, immutable record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tools.stores.base import StoreKind

#: fallback decode workers for indexing: a thread beside the model on small machines (measured faster)
SMALL_MACHINE_CORES = 4


@dataclass(frozen=True)
class AstraCredentials:
    """Where Astra DB is (unset fields fall back to the standard ``ASTRA_DB_*`` environment variables), and
    how bulk upserts go: ``insertMany`` requests in flight, documents per request, retries."""

    endpoint: str | None = None
    token: str | None = None
    keyspace: str | None = None
    concurrency: int = 8
    chunk_size: int = 100
    max_retries: int = 5


@dataclass(frozen=True)
class AppConfig:
    """Paths, devices and limits of one SkyScout home.

    ``roots`` are the directories images may be read from, already resolved (absolute, symlink-free).
    ``loader_workers`` is the number of decoding processes when indexing (None: chosen from the cores).
    """

    home: Path
    roots: tuple[Path, ...]
    device: str = "auto"
    store: StoreKind = "lancedb"
    astra: AstraCredentials = AstraCredentials()
    #: retention: keep finished training runs' checkpoints; candidates kept besides the active model and its parent
    keep_checkpoints: bool = False
    keep_candidates: int = 3
    workers: int = 4
    max_pixels: int = 89_478_485
    captioner: str = "template"
    batch_size: int = 64
    loader_workers: int | None = None
    max_models: int = 2
    #: scenes: files whose longer side reaches this many pixels are chipped; the most pixels a scene may have
    scene_min_side: int = 1024
    max_scene_pixels: int = 10_000_000_000
    #: detection: background prompts the query is weighed against (empty: tools.detect.probability's default)
    detect_background: tuple[str, ...] = ()

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.db"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def indexes_dir(self) -> Path:
        return self.home / "indexes"

    @property
    def thumbnails_dir(self) -> Path:
        return self.cache_dir / "thumbnails"


__all__ = ["AppConfig", "AstraCredentials"]
