"""Ingestion (the Data agent's tools): register directory trees and manifests in the catalog.

Every file is read once, hashed (its id is the sha256 of its bytes) and fully decoded before it is
accepted. Bad files are recorded with a reason and the run goes on. Running the same ingestion twice
adds nothing: ids are content hashes, and a known path whose bytes have not changed is skipped.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tools.catalog import Catalog, ImageRecord
from tools.imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    ImageInfo,
    ImageRejected,
    inspect_bytes,
    sha256_bytes,
)
from tools.paths import PathNotAllowedError, check_allowed
from tools.scenes.ingest import SceneOptions

# Manifest keys with a meaning of their own; every other key is kept as image metadata.
_PATH_KEYS = ("path", "image", "file", "filename")
_RESERVED = {*_PATH_KEYS, "label", "labels", "caption", "captions", "metadata", "bounds", "crs", "scene"}


class ManifestError(ValueError):
    """A manifest that cannot be read at all (bad syntax is reported per line instead)."""


@dataclass
class IngestItem:
    """One file to ingest, with what a manifest says about it."""

    path: Path
    labels: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    bounds: list[float] | None = None
    crs: str | None = None
    scene: bool | None = None  # True: chip it as a scene; None: decided by its size


@dataclass
class IngestReport:
    """What an ingestion run did; ``to_dict`` is the CLI's ``--json`` document."""

    source: str
    scanned: int = 0
    added: int = 0
    duplicates: int = 0
    unchanged: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    duplicate_of: list[dict[str, str]] = field(default_factory=list)
    captions_added: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    job_id: str | None = None
    scenes: list[dict[str, Any]] = field(default_factory=list)  # one report per scene (tools.scenes.ingest)
    chips_added: int = 0

    @property
    def images_per_s(self) -> float:
        return self.scanned / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_s"] = round(self.images_per_s, 1)
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass
class _Outcome:
    item: IngestItem
    sha256: str | None
    info: ImageInfo | None
    reason: str | None
    scene: bool = False


def iter_directory(
    root: Path, allowed_roots: Sequence[Path], rejected: list[dict[str, str]]
) -> Iterator[IngestItem]:
    """Image files under ``root`` in a stable order; symlinks that leave the allowed roots are refused."""
    visited: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real_dir = Path(dirpath).resolve()
        if real_dir in visited:  # a symlink loop, or two links to one directory
            dirnames[:] = []
            continue
        visited.add(real_dir)
        keep = []
        for d in sorted(dirnames):
            sub = Path(dirpath) / d
            if d.startswith("."):
                continue
            try:
                check_allowed(sub, allowed_roots)
            except PathNotAllowedError as exc:
                rejected.append({"path": str(sub), "reason": f"refused: {exc}"})
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            yield IngestItem(path=Path(dirpath) / name, metadata={"folder": Path(dirpath).name})


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [s.strip() for s in str(value).split("|") if s.strip()]


def _item_from_row(row: dict[str, Any], base: Path, where: str) -> IngestItem:
    path_value = next((row[k] for k in _PATH_KEYS if row.get(k)), None)
    if not path_value:
        raise ManifestError(f"{where}: no image path (expected one of the keys {', '.join(_PATH_KEYS)})")
    path = Path(os.path.expanduser(str(path_value)))
    if not path.is_absolute():
        path = base / path
    labels = _as_list(row.get("labels")) or _as_list(row.get("label"))
    captions = _as_list(row.get("captions")) or _as_list(row.get("caption"))
    metadata = dict(row.get("metadata") or {})
    metadata.update({k: v for k, v in row.items() if k not in _RESERVED and v not in (None, "")})
    bounds = row.get("bounds")
    if isinstance(bounds, str) and bounds:
        bounds = [float(v) for v in bounds.replace(";", ",").split(",")]
    scene = row.get("scene")
    return IngestItem(
        path=path, labels=labels, captions=captions, metadata=metadata,
        bounds=[float(v) for v in bounds] if bounds else None, crs=row.get("crs") or None,
        scene=None if scene in (None, "") else str(scene).lower() in ("true", "1", "yes"),
    )


def read_manifest(manifest: Path, rejected: list[dict[str, str]]) -> list[IngestItem]:
    """Parse a JSON-lines or CSV manifest; paths are relative to the manifest's directory.

    Lines that cannot be parsed are reported in ``rejected`` with their line number; the rest go on.
    """
    base = manifest.parent
    suffix = manifest.suffix.lower()
    items: list[IngestItem] = []
    try:
        text = manifest.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{manifest}: not UTF-8 text ({exc})") from None
    if suffix in (".jsonl", ".ndjson", ".json"):
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{manifest}:{lineno}"
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ManifestError(f"{where}: expected a JSON object per line")
                items.append(_item_from_row(row, base, where))
            except (json.JSONDecodeError, ManifestError, ValueError) as exc:
                rejected.append({"path": where, "reason": f"bad manifest line: {exc}"})
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        for lineno, row in enumerate(reader, start=2):
            where = f"{manifest}:{lineno}"
            try:
                items.append(_item_from_row(dict(row), base, where))
            except (ManifestError, ValueError) as exc:
                rejected.append({"path": where, "reason": f"bad manifest line: {exc}"})
    else:
        raise ManifestError(f"{manifest}: unknown manifest type {suffix!r}; use .jsonl or .csv")
    return items


