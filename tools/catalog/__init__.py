"""The catalog: SkyScout's memory in one SQLite database (images, labels, captions, datasets, jobs, ...).

SQLite runs in WAL mode so that readers keep working while a long job writes; each thread gets its own
connection; every write is a short transaction. The schema is versioned: ``MIGRATIONS[i]`` takes the
database from version ``i`` to ``i + 1`` and ``PRAGMA user_version`` records where it stands.

The tables are served by one mixin per group (:mod:`~tools.catalog.images`, :mod:`~tools.catalog.datasets`,
:mod:`~tools.catalog.models`, :mod:`~tools.catalog.journal`, :mod:`~tools.catalog.jobs`,
:mod:`~tools.catalog.scenes`, :mod:`~tools.catalog.concepts`) over the connection plumbing in
:mod:`~tools.catalog.connection`; :class:`Catalog` combines them.
"""

from __future__ import annotations

from tools.catalog.concepts import ConceptExistsError, ConceptsMixin
from tools.catalog.connection import CatalogDamagedError, CatalogError, CatalogUnwritableError
from tools.catalog.datasets import DatasetsMixin
from tools.catalog.images import ImagesMixin
from tools.catalog.jobs import JobCancelled, JobsMixin, job_origin, origin
from tools.catalog.journal import JournalMixin
from tools.catalog.models import ModelsMixin
from tools.catalog.records import ImageRecord, Job
from tools.catalog.scenes import ChipRecord, SceneRecord, ScenesMixin
from tools.catalog.schema import CAPTION_SOURCES, FINISHED_STATES, MIGRATIONS, CaptionSource, JobState


class Catalog(ImagesMixin, DatasetsMixin, ModelsMixin, JournalMixin, JobsMixin, ScenesMixin, ConceptsMixin):
    """Typed access to the catalog database. Safe to share between threads (one connection each)."""


__all__ = [
    "CAPTION_SOURCES",
    "FINISHED_STATES",
    "MIGRATIONS",
    "CaptionSource",
    "Catalog",
    "CatalogDamagedError",
    "CatalogError",
    "CatalogUnwritableError",
    "ConceptExistsError",
    "ChipRecord",
    "ImageRecord",
    "Job",
    "JobCancelled",
    "JobState",
    "SceneRecord",
    "job_origin",
    "origin",
]
