"""Data use cases: ingest a folder or a manifest, caption what lacks captions, record a dataset version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.context import AppContext
from tools.captioning.run import CaptionReport, caption_images
from tools.datasets import create_dataset as record_dataset
from tools.distributed.ray_common import RayOptions
from tools.ingest import IngestReport, ingest_directory, ingest_manifest
from tools.scenes.ingest import SceneOptions

#: file suffixes read as manifests rather than scanned as folders
MANIFEST_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json", ".csv", ".tsv"})


def is_manifest(path: str | Path) -> bool:
    return Path(path).suffix.lower() in MANIFEST_SUFFIXES


def ingest(ctx: AppContext, path: str | Path, *, manifest: bool | None = None, source: str | None = None,
           labels_from_folders: bool = False, workers: int | None = None, progress: bool = False,
           scenes: SceneOptions | None = None) -> IngestReport:
    """Ingest a folder tree, one file, or a manifest (decided by its suffix unless ``manifest`` says); every
    path is checked against the data roots. Large rasters become scenes and chips (``scenes``: how; default
    :func:`app.scenes.scene_options`)."""
    from app.scenes import scene_options

    path = Path(path).expanduser()
    opts: dict[str, Any] = dict(allowed_roots=list(ctx.config.roots), source=source,
                                workers=workers or ctx.config.workers, max_pixels=ctx.config.max_pixels,
                                progress=progress, scenes=scenes or scene_options(ctx))
    if manifest if manifest is not None else is_manifest(path):
        return ingest_manifest(ctx.catalog, path, **opts)
    return ingest_directory(ctx.catalog, path, labels_from_folders=labels_from_folders, **opts)


def caption(ctx: AppContext, *, captioner: str | None = None, captioner_model: str | None = None,
            batch_size: int = 32, limit: int | None = None, only_uncaptioned: bool = False,
            progress: bool = False, engine: str = "local", ray: RayOptions | None = None,
            from_folders: bool = False, also_captioned: bool = False) -> CaptionReport:
    """Caption the images that lack a caption from ``captioner`` (default: the configured one).

    Images with better captions than this captioner's are left alone unless ``also_captioned``; the
    template captioner uses folder names (for images without a label) only with ``from_folders``.

    ``engine="ray"`` runs it as a Ray Data job with a pool of captioner actors (``ray``: where, how wide)."""
    name = captioner or ctx.config.captioner
    if engine == "ray":
        from tools.distributed.ray_caption import caption_images_ray, captioner_factory

        options = ray or RayOptions(batch_size=batch_size)
        driver_side, factory = captioner_factory(name, captioner_model, ctx.device, options, from_folders=from_folders)
        return caption_images_ray(ctx.catalog, driver_side, factory, options=options, device=ctx.device, limit=limit,
                                  progress=progress, only_uncaptioned=only_uncaptioned, also_captioned=also_captioned)
    if engine != "local":
        raise ValueError(f"unknown engine {engine!r}; choose from local, ray")
    if captioner_model or from_folders:
        from tools.captioning.factory import create_captioner

        backend = create_captioner(name, model=captioner_model, device=ctx.device, batch_size=batch_size,
                                   from_folders=from_folders)
    else:
        backend = ctx.models.captioner(name)
    return caption_images(ctx.catalog, backend, batch_size=batch_size, limit=limit, workers=ctx.config.workers,
                          progress=progress, only_uncaptioned=only_uncaptioned, also_captioned=also_captioned)


def create_dataset(ctx: AppContext, **options: Any) -> dict[str, Any]:
    """Make (or find) the dataset version of the accepted images (see :func:`tools.datasets.create_dataset`)."""
    return record_dataset(ctx.catalog, **options)


__all__ = ["MANIFEST_SUFFIXES", "caption", "create_dataset", "ingest", "is_manifest"]
