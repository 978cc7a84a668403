"""The GPU data path: workers hand uint8 pixels (or JPEG bytes) over; resize, crop and normalise run on the device.

The host path (:func:`tools.embedding.dataloader_reader`) runs the model's whole PIL transform in the decoding
workers and ships float32 batches, four times the size of the pixels, across processes. Here the workers only
decode (or, for plain JPEG files, only read the bytes: :func:`torchvision.io.decode_jpeg` then decodes a whole
batch on the GPU), and :class:`DevicePreprocess` does what the transform did, batched, on the model's device:
bicubic resize with antialiasing (the shorter side to the model's size, rounded back to uint8 as PIL does),
centre crop, scaling to [0, 1] and normalisation, then channels-last and the autocast dtype.

The decoding processes (:class:`DecodePool`) stay alive across batches and across jobs of the same process.
On a CPU the same code runs unchanged (the tests compare it with the host path's output); it pays on a GPU.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from tools.imageio import load_rgb

Precision = Literal["fp32", "fp16", "bf16"]
#: one image as the workers hand it over: uint8 (3, H, W) pixels, or a 1-D uint8 tensor of JPEG bytes
Pixels = torch.Tensor
PixelBatch = tuple[list[str], list[Pixels]]
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclass(frozen=True)
class PixelSpec:
    """What an open_clip evaluation transform does: resize the shorter side, centre-crop, normalise."""

    resize: int
    crop: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: InterpolationMode = InterpolationMode.BICUBIC

    @classmethod
    def from_transform(cls, transform: Any) -> PixelSpec | None:
        """Read a ``Compose(Resize(int), CenterCrop, convert, ToTensor, Normalize)``; None for anything else."""
        parts = getattr(transform, "transforms", None)
        if not parts:
            return None
        resize = crop = mean = std = None
        interpolation = InterpolationMode.BICUBIC
        for part in parts:
            name = type(part).__name__
            if name == "Resize":
                size = part.size
                size = size[0] if isinstance(size, list | tuple) and len(size) == 1 else size
                if not isinstance(size, int) or part.max_size is not None:
                    return None
                resize, interpolation = size, part.interpolation
            elif name == "CenterCrop":
                crop = tuple(part.size) if isinstance(part.size, list | tuple) else (part.size, part.size)
            elif name == "Normalize":
                mean, std = tuple(part.mean), tuple(part.std)
            elif name not in ("MaybeConvertMode", "MaybeToTensor", "ToTensor", "function"):
                return None  # a step this path does not know: keep the host path
        if resize is None or crop is None or mean is None or std is None or len(crop) != 2:
            return None
        return cls(resize, (int(crop[0]), int(crop[1])), mean, std, interpolation)


def to_uint8(image: Any) -> Pixels:
    """A PIL RGB image as a uint8 (3, H, W) tensor (no copy of the decoded bytes beyond one)."""
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def read_pixels(uri: str, *, min_size: int | None = None, jpeg_bytes: bool = False) -> Pixels:
    """One image for the device path: the file's bytes when ``jpeg_bytes`` and it is a plain JPEG file,
    else the pixels decoded by :func:`load_rgb` (so scene windows and every format keep working)."""
    if jpeg_bytes and "#" not in uri and uri.lower().endswith(_JPEG_SUFFIXES):
        data = Path(uri).read_bytes()
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return to_uint8(load_rgb(uri, min_size=min_size))


class DevicePreprocess:
    """Batched resize -> crop -> normalise on ``device``; the input is a list of :data:`Pixels`."""

    def __init__(self, spec: PixelSpec, device: str | torch.device = "cpu", *, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False) -> None:
        self.spec = spec
        self.device = torch.device(device)
        self.dtype = dtype
        self.channels_last = channels_last
        self.mean = torch.tensor(spec.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=self.device).view(1, 3, 1, 1)

    def decode(self, images: Sequence[Pixels]) -> list[torch.Tensor]:
        """JPEG byte tensors decoded in one batched call on the device; pixel tensors moved there."""
        from torchvision.io import ImageReadMode, decode_jpeg

        jpeg = [i for i, im in enumerate(images) if im.dim() == 1]
        out: list[torch.Tensor] = [im for im in images]
        if jpeg:
            decoded = decode_jpeg([images[i] for i in jpeg], mode=ImageReadMode.RGB, device=self.device)
            for i, im in zip(jpeg, decoded, strict=True):
                out[i] = im
        return out

    def __call__(self, images: Sequence[Pixels]) -> torch.Tensor:
        decoded = self.decode(images)
        h, w = self.spec.crop
        out = torch.empty((len(decoded), 3, h, w), dtype=torch.float32, device=self.device)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(decoded):
            by_shape.setdefault(tuple(im.shape), []).append(i)
        pin = self.device.type == "cuda"
        for rows in by_shape.values():  # tiles of a collection mostly share one size: one batched resize each
            batch = torch.stack([decoded[i] for i in rows])
            if pin and not batch.is_cuda:
                batch = batch.pin_memory()
            batch = batch.to(self.device, non_blocking=True)
            batch = F.resize(batch, [self.spec.resize], interpolation=self.spec.interpolation, antialias=True)
            batch = F.center_crop(batch, [h, w])
            out[torch.tensor(rows, device=self.device)] = batch.float().div_(255)
        out = (out - self.mean) / self.std
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out.to(self.dtype)


def image_encoder(model: Any, device: torch.device, *, precision: Precision = "fp32", channels_last: bool = False,
                  compile: bool = False, pure: bool = False) -> Callable[[torch.Tensor], np.ndarray]:
    """Preprocessed batch on ``device`` -> unit-length rows on the host: ``encode_image`` in inference mode.

    ``precision`` is the autocast dtype; ``pure`` casts the weights to it instead (open_clip's ``pure_bf16``:
    no casts per op). ``channels_last`` converts the weights' memory format; ``compile`` wraps
    ``encode_image`` in :func:`torch.compile` (it pays for long jobs on a GPU; the first batches compile).
    """
    model = model.to(device).eval()
    if pure and precision != "fp32":
        model = model.to(dtype=_DTYPES[precision])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    encode = torch.compile(model.encode_image) if compile else model.encode_image
    amp = precision != "fp32" and not pure

    def embed(pixels: torch.Tensor) -> np.ndarray:
        ctx = torch.autocast(device.type, dtype=_DTYPES[precision]) if amp else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            feats = encode(pixels.to(_DTYPES[precision]) if pure else pixels)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32)

    return embed


def device_embedder(model: Any, preprocess: DevicePreprocess, *, precision: Precision = "fp32",
                    channels_last: bool = False, compile: bool = False,
                    pure: bool = False) -> Callable[[Sequence[Pixels]], np.ndarray]:
    """:func:`image_encoder` after :class:`DevicePreprocess`: uint8 pixels (or JPEG bytes) in, unit rows out."""
    encode = image_encoder(model, preprocess.device, precision=precision, channels_last=channels_last,
                           compile=compile, pure=pure)

    def embed(images: Sequence[Pixels]) -> np.ndarray:
        with torch.inference_mode():
            pixels = preprocess(images)
        return encode(pixels)

    return embed


# -- the decoding workers -----------------------------------------------------------------------------


def _read_chunk(items: list[tuple[str, str]], min_size: int | None, jpeg_bytes: bool
                ) -> list[tuple[str, Pixels | None]]:
    out: list[tuple[str, Pixels | None]] = []
    for image_id, uri in items:
        try:
            out.append((image_id, read_pixels(uri, min_size=min_size, jpeg_bytes=jpeg_bytes)))
        except Exception:  # noqa: BLE001 - a file that broke since ingestion: reported as failed
            out.append((image_id, None))
    return out


class DecodePool:
    """Decoding processes kept for the life of the process (one pool per size), so jobs do not pay start-up.

    ``pool(n)`` returns the shared pool of ``n`` processes (forkserver, with torch preloaded once).
    """

    _pools: dict[int, ProcessPoolExecutor] = {}
    _lock = threading.Lock()

    @classmethod
    def get(cls, workers: int) -> ProcessPoolExecutor:
        with cls._lock:
            pool = cls._pools.get(workers)
            if pool is None:
                import multiprocessing

                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["torch", "numpy", "PIL.Image", "tools.imageio", "tools.device_pixels"])
                pool = cls._pools[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            return pool

    @classmethod
    def shutdown(cls) -> None:
        with cls._lock:
            for pool in cls._pools.values():
                pool.shutdown(wait=True, cancel_futures=True)
            cls._pools.clear()


def pixel_reader(*, batch_size: int = 64, num_workers: int = 0, min_size: int | None = None,
                 failed: list[str] | None = None, jpeg_bytes: bool = False) -> Callable[[Sequence[Any]], Iterator[Any]]:
    """A reader for :func:`tools.embedding.run_pipeline` that yields ``(ids, [uint8 pixels])`` batches.

    ``num_workers`` 0 decodes the next batch in a thread beside the model; more use the persistent
    :class:`DecodePool`, with at most ``2 * num_workers`` batches in flight (memory stays bounded).
    ``jpeg_bytes`` hands plain JPEG files over undecoded (the device decodes them).
    """

    def read(records: Sequence[Any]) -> Iterator[PixelBatch]:
        chunks = [[(r.id, r.uri) for r in records[s:s + batch_size]] for s in range(0, len(records), batch_size)]
        if num_workers == 0:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=1) as threads:
                yield from _ordered(lambda c: threads.submit(_read_chunk, c, min_size, jpeg_bytes), chunks, 1, failed)
            return
        pool = DecodePool.get(num_workers)
        yield from _ordered(lambda c: pool.submit(_read_chunk, c, min_size, jpeg_bytes), chunks,
                            2 * num_workers, failed)

    return read


def _ordered(submit: Callable[[list[tuple[str, str]]], Future[list[tuple[str, Pixels | None]]]],
             chunks: list[list[tuple[str, str]]], ahead: int, failed: list[str] | None) -> Iterator[PixelBatch]:
    """The chunks' results in order, keeping ``ahead`` chunks submitted beyond the one being consumed."""
    pending: list[Future[list[tuple[str, Pixels | None]]]] = []
    nxt = 0
    while nxt < len(chunks) or pending:
        while nxt < len(chunks) and len(pending) <= ahead:
            pending.append(submit(chunks[nxt]))
            nxt += 1
        rows = pending.pop(0).result()
        ok = [(i, p) for i, p in rows if p is not None]
        if failed is not None:
            failed.extend(i for i, p in rows if p is None)
        if ok:
            yield [i for i, _ in ok], [p for _, p in ok]


