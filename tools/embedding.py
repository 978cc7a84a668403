"""The Embedding agent's tools: embed every accepted image into a vector index, resumably, blue-green.

The pipeline is three injected stages (reader -> embedder -> writer), so each can be swapped in tests:

- reader: a PyTorch ``DataLoader`` whose workers decode and preprocess images;
- embedder: batched ``encode_image`` under ``inference_mode`` (autocast on CUDA), L2-normalised;
- writer: batched upserts into a :class:`tools.stores.base.VectorStore`.

Vector ids are image ids, so re-running never duplicates; images already in the index are skipped, so a
killed run continues where it stopped. Each model version gets its own index; the alias
``active_index:<store>`` moves to it only after every image is in (search never sees a half-built index).
Refreshing a complete index (new images for the active model) appends to it in place: it stays ``complete``
and searchable throughout, and a refresh killed midway leaves it as searchable as before.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from tools.catalog import Catalog, ImageRecord
from tools.imageio import load_rgb
from tools.indexes import alias_name
from tools.stores.base import IndexRegistry, VectorStore, index_name_for_model

Batch = tuple[list[str], torch.Tensor]  # (image ids, preprocessed pixels)
Reader = Callable[[Sequence[ImageRecord]], Iterable[Batch]]
Embedder = Callable[[torch.Tensor], np.ndarray]
Writer = Callable[[list[str], np.ndarray], int]


def image_metadata(img: ImageRecord) -> dict[str, Any]:
    """What each vector carries for filtering and display (captions stay in the catalog)."""
    meta: dict[str, Any] = {"uri": img.uri, "source": img.source or "", "label": img.labels[0] if img.labels else "",
                            "labels": list(img.labels)}
    if img.bounds:
        meta.update(minx=float(img.bounds[0]), miny=float(img.bounds[1]), maxx=float(img.bounds[2]),
                    maxy=float(img.bounds[3]))
    if img.scene_id:
        # chips: their scene, and their EPSG:4326 box for area-of-interest filters (tools.geo)
        meta["scene_id"] = img.scene_id
        if img.footprint:
            ring = img.footprint["coordinates"][0]
            meta.update(west=min(p[0] for p in ring), south=min(p[1] for p in ring),
                        east=max(p[0] for p in ring), north=max(p[1] for p in ring))
    return meta


class _Images(torch.utils.data.Dataset[tuple[str, torch.Tensor | None]]):
    """Decodes one catalogued image per item; a file that broke since ingestion yields ``None``."""

    def __init__(self, records: Sequence[ImageRecord], transform: Callable[[Image.Image], torch.Tensor],
                 min_size: int | None = None) -> None:
        self.records = list(records)
        self.transform = transform
        self.min_size = min_size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor | None]:
        rec = self.records[i]
        try:
            return rec.id, self.transform(load_rgb(rec.uri, min_size=self.min_size))
        except Exception:  # noqa: BLE001 - reported by the collate step as a failed image
            return rec.id, None


def _collate(batch: list[tuple[str, torch.Tensor | None]]) -> tuple[list[str], torch.Tensor | None, list[str]]:
    ok = [(i, t) for i, t in batch if t is not None]
    failed = [i for i, t in batch if t is None]
    if not ok:
        return [], None, failed
    return [i for i, _ in ok], torch.stack([t for _, t in ok]), failed


def dataloader_reader(
    transform: Callable[[Image.Image], torch.Tensor], *, batch_size: int = 64, num_workers: int = 2,
    failed: list[str] | None = None, min_size: int | None = None, pin_memory: bool = False,
) -> Reader:
    """The default reader: a DataLoader with ``num_workers`` decoding processes.

    ``min_size`` (the model's input size) lets JPEGs decode at a reduced scale; see :func:`load_rgb`.
    ``pin_memory`` (for a CUDA embedder) makes the host-to-device copy asynchronous.
    """

    def read(records: Sequence[ImageRecord]) -> Iterator[Batch]:
        if num_workers == 0:
            yield from _threaded_batches(_Images(records, transform, min_size), batch_size, failed)
            return
        _preload_forkserver(transform)
        loader = torch.utils.data.DataLoader(
            _Images(records, transform, min_size), batch_size=batch_size, num_workers=num_workers,
            collate_fn=_collate, persistent_workers=False, prefetch_factor=4,
            # forkserver: workers must not inherit the vector store's runtime threads (LanceDB warns on fork).
            multiprocessing_context="forkserver",
            pin_memory=pin_memory,
        )
        for ids, pixels, bad in loader:
            if failed is not None:
                failed.extend(bad)
            if pixels is not None:
                yield ids, pixels

    return read


#: Imported once by the forkserver process, so that each DataLoader worker forks with them in memory.
_FORKSERVER_PRELOAD = ["__main__", "torch", "numpy", "PIL.Image", "tools.imageio", "tools.embedding"]


def _preload_forkserver(transform: Callable[..., Any]) -> None:
    """Have the forkserver import torch and the transform's modules before it forks any worker.

    Without this, every worker of every run imports torch (and open_clip, through the pickled transform)
    on its own: on a 16-core GPU machine, 14 workers importing at once cost minutes per indexing run
    (measured 46 images/s end to end for ViT-B-32 on an H200 whose model alone did 20,000). The preload
    list only takes effect before the forkserver first starts; later calls are no-ops.
    """
    import multiprocessing

    modules = list(_FORKSERVER_PRELOAD)
    for part in getattr(transform, "transforms", [transform]):
        module = type(part).__module__
        if module and module != "builtins" and module not in modules:
            modules.append(module)
    multiprocessing.get_context("forkserver").set_forkserver_preload(modules)


def _threaded_batches(images: _Images, batch_size: int, failed: list[str] | None) -> Iterator[Batch]:
    """Decode the next batch in a thread while the caller embeds the current one.

    On a machine with few cores this beats worker processes: no process start-up, and Pillow releases the
    GIL while it decodes and resizes, so decoding overlaps the model's own threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    def load(start: int) -> tuple[list[str], torch.Tensor | None, list[str]]:
        return _collate([images[i] for i in range(start, min(start + batch_size, len(images)))])

    starts = list(range(0, len(images), batch_size))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, starts[0]) if starts else None
        for k in range(len(starts)):
            assert pending is not None
            ids, pixels, bad = pending.result()
            pending = pool.submit(load, starts[k + 1]) if k + 1 < len(starts) else None
            if failed is not None:
                failed.extend(bad)
            if pixels is not None:
                yield ids, pixels