def ingest_directory(
    catalog: Catalog, root: Path, *, allowed_roots: Sequence[Path], source: str | None = None,
    labels_from_folders: bool = False, workers: int = 4, max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True, scenes: SceneOptions | None = None,
) -> IngestReport:
    """Register every image under ``root`` (jpg, jpeg, png, tif, tiff, webp), or the one file ``root`` names.

    Large rasters become scenes and their chips (``scenes`` says which files and how they are cut).
    """
    root = check_allowed(root, allowed_roots)
    if root.is_file():
        report = IngestReport(source=source or root.parent.name)
        items: Iterable[IngestItem] = [IngestItem(path=root)]
    elif not root.is_dir():
        raise NotADirectoryError(f"{root} is neither a directory nor a file (use --manifest for a manifest file)")
    else:
        report = IngestReport(source=source or root.name)
        items = iter_directory(root, allowed_roots, report.rejected)
    if labels_from_folders:
        items = (_with_folder_label(it, root) for it in items)
    return _ingest(catalog, list(items), report, allowed_roots=allowed_roots, workers=workers,
                   max_pixels=max_pixels, progress=progress, params={"path": str(root)}, scenes=scenes)


def ingest_manifest(
    catalog: Catalog, manifest: Path, *, allowed_roots: Sequence[Path], source: str | None = None,
    workers: int = 4, max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True,
    scenes: SceneOptions | None = None,
) -> IngestReport:
    """Register the images a manifest lists, with its labels, human captions and metadata (``scene: true``
    lines are chipped as scenes)."""
    manifest = check_allowed(manifest, allowed_roots)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} does not exist or is not a file")
    report = IngestReport(source=source or manifest.parent.name)
    items = read_manifest(manifest, report.rejected)
    return _ingest(catalog, items, report, allowed_roots=allowed_roots, workers=workers,
                   max_pixels=max_pixels, progress=progress, params={"manifest": str(manifest)}, scenes=scenes)


def _with_folder_label(item: IngestItem, root: Path) -> IngestItem:
    if item.path.parent != root and not item.labels:
        item.labels = [item.path.parent.name]
    return item


def _examine(item: IngestItem, known_ids: set[str], max_pixels: int, allowed_roots: Sequence[Path],
             scenes: SceneOptions) -> _Outcome:
    """Read, hash and (when the content is new) decode one file. Runs in a worker thread.

    A scene is only recognised here (from its header); it is chipped after the images, never read whole.
    """
    try:
        real = check_allowed(item.path, allowed_roots)
    except PathNotAllowedError as exc:
        return _Outcome(item, None, None, f"refused: {exc}")
    if _is_scene(item, real, scenes):
        return _Outcome(item, None, None, None, scene=True)
    try:
        data = real.read_bytes()
    except FileNotFoundError:
        return _Outcome(item, None, None, "file not found")
    except IsADirectoryError:
        return _Outcome(item, None, None, "is a directory, not an image file")
    except OSError as exc:
        return _Outcome(item, None, None, f"cannot read file: {exc.strerror or exc}")
    digest = sha256_bytes(data)
    if digest in known_ids:
        return _Outcome(item, digest, None, None)  # known content: no need to decode again
    try:
        info = inspect_bytes(data, max_pixels=max_pixels)
    except ImageRejected as exc:
        return _Outcome(item, digest, None, exc.reason)
    return _Outcome(item, digest, info, None)


def _is_scene(item: IngestItem, real: Path, scenes: SceneOptions) -> bool:
    from tools.scenes.raster import looks_like_scene

    wanted = item.scene if item.scene is not None else scenes.force
    if wanted is not None:
        return wanted and real.is_file()
    return looks_like_scene(real, scenes.min_side)


def _ingest(
    catalog: Catalog, items: list[IngestItem], report: IngestReport, *, allowed_roots: Sequence[Path],
    workers: int, max_pixels: int, progress: bool, params: dict[str, Any], batch: int = 256,
    scenes: SceneOptions | None = None,
) -> IngestReport:
    scenes = scenes or SceneOptions()
    scene_items: list[IngestItem] = []
    started = time.perf_counter()
    known_uris = catalog.image_uri_index()
    known_ids = catalog.image_ids(status="ok")
    seen_in_run: dict[str, str] = {}
    with catalog.job("ingest", {**params, "source": report.source}, total=len(items)) as job:
        report.job_id = job.id
        bar = tqdm(total=len(items), unit="img", desc=f"ingest {report.source}", disable=not progress,
                   dynamic_ncols=True)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for start in range(0, len(items), batch):
                chunk = items[start:start + batch]
                outcomes = list(pool.map(
                    lambda it: _examine(it, known_ids, max_pixels, allowed_roots, scenes), chunk
                ))
                scene_items += [o.item for o in outcomes if o.scene]
                _record(catalog, [o for o in outcomes if not o.scene], report, known_uris, known_ids, seen_in_run)
                report.scanned += len(chunk)
                bar.update(len(chunk))
                catalog.progress(job.id, report.scanned)  # raises JobCancelled on a cancel request
        bar.close()
        for item in scene_items:
            _ingest_scene(catalog, item, report, scenes, progress)
        report.seconds = time.perf_counter() - started
        catalog.update_job(job.id, result={k: v for k, v in report.to_dict().items()
                                           if k not in ("rejected", "duplicate_of", "scenes")}
                           | {"rejected": len(report.rejected), "scenes": len(report.scenes)})
    return report


