"""Ingestion: planted bad files are each rejected with their own reason, good files all land, twice is once."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.catalog import Catalog
from tools.imageio import inspect_file
from tools.ingest import ingest_directory, ingest_manifest
from tools.paths import PathNotAllowedError, resolve_roots


def _rgb(seed: int, size: tuple[int, int] = (32, 24)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _jpeg_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    _rgb(seed, (64, 64)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, dict[str, str], list[str]]:
    """A tree with good images in every format next to bad files; returns (root, bad->reason part, good)."""
    root = tmp_path / "tiles"
    (root / "forest").mkdir(parents=True)
    (root / "river").mkdir()
    good = []
    _rgb(1).save(root / "forest" / "a.jpg", quality=90)
    _rgb(2).save(root / "forest" / "b.png")
    _rgb(3).save(root / "river" / "c.tif")
    _rgb(4).save(root / "river" / "d.webp")
    Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30)).save(root / "river" / "e16.tif")
    good += ["forest/a.jpg", "forest/b.png", "river/c.tif", "river/d.webp", "river/e16.tif"]
    bad: dict[str, str] = {}
    (root / "zero.jpg").write_bytes(b"")
    bad["zero.jpg"] = "empty file"
    (root / "notes.jpg").write_text("this is not an image, just text pretending to be one\n")
    bad["notes.jpg"] = "not a recognised image format"
    data = _jpeg_bytes(5)
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    bad["truncated.jpg"] = "truncated"
    png = io.BytesIO()
    _rgb(6).save(png, "PNG")
    raw = bytearray(png.getvalue())
    raw[60:120] = os.urandom(60)  # corrupt the compressed pixel data, keep the header
    (root / "corrupt.png").write_bytes(bytes(raw))
    bad["corrupt.png"] = "corrupt"
    Image.new("LAB", (16, 16)).save(root / "lab.tif")
    bad["lab.tif"] = "unsupported pixel mode"
    Image.new("1", (12_000, 12_000)).save(root / "bomb.png")  # 144 Mpx, a few KB on disk
    bad["bomb.png"] = "decompression bomb"
    (root / "page.tiff").write_text("<html><body>404</body></html>")
    bad["page.tiff"] = "not a recognised image format"
    outside = tmp_path / "outside"
    outside.mkdir()
    _rgb(7).save(outside / "secret.jpg")
    (root / "escape.jpg").symlink_to(outside / "secret.jpg")
    bad["escape.jpg"] = "outside the allowed data roots"
    (root / "notes.txt").write_text("ignored: not an image suffix")
    (root / "zz_copies").mkdir()
    shutil.copy(root / "forest" / "a.jpg", root / "zz_copies" / "copy_of_a.jpg")
    return root, bad, good


def test_planted_bad_files_each_get_their_reason(planted: tuple[Path, dict[str, str], list[str]],
                                                 tmp_path: Path) -> None:
    root, bad, good = planted
    cat = Catalog(tmp_path / "cat.db")
    report = ingest_directory(cat, root, allowed_roots=resolve_roots([root]), progress=False,
                              labels_from_folders=True)
    reasons = {Path(r["path"]).name: r["reason"] for r in report.rejected}
    assert set(reasons) == set(bad), f"rejected {sorted(reasons)}, planted {sorted(bad)}"
    for name, part in bad.items():
        assert part in reasons[name], f"{name}: {reasons[name]!r} does not mention {part!r}"
    assert report.added == len(good)
    assert report.duplicates == 1 and report.duplicate_of[0]["path"].endswith("copy_of_a.jpg")
    uris = {Path(r.uri).relative_to(root.resolve()).as_posix() for r in cat.iter_images()}
    assert uris == set(good)
    # The copy's folder label is attached to the one stored image.
    assert cat.label_counts() == {"forest": 2, "river": 3, "zz_copies": 1}
    e16 = next(r for r in cat.iter_images() if r.uri.endswith("e16.tif"))
    assert (e16.width, e16.height, e16.bands, e16.mode) == (30, 20, 1, "I;16")
    # Rejections are remembered in the catalog with their reason.
    assert {Path(r.uri).name for r in cat.rejected_images()} >= {"zero.jpg", "truncated.jpg", "bomb.png"}

    again = ingest_directory(cat, root, allowed_roots=resolve_roots([root]), progress=False)
    assert again.added == 0 and again.unchanged == len(good) and again.duplicates == 1
    assert cat.count_images() == len(good)


def test_paths_outside_roots_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "allowed"
    root.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    cat = Catalog(tmp_path / "cat.db")
    with pytest.raises(PathNotAllowedError, match="outside the allowed data roots"):
        ingest_directory(cat, other, allowed_roots=resolve_roots([root]), progress=False)
    with pytest.raises(PathNotAllowedError):
        ingest_directory(cat, root / ".." / "other", allowed_roots=resolve_roots([root]), progress=False)
    (root / "link").symlink_to(other, target_is_directory=True)
    with pytest.raises(PathNotAllowedError, match="symlinks"):
        ingest_directory(cat, root / "link", allowed_roots=resolve_roots([root]), progress=False)


def test_symlinked_directory_escaping_root_is_reported_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    _rgb(1).save(other / "x.png")
    _rgb(2).save(root / "y.png")
    (root / "sneaky").symlink_to(other, target_is_directory=True)
    cat = Catalog(tmp_path / "cat.db")
    report = ingest_directory(cat, root, allowed_roots=resolve_roots([root]), progress=False)
    assert report.added == 1
    assert any("sneaky" in r["path"] and "refused" in r["reason"] for r in report.rejected)


def test_manifest_jsonl_and_csv(tmp_path: Path) -> None:
    root = tmp_path / "m"
    (root / "img").mkdir(parents=True)
    for i in range(3):
        _rgb(10 + i).save(root / "img" / f"{i}.png")
    rows = [
        {"image": "img/0.png", "label": "beach", "split": "train", "captions": ["a beach", "sand and sea"]},
        {"path": "img/1.png", "labels": ["port", "boats"], "metadata": {"tags": {"harbour": "yes"}}},
        {"image": "img/missing.png", "label": "x"},
        {"nothing": "here"},
    ]
    (root / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken json\n")
    cat = Catalog(tmp_path / "cat.db")
    rep = ingest_manifest(cat, root / "m.jsonl", allowed_roots=resolve_roots([tmp_path]), progress=False)
    assert rep.added == 2 and rep.captions_added == 2 and rep.source == "m"
    reasons = sorted(r["reason"] for r in rep.rejected)
    assert any("file not found" in r for r in reasons)
    assert sum("bad manifest line" in r for r in reasons) == 2
    img0 = next(r for r in cat.iter_images() if r.uri.endswith("0.png"))
    assert img0.labels == ["beach"] and img0.metadata["split"] == "train"
    assert cat.captions_of(img0.id, "human") == ["a beach", "sand and sea"]
    img1 = next(r for r in cat.iter_images() if r.uri.endswith("1.png"))
    assert img1.labels == ["boats", "port"] and img1.metadata["tags"] == {"harbour": "yes"}

    (root / "m.csv").write_text("path,label,captions,minx,miny,maxx,maxy\n"
                                "img/2.png,river,a river|water flowing,1,2,3,4\n")
    rep = ingest_manifest(cat, root / "m.csv", allowed_roots=resolve_roots([tmp_path]), progress=False)
    assert rep.added == 1 and rep.captions_added == 2
    img2 = next(r for r in cat.iter_images() if r.uri.endswith("2.png"))
    assert img2.labels == ["river"] and img2.metadata["minx"] == "1"


def test_geotiff_bounds_and_crs_are_read(tmp_path: Path) -> None:
    from PIL import TiffImagePlugin

    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[33550] = (10.0, 10.0, 0.0)  # 10 m pixels
    info[33922] = (0.0, 0.0, 0.0, 500000.0, 4200000.0, 0.0)
    info[34735] = (1, 1, 0, 1, 3072, 0, 1, 32633)  # EPSG:32633
    _rgb(1, (20, 10)).save(tmp_path / "geo.tif", tiffinfo=info)
    meta = inspect_file(tmp_path / "geo.tif")
    assert meta.crs == "EPSG:32633"
    assert meta.bounds == [500000.0, 4199900.0, 500200.0, 4200000.0]