def device_path(model: Any, transform: Any, device: str | torch.device, *, batch_size: int = 64,
                num_workers: int = 0, min_size: int | None = None, failed: list[str] | None = None,
                precision: Precision | None = None, jpeg_bytes: bool | None = None,
                channels_last: bool | None = None, compile: bool = False) -> tuple[Any, Any] | None:
    """(reader, embedder) of the device path for ``model``, or None when its transform is not a plain one.

    Defaults: on CUDA, fp16 autocast (as the host path), channels-last and JPEG bytes decoded on the
    GPU; on a CPU, fp32 and pixels decoded by the workers (the same outputs as the host path).
    """
    spec = PixelSpec.from_transform(transform)
    if spec is None:
        return None
    cuda = torch.device(device).type == "cuda"
    last = cuda if channels_last is None else channels_last
    pre = DevicePreprocess(spec, device, channels_last=last)
    reader = pixel_reader(batch_size=batch_size, num_workers=num_workers, min_size=min_size, failed=failed,
                          jpeg_bytes=cuda if jpeg_bytes is None else jpeg_bytes)
    embedder = device_embedder(model, pre, precision=precision or ("fp16" if cuda else "fp32"),
                               channels_last=last, compile=compile)
    return reader, embedder


__all__ = ["DecodePool", "DevicePreprocess", "PixelSpec", "Pixels", "Precision", "device_embedder", "device_path",
           "image_encoder", "pixel_reader", "read_pixels", "to_uint8"]