def model_embedder(model: Any, *, device: str = "cpu") -> Embedder:
    """The default embedder: ``encode_image`` in inference mode, fp16 autocast on CUDA, unit-length rows."""
    model = model.to(device).eval()
    use_amp = str(device).startswith("cuda")

    def embed(pixels: torch.Tensor) -> np.ndarray:
        ctx = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            feats = model.encode_image(pixels.to(device, non_blocking=True))
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32)

    return embed


def store_writer(store: VectorStore, metadata: dict[str, dict[str, Any]]) -> Writer:
    """The default writer: upsert vectors with each image's metadata."""

    def write(ids: list[str], vectors: np.ndarray) -> int:
        return store.upsert(ids, vectors, [metadata[i] for i in ids])

    return write


@dataclass
class IndexReport:
    """What an indexing run did; ``to_dict`` is the CLI's ``--json`` document."""

    index: str
    store: str
    model: str
    images: int = 0
    embedded: int = 0
    skipped_existing: int = 0
    failed: list[str] = field(default_factory=list)
    count: int = 0
    seconds: float = 0.0
    activated: bool = False
    job_id: str | None = None
    ann: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_s"] = round(self.embedded / self.seconds, 1) if self.seconds > 0 else 0.0
        out["seconds"] = round(self.seconds, 2)
        return out


