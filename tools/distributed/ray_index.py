"""Indexing as a Ray Data job: image references -> decoding tasks -> an actor pool of embedders -> the writer.

:func:`ray_reader` is a reader for :func:`tools.embedding.build_index`: it yields ``(ids, vectors)``
batches that a Ray Data job computed, and :func:`passthrough` is the matching embedder. Everything else is
the local path's: images already in the index are skipped, the writer upserts by image id on the driver (a
rerun after a failure resumes without duplicates), the job and index records, and the alias that moves only
once the index is complete.

The job: the references as a dataset (one block per model batch), ``map_batches`` of CPU tasks that
decode (the model's transform on the host, or uint8 pixels for :mod:`tools.device_pixels` on the actor's
device), and ``map_batches`` with an :class:`~ray.data.ActorPoolStrategy` of embedders, each holding the
model (shipped once through the object store) with ``num_gpus`` per actor. Ray restarts an actor whose
process died and retries its batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from tools.distributed.ray_common import DECODE_MEMORY, RayOptions, actor_pool, blocks, connect
from tools.imageio import load_rgb


def decode_batch(batch: dict[str, np.ndarray], *, transform: Any, min_size: int | None, raw: bool
                 ) -> dict[str, Any]:
    """CPU task: decode each image; ``raw`` keeps uint8 (H, W, 3) pixels, else applies ``transform``."""
    pixels: list[np.ndarray | None] = []
    for uri in batch["uri"]:
        try:
            image = load_rgb(str(uri), min_size=min_size)
            pixels.append(np.asarray(image, dtype=np.uint8) if raw else transform(image).numpy())
        except Exception:  # noqa: BLE001 - a file that broke since ingestion: reported as failed
            pixels.append(None)
    ok = np.array([p is not None for p in pixels], dtype=bool)
    if raw:
        filler = np.zeros((1, 1, 3), dtype=np.uint8)
        data: Any = np.empty(len(pixels), dtype=object)
        data[:] = [p if p is not None else filler for p in pixels]
    else:
        shape = next((p.shape for p in pixels if p is not None), (3, 1, 1))
        data = np.stack([p if p is not None else np.zeros(shape, np.float32) for p in pixels]).astype(np.float32)
    return {"id": batch["id"], "ok": ok, "pixels": data}


class Embedder:
    """An actor of the pool: the model on its device, called on decoded batches."""

    def __init__(self, model: Any, device: str, dim: int, transform: Any = None, raw: bool = False,
                 precision: str | None = None) -> None:
        from tools.embedding import model_embedder

        self.dim = dim
        self.raw = raw
        self.pid = os.getpid()
        if raw:
            from tools.device_pixels import DevicePreprocess, PixelSpec, device_embedder

            spec = PixelSpec.from_transform(transform)
            assert spec is not None
            cuda = str(device).startswith("cuda")
            self.embed: Any = device_embedder(model, DevicePreprocess(spec, device, channels_last=cuda),
                                              precision=precision or ("fp16" if cuda else "fp32"),  # type: ignore[arg-type]
                                              channels_last=cuda)
        else:
            self.embed = model_embedder(model, device=device)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        ok = np.asarray(batch["ok"], dtype=bool)
        vectors = np.zeros((len(ok), self.dim), dtype=np.float32)
        if ok.any():
            rows = [p for p, good in zip(batch["pixels"], ok, strict=True) if good]
            if self.raw:
                vectors[ok] = self.embed([torch.from_numpy(np.ascontiguousarray(p)).permute(2, 0, 1) for p in rows])
            else:
                vectors[ok] = self.embed(torch.from_numpy(np.stack(rows)))
        return {"id": batch["id"], "ok": ok, "vector": vectors, "pid": np.full(len(ok), self.pid)}


def ray_reader(model: Any, transform: Any, *, dim: int, device: str, options: RayOptions, min_size: int | None,
               failed: list[str], device_preprocess: bool = False, progress: bool = False,
               pids: set[int] | None = None) -> Any:
    """A reader for :func:`tools.embedding.build_index` whose batches are already vectors (Ray Data job).

    ``device_preprocess`` ships uint8 pixels to the actors, which resize and normalise on their device
    (:mod:`tools.device_pixels`). ``pids`` collects the process ids of the actors that embedded.
    """

    def read(records: Sequence[Any]) -> Iterator[tuple[list[str], np.ndarray]]:
        if not records:
            return
        ray = connect(options, progress=progress)
        ds = ray.data.from_items([{"id": r.id, "uri": r.uri} for r in records],
                                 override_num_blocks=blocks(len(records), options.batch_size))
        # decoding runs as CPU tasks; their memory reservation also keeps Ray from fusing them into the actors
        ds = ds.map_batches(decode_batch, batch_size=options.batch_size, num_cpus=1, memory=DECODE_MEMORY,
                            fn_kwargs={"transform": transform, "min_size": min_size, "raw": device_preprocess})
        ds = ds.map_batches(Embedder, fn_constructor_kwargs={
            "model": model, "device": device, "dim": dim, "transform": transform, "raw": device_preprocess},
            **actor_pool(ray, options, device))
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            ok = np.asarray(out["ok"], dtype=bool)
            ids = [str(i) for i in out["id"]]
            failed.extend(i for i, good in zip(ids, ok, strict=True) if not good)
            if pids is not None:
                pids.update(int(p) for p in out["pid"])
            if ok.any():
                yield [i for i, good in zip(ids, ok, strict=True) if good], np.asarray(out["vector"])[ok]

    return read


def passthrough(vectors: Any) -> np.ndarray:
    """The embedder that goes with :func:`ray_reader`: its batches are vectors already."""
    return np.asarray(vectors, dtype=np.float32)


__all__ = ["Embedder", "decode_batch", "passthrough", "ray_reader"]
