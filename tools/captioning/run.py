"""The captioning job: caption every accepted image that lacks a caption from the chosen source.

Work is selected from the catalog each time ("images without a caption from this source"), and every
batch is committed as it finishes, so a crashed run simply starts again where it stopped.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tools.captioning.base import Captioner, CaptionInput
from tools.captioning.quality import better_sources
from tools.catalog import Catalog, ImageRecord
from tools.imageio import load_rgb


@dataclass
class CaptionReport:
    """What a captioning run did; ``to_dict`` is the CLI's ``--json`` document."""

    captioner: str
    model: str
    images: int = 0
    captioned: int = 0
    captions_added: int = 0
    nothing_to_say: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    job_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_s"] = round(self.images / self.seconds, 1) if self.seconds > 0 else 0.0
        out["seconds"] = round(self.seconds, 3)
        return out


def _to_input(img: ImageRecord) -> CaptionInput:
    meta = img.metadata
    return CaptionInput(
        image_id=img.id, uri=img.uri, label=img.labels[0] if img.labels else None,
        label_text=meta.get("label_text"),
        # a chip's folder is its scene's, which says nothing about what the chip shows
        folder=None if img.scene_id else meta.get("folder") or Path(img.uri).parent.name,
        tags=meta.get("tags") or {},
    )


def _todo(catalog: Catalog, captioner: Captioner, *, only_uncaptioned: bool, also_captioned: bool,
          limit: int | None) -> list[str]:
    """The images to caption: lacking this captioner's captions, and (unless ``also_captioned``) lacking
    better ones too; with ``only_uncaptioned``, lacking any caption."""
    if only_uncaptioned:
        return catalog.images_without_caption(None, limit=limit)
    todo = catalog.images_without_caption(captioner.source)
    better = [] if also_captioned else better_sources(captioner.source)
    if better:
        have = catalog.images_with_caption_from(better)
        todo = [i for i in todo if i not in have]
    return todo[:limit] if limit is not None else todo


def caption_images(
    catalog: Catalog, captioner: Captioner, *, batch_size: int = 64, limit: int | None = None,
    workers: int = 2, progress: bool = True, only_uncaptioned: bool = False, also_captioned: bool = False,
) -> CaptionReport:
    """Caption what lacks a caption from ``captioner.source``; returns counts, failures and speed.

    Images that already have better captions (human over model over rules) are left alone unless
    ``also_captioned``; ``only_uncaptioned`` narrows the work to images with no caption at all.
    """
    report = CaptionReport(captioner=captioner.source, model=captioner.model_id)
    todo = _todo(catalog, captioner, only_uncaptioned=only_uncaptioned, also_captioned=also_captioned, limit=limit)
    started = time.perf_counter()
    params = {"captioner": captioner.source, "model": captioner.model_id, "batch_size": batch_size}
    with catalog.job("caption", params, total=len(todo)) as job, \
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        report.job_id = job.id
        model_of = getattr(captioner, "model_of", None)  # a rule captioner may say what each caption rests on
        bar = tqdm(total=len(todo), unit="img", desc=f"caption ({captioner.source})", disable=not progress,
                   dynamic_ncols=True)
        for start in range(0, len(todo), batch_size):
            inputs = [_to_input(img) for img in catalog.iter_images(ids=todo[start:start + batch_size])]
            if captioner.needs_pixels:
                inputs = _with_pixels(pool, inputs, report)
            results = captioner.caption(inputs) if inputs else []
            rows: list[tuple[str, str, str, str | None]] = []
            for item, texts in zip(inputs, results, strict=True):
                if texts:
                    report.captioned += 1
                    model = model_of(item) if model_of else captioner.model_id
                    rows.extend((item.image_id, t, captioner.source, model) for t in texts)
                else:
                    report.nothing_to_say += 1
            report.captions_added += catalog.add_captions(rows)
            report.images += len(todo[start:start + batch_size])
            bar.update(len(todo[start:start + batch_size]))
            bar.set_postfix(captions=report.captions_added)
            catalog.progress(job.id, report.images)  # raises JobCancelled on a cancel request
        bar.close()
        report.seconds = time.perf_counter() - started
        catalog.update_job(job.id, result={k: v for k, v in report.to_dict().items() if k != "failed"}
                           | {"failed": len(report.failed)})
    return report


def _with_pixels(pool: ThreadPoolExecutor, inputs: list[CaptionInput], report: CaptionReport) -> list[CaptionInput]:
    """Decode the batch's images in threads; a file that vanished or broke since ingestion is reported."""

    def load(item: CaptionInput) -> CaptionInput | None:
        try:
            item.image = load_rgb(item.uri)
            return item
        except Exception as exc:  # noqa: BLE001 - the file changed after ingestion; report, go on
            report.failed.append({"image_id": item.image_id, "path": item.uri, "reason": str(exc)})
            return None

    return [it for it in pool.map(load, inputs) if it is not None]
