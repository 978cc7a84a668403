"""The GPU data path run on the CPU: the same pixels and embeddings as the host path (the model's PIL transform)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from tools.device_pixels import DecodePool, DevicePreprocess, PixelSpec, device_path, pixel_reader, read_pixels
from tools.embedding import dataloader_reader, model_embedder, run_pipeline
from tools.imageio import load_rgb

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "ucm_sample" / "images"


@dataclass(frozen=True)
class Rec:
    id: str
    uri: str


@pytest.fixture(scope="module")
def paths() -> list[str]:
    found = sorted(str(p) for p in SAMPLE.rglob("*.jpg"))[::8]
    assert len(found) >= 30
    return found


@pytest.fixture(scope="module")
def vit_transform():  # type: ignore[no-untyped-def]
    return open_clip.image_transform(224, is_train=False)


def test_spec_is_read_from_open_clip_transforms(vit_transform) -> None:  # type: ignore[no-untyped-def]
    spec = PixelSpec.from_transform(vit_transform)
    assert spec is not None and spec.resize == 224 and spec.crop == (224, 224)
    assert PixelSpec.from_transform(open_clip.image_transform(224, is_train=True)) is None  # random crops: host path


def test_device_preprocess_matches_the_pil_transform(paths: list[str], vit_transform) -> None:  # type: ignore[no-untyped-def]
    ref = torch.stack([vit_transform(load_rgb(p)) for p in paths])
    pre = DevicePreprocess(PixelSpec.from_transform(vit_transform))  # type: ignore[arg-type]
    got = pre([read_pixels(p) for p in paths])
    assert got.shape == ref.shape and got.dtype == torch.float32
    diff = (got - ref).abs()
    # one uint8 level after resizing is 1/255/std ~ 0.015 in normalised units; almost every value is exact
    assert float(diff.max()) < 0.035 and float(diff.mean()) < 1e-3
    # JPEG bytes decoded by torchvision (on the device on a GPU) give the same batch
    assert float((pre([read_pixels(p, jpeg_bytes=True) for p in paths]) - ref).abs().max()) < 0.035


def keep(into: dict[str, np.ndarray], ids: list[str], vectors: np.ndarray) -> int:
    into.update(zip(ids, vectors, strict=True))
    return len(ids)


@pytest.mark.slow
def test_device_path_embeds_like_the_host_path(paths: list[str]) -> None:
    from tools.models import load_model

    tiny = load_model("skyscout-tiny", cache_dir=Path(tempfile.mkdtemp()))
    records = [Rec(str(i), p) for i, p in enumerate(paths)] + [Rec("broken", "/nonexistent.jpg")]
    host: dict[str, np.ndarray] = {}
    failed_host: list[str] = []
    run_pipeline(records, reader=dataloader_reader(tiny.preprocess_val, batch_size=8, num_workers=0, min_size=64,
                                                   failed=failed_host),
                 embedder=model_embedder(tiny.model), writer=lambda ids, v: keep(host, ids, v))
    failed: list[str] = []
    stages = device_path(tiny.model, tiny.preprocess_val, "cpu", batch_size=8, num_workers=0, min_size=64,
                         failed=failed)
    assert stages is not None
    dev: dict[str, np.ndarray] = {}
    run_pipeline(records, reader=stages[0], embedder=stages[1], writer=lambda ids, v: keep(dev, ids, v))
    assert failed == failed_host == ["broken"] and dev.keys() == host.keys()
    cos = min(float(np.dot(host[k], dev[k])) for k in host)
    assert cos >= 0.9999, cos


def test_decode_pool_keeps_its_workers_across_jobs(paths: list[str]) -> None:
    records = [Rec(str(i), p) for i, p in enumerate(paths[:12])]
    read = pixel_reader(batch_size=4, num_workers=2, min_size=64)
    try:
        first = [(ids, [t.clone() for t in px]) for ids, px in read(records)]
        pids = {p.pid for p in DecodePool.get(2)._processes.values()}  # type: ignore[attr-defined]
        second = list(read(records))
        assert {p.pid for p in DecodePool.get(2)._processes.values()} == pids  # type: ignore[attr-defined]
    finally:
        DecodePool.shutdown()
    assert [ids for ids, _ in first] == [ids for ids, _ in second] == [["0", "1", "2", "3"], ["4", "5", "6", "7"],
                                                                          ["8", "9", "10", "11"]]
    for (_, a), (_, b) in zip(first, second, strict=True):
        assert all(torch.equal(x, y) and x.dtype == torch.uint8 for x, y in zip(a, b, strict=True))