def _record(
    catalog: Catalog, outcomes: list[_Outcome], report: IngestReport, known_uris: dict[str, str],
    known_ids: set[str], seen_in_run: dict[str, str],
) -> None:
    """Write one batch of outcomes to the catalog in a single transaction and update the report."""
    new_records: list[ImageRecord] = []
    captions: list[tuple[str, str, str, str | None]] = []
    extra_labels: list[tuple[str, str]] = []
    for out in outcomes:
        item, uri = out.item, str(out.item.path.resolve() if out.sha256 else out.item.path)
        if out.reason is not None:
            report.rejected.append({"path": str(item.path), "reason": out.reason})
            if out.sha256 and out.sha256 not in seen_in_run:
                # Known rejected content is ignored by INSERT OR IGNORE; new bad content is recorded.
                new_records.append(ImageRecord(
                    id=out.sha256, uri=uri, width=None, height=None, bands=None, format=None, mode=None,
                    source=report.source, status="rejected", reason=out.reason, metadata=item.metadata,
                ))
                seen_in_run[out.sha256] = uri
            continue
        assert out.sha256 is not None
        if out.info is None or out.sha256 in seen_in_run:
            original = known_uris.get(uri) == out.sha256
            if original:
                report.unchanged += 1
            else:
                report.duplicates += 1
                report.duplicate_of.append({"path": str(item.path), "same_as": _uri_of(catalog, out.sha256,
                                                                                        seen_in_run)})
            extra_labels.extend((out.sha256, label) for label in item.labels)
        else:
            info = out.info
            new_records.append(ImageRecord(
                id=out.sha256, uri=uri, width=info.width, height=info.height, bands=info.bands,
                format=info.format, mode=info.mode, source=report.source, status="ok",
                bounds=item.bounds or info.bounds, crs=item.crs or info.crs, metadata=item.metadata,
                labels=item.labels,
            ))
            seen_in_run[out.sha256] = uri
            report.added += 1
        for label in item.labels:
            report.labels[label] = report.labels.get(label, 0) + 1
        captions.extend((out.sha256, text, "human", None) for text in item.captions)
    if new_records:
        inserted = catalog.insert_images(new_records)
        for r in new_records:
            if r.status == "ok":
                known_ids.add(r.id)
                if r.id not in inserted:  # a concurrent ingestion of the same content inserted it first
                    report.added -= 1
                    if _uri_of(catalog, r.id, {}) == r.uri:
                        report.unchanged += 1
                    else:
                        report.duplicates += 1
            known_uris[r.uri] = r.id
    if extra_labels:
        catalog.add_labels(extra_labels)
    if captions:
        report.captions_added += catalog.add_captions(captions)


def _ingest_scene(catalog: Catalog, item: IngestItem, report: IngestReport, scenes: SceneOptions,
                  progress: bool) -> None:
    """Chip one scene into the catalog; a file that cannot be a scene is recorded as rejected, with why."""
    from tools.scenes.chips import ChipError
    from tools.scenes.ingest import ingest_scene
    from tools.scenes.raster import SceneRejected, sha256_file

    real = item.path.resolve()
    bar = tqdm(unit="win", desc=f"chip {real.name}", disable=not progress, dynamic_ncols=True)
    try:
        done = ingest_scene(catalog, real, params=scenes.chips, source=report.source, max_pixels=scenes.max_pixels,
                            on_window=lambda: bar.update(1), metadata=item.metadata)
    except (SceneRejected, ChipError) as exc:
        reason = f"scene rejected: {exc}"
        report.rejected.append({"path": str(item.path), "reason": reason})
        digest = sha256_file(real)
        catalog.add_images([ImageRecord(id=digest, uri=str(real), width=None, height=None, bands=None, format=None,
                                        mode=None, source=report.source, status="rejected", reason=reason,
                                        metadata=item.metadata)])
        return
    finally:
        bar.close()
    report.scenes.append(done.to_dict())
    report.chips_added += done.chips_added


def _uri_of(catalog: Catalog, image_id: str, seen_in_run: dict[str, str]) -> str:
    if image_id in seen_in_run:
        return seen_in_run[image_id]
    record = catalog.get_image(image_id)
    return record.uri if record else "?"
