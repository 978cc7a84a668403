"""Captioning as a Ray Data job: what lacks a caption -> (decoding tasks) -> an actor pool of captioners -> catalog.

The same guarantees as :func:`tools.captioning.run.caption_images`: the work is selected from the catalog
("images without a caption from this source"), the driver commits every batch of captions as it arrives,
and the catalog's UNIQUE constraint keeps a rerun after a failure from duplicating any. Captioners are
built on the actors from a picklable factory (a BLIP model loads once per actor, ``num_gpus`` each);
images are decoded to uint8 pixels by CPU tasks only when the captioner needs pixels. Ray restarts an
actor whose process died and retries its batches.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from tools.captioning.base import Captioner, CaptionInput
from tools.captioning.run import CaptionReport, _to_input, _todo
from tools.catalog import Catalog
from tools.distributed.ray_common import DECODE_MEMORY, RayOptions, actor_pool, blocks, connect
from tools.imageio import load_rgb


def decode_pixels(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """CPU task: each image's uint8 (H, W, 3) pixels, or the reason it could not be read."""
    pixels: list[np.ndarray] = []
    errors: list[str] = []
    for uri in batch["uri"]:
        try:
            pixels.append(np.asarray(load_rgb(str(uri)), dtype=np.uint8))
            errors.append("")
        except Exception as exc:  # noqa: BLE001 - the file changed after ingestion; reported, the job goes on
            pixels.append(np.zeros((1, 1, 3), dtype=np.uint8))
            errors.append(str(exc) or type(exc).__name__)
    data: Any = np.empty(len(pixels), dtype=object)
    data[:] = pixels
    return {**batch, "pixels": data, "error": np.array(errors, dtype=object)}


class CaptionActor:
    """An actor of the pool: one captioner, built once from the factory, called on batches."""

    def __init__(self, factory: Callable[[], Captioner]) -> None:
        self.captioner = factory()
        self.model_of = getattr(self.captioner, "model_of", None)  # what each rule caption rests on
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from PIL import Image

        n = len(batch["id"])
        errors = list(batch["error"]) if "error" in batch else [""] * n
        inputs: list[CaptionInput] = []
        rows: list[int] = []
        for k in range(n):
            if errors[k]:
                continue
            item = CaptionInput(image_id=str(batch["id"][k]), uri=str(batch["uri"][k]),
                                label=str(batch["label"][k]) or None, label_text=str(batch["label_text"][k]) or None,
                                folder=str(batch["folder"][k]) or None, tags=json.loads(str(batch["tags"][k])))
            if "pixels" in batch:
                item.image = Image.fromarray(np.asarray(batch["pixels"][k], dtype=np.uint8), mode="RGB")
            inputs.append(item)
            rows.append(k)
        texts = [json.dumps([]) for _ in range(n)]
        models = [self.captioner.model_id] * n
        for k, item, captions in zip(rows, inputs, self.captioner.caption(inputs) if inputs else [], strict=True):
            texts[k] = json.dumps(list(captions))
            models[k] = self.model_of(item) if self.model_of else self.captioner.model_id
        return {"id": batch["id"], "uri": batch["uri"], "error": np.array(errors, dtype=object),
                "captions": np.array(texts, dtype=object), "model": np.array(models, dtype=object),
                "pid": np.full(n, self.pid)}


def captioner_factory(name: str, model: str | None, device: str, options: RayOptions, *, from_folders: bool = False
                      ) -> tuple[Captioner, Callable[[], Captioner]]:
    """(the captioner as the driver sees it, unloaded; the factory each actor builds its own with)."""
    from functools import partial

    from tools.captioning.factory import create_captioner

    actor_device = "cuda" if options.gpus(device) > 0 else "cpu"
    factory = partial(create_captioner, name, model=model, device=actor_device, batch_size=options.batch_size,
                      from_folders=from_folders)
    return create_captioner(name, model=model, device="cpu", batch_size=options.batch_size,
                            from_folders=from_folders), factory


def _row(img: Any) -> dict[str, Any]:
    item = _to_input(img)
    return {"id": item.image_id, "uri": item.uri, "label": item.label or "", "label_text": item.label_text or "",
            "folder": item.folder or "", "tags": json.dumps(item.tags or {}, sort_keys=True)}


def caption_images_ray(
    catalog: Catalog, captioner: Captioner, factory: Callable[[], Captioner], *, options: RayOptions,
    device: str = "cpu", limit: int | None = None, progress: bool = True, only_uncaptioned: bool = False,
    also_captioned: bool = False, pids: set[int] | None = None,
) -> CaptionReport:
    """Caption what lacks a caption from ``captioner.source`` with a pool of actors built by ``factory``.

    The same selection as the local path (:func:`tools.captioning.run.caption_images`: images with better
    captions are left alone unless ``also_captioned``). ``captioner`` (not loaded) names the source, model and
    whether pixels are needed; ``factory`` builds the working captioner on each actor. ``pids`` collects the
    process ids of the actors that captioned.
    """
    report = CaptionReport(captioner=captioner.source, model=captioner.model_id)
    todo = _todo(catalog, captioner, only_uncaptioned=only_uncaptioned, also_captioned=also_captioned, limit=limit)
    started = time.perf_counter()
    params = {"captioner": captioner.source, "model": captioner.model_id, "batch_size": options.batch_size,
              "engine": "ray"}
    with catalog.job("caption", params, total=len(todo)) as job:
        report.job_id = job.id
        bar = tqdm(total=len(todo), unit="img", desc=f"caption ({captioner.source}, ray)", disable=not progress,
                   dynamic_ncols=True)
        if todo:
            ray = connect(options, progress=progress)
            ds = ray.data.from_items([_row(img) for img in catalog.iter_images(ids=todo)],
                                     override_num_blocks=blocks(len(todo), options.batch_size))
            if captioner.needs_pixels:
                ds = ds.map_batches(decode_pixels, batch_size=options.batch_size, num_cpus=1, memory=DECODE_MEMORY)
            ds = ds.map_batches(CaptionActor, fn_constructor_kwargs={"factory": factory},
                                **actor_pool(ray, options, device))
            for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
                _commit(catalog, captioner, out, report, pids)
                bar.update(len(out["id"]))
                bar.set_postfix(captions=report.captions_added)
                catalog.progress(job.id, report.images)  # raises JobCancelled on a cancel request
        bar.close()
        report.seconds = time.perf_counter() - started
        catalog.update_job(job.id, result={k: v for k, v in report.to_dict().items() if k != "failed"}
                           | {"failed": len(report.failed)})
    return report


def _commit(catalog: Catalog, captioner: Captioner, out: dict[str, Any], report: CaptionReport,
            pids: set[int] | None) -> None:
    """Write one batch's captions (a UNIQUE constraint drops any a retried batch already wrote)."""
    rows: list[tuple[str, str, str, str | None]] = []
    for image_id, uri, error, texts, model in zip(out["id"], out["uri"], out["error"], out["captions"], out["model"],
                                                  strict=True):
        if error:
            report.failed.append({"image_id": str(image_id), "path": str(uri), "reason": str(error)})
            continue
        captions = json.loads(str(texts))
        if captions:
            report.captioned += 1
            rows.extend((str(image_id), t, captioner.source, str(model)) for t in captions)
        else:
            report.nothing_to_say += 1
    report.captions_added += catalog.add_captions(rows)
    report.images += len(out["id"])
    if pids is not None:
        pids.update(int(p) for p in out["pid"])


__all__ = ["CaptionActor", "caption_images_ray", "captioner_factory", "decode_pixels"]