def run_pipeline(
    records: Sequence[ImageRecord], *, reader: Reader, embedder: Embedder, writer: Writer,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Push ``records`` through reader -> embedder -> writer; returns how many vectors were written."""
    written = 0
    for ids, pixels in reader(records):
        written += writer(ids, embedder(pixels))
        if on_batch is not None:
            on_batch(len(ids))
    return written


def build_index(
    catalog: Catalog, registry: IndexRegistry, *, model_key: str, model: Any,
    transform: Callable[[Image.Image], torch.Tensor], dim: int, device: str = "cpu", batch_size: int = 64,
    num_workers: int = 2, activate: bool = True, progress: bool = True,
    reader: Reader | None = None, embedder: Embedder | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    make_reader: Callable[[list[str]], Reader] | None = None,
) -> IndexReport:
    """Build (or finish) the index of ``model_key`` over every accepted image, then make it active.

    ``on_progress(done, total)`` is called after each batch (e.g. to stream progress to a chat).
    ``make_reader(failed)`` builds the reader given the list its unreadable image ids go to (another data
    path or engine: :mod:`tools.device_pixels`, :mod:`tools.distributed.ray_index`).
    """
    name = index_name_for_model(model_key)
    store = registry.open(name, dim, create=True)
    report = IndexReport(index=name, store=registry.kind, model=model_key)
    started = time.perf_counter()
    records = list(catalog.iter_images(status="ok"))
    report.images = len(records)
    present = store.ids()
    todo = [r for r in records if r.id not in present]
    report.skipped_existing = len(records) - len(todo)
    # A complete index is refreshed in place: new vectors are appended while it keeps answering searches,
    # and a refresh killed midway leaves it complete (with what it held, plus what was appended).
    known = catalog.get_index(name)
    live = known is not None and known["state"] == "complete" and known["store"] == registry.kind
    if not live:
        catalog.upsert_index(name, model=model_key, store=registry.kind, dim=dim, state="building",
                             count=len(present))
    params = {"index": name, "model": model_key, "store": registry.kind, "batch_size": batch_size}
    with catalog.job("index", params, total=len(records)) as job:
        report.job_id = job.id
        bar = tqdm(total=len(records), initial=report.skipped_existing, unit="img", desc=f"index {name}",
                   disable=not progress, dynamic_ncols=True)
        done = report.skipped_existing

        def step(n: int) -> None:
            nonlocal done
            done += n
            bar.update(n)
            catalog.progress(job.id, done)  # raises JobCancelled on a cancel request: the vectors written stay
            if on_progress is not None:
                on_progress(done, len(records))

        if reader is None and make_reader is not None:
            reader = make_reader(report.failed)
        reader = reader or dataloader_reader(transform, batch_size=batch_size, num_workers=num_workers,
                                             failed=report.failed, min_size=input_size(model),
                                             pin_memory=str(device).startswith("cuda"))
        embedder = embedder or model_embedder(model, device=device)
        writer = store_writer(store, {r.id: image_metadata(r) for r in todo})
        report.embedded = run_pipeline(todo, reader=reader, embedder=embedder, writer=writer, on_batch=step)
        bar.close()
        report.count = store.count()
        report.seconds = time.perf_counter() - started
        complete = report.count >= len(records) - len(report.failed)
        # a live index stays complete (searchable) even when some images failed to decode: they are reported
        catalog.upsert_index(name, model=model_key, store=registry.kind, dim=dim,
                             state="complete" if complete or live else "failed", count=report.count)
        catalog.update_job(job.id, result=report.to_dict() | {"failed": len(report.failed)})
    if complete:
        # Large tables get an approximate index before they go live (LanceDB; a no-op below its threshold).
        report.ann = ensure_ann_index(catalog, store)
        if activate:
            catalog.set_alias(alias_name(registry.kind), name)
            report.activated = True
    return report


def ensure_ann_index(catalog: Catalog, store: VectorStore) -> dict[str, Any] | None:
    """Build the store's approximate index as a job once it holds more rows than its exact-search threshold.

    Stores without approximate indexes (Astra DB indexes every collection itself) are left alone.
    """
    build = getattr(store, "build_ann_index", None)
    threshold = getattr(store, "ann_threshold", None)
    if build is None or threshold is None or store.count() < threshold:
        return None
    if getattr(store, "ann_index_type", None) and not getattr(store, "unindexed_rows", lambda: 0)():
        return None  # already indexed, nothing new since
    with catalog.job("ann_index", {"index": store.name}) as job:
        result = build()
        doc = {"built": result.built, "rows": result.rows, "index_type": result.index_type,
               "seconds": round(result.seconds, 2), "reason": result.reason}
        catalog.update_job(job.id, result=doc)
    return doc


def input_size(model: Any) -> int | None:
    """The square input size of an open_clip image tower, when it says."""
    size = getattr(getattr(model, "visual", None), "image_size", None)
    if isinstance(size, tuple | list):
        size = max(size)
    return int(size) if isinstance(size, int) else None
