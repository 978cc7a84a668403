"""Scenes built from real UC Merced tiles: chipping, window reads, 16-bit stretch, nodata, bad files, stable ids."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.support.mosaics import CELL, build_mosaic, val_tiles, write_bomb
from tools.catalog import Catalog
from tools.imageio import load_rgb
from tools.ingest import ingest_directory
from tools.paths import PathNotAllowedError, resolve_roots
from tools.scenes.chips import ChipParams, parse_chip_uri
from tools.scenes.ingest import SceneOptions, ingest_scene
from tools.scenes.raster import SceneRejected, inspect_scene, looks_like_scene

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def tiles() -> list[tuple[Path, str]]:
    shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not (shared / "ucm_captions" / "val.jsonl").is_file():
        pytest.skip("real data not found")
    return val_tiles(shared, per_class=1)  # 16 tiles, one per class


@pytest.fixture(scope="module")
def scenes(tiles: list[tuple[Path, str]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("scenes")
    return {kind: build_mosaic(root / f"{kind}.tif", tiles, cols=4, kind=kind, border=96 if kind == "tiled16" else 0)
            for kind in ("cog", "tiled16", "stripped", "nocrs")}


def _array(path: Path, bands: list[int]) -> np.ndarray:
    import rasterio

    with warnings.catch_warnings(), rasterio.open(path) as ds:
        warnings.simplefilter("ignore")
        return ds.read(bands)


def test_headers_are_read_without_reading_the_pixels(scenes: dict) -> None:
    cog = inspect_scene(scenes["cog"].path)
    assert (cog.width, cog.height, cog.bands, cog.dtype, cog.crs, cog.gsd) == (1024, 1024, 3, "uint8",
                                                                                "EPSG:32610", 0.3)
    assert cog.tiled and cog.overviews >= 1 and cog.footprint["type"] == "Polygon"
    lon, lat = np.array(cog.footprint["coordinates"][0]).T
    assert -123.1 < lon.min() < lon.max() < -122.9 and 37.9 < lat.min() < lat.max() < 38.0
    s16 = inspect_scene(scenes["tiled16"].path)
    assert (s16.bands, s16.dtype, s16.nodata, s16.tiled) == (4, "uint16", 0.0, True)
    assert not inspect_scene(scenes["stripped"].path).tiled
    assert inspect_scene(scenes["nocrs"].path).crs is None and inspect_scene(scenes["nocrs"].path).footprint is None


@pytest.mark.parametrize("kind", ["cog", "stripped"])
def test_chips_cover_the_scene_and_read_exactly_their_window(scenes: dict, tmp_path: Path, kind: str) -> None:
    mosaic = scenes[kind]
    cat = Catalog(tmp_path / "catalog.db")
    report = ingest_scene(cat, mosaic.path, params=ChipParams(size=256, overlap=0.5))
    assert report.windows == 7 * 7 and report.chips_added == 49 and not report.broken
    chips = cat.chip_rows(scene_ids=[report.scene_id])
    covered = np.zeros((mosaic.height, mosaic.width), dtype=bool)
    for c in chips:
        x, y, w, h = c["window"]
        covered[y:y + h, x:x + w] = True
    assert covered.all()
    full = _array(mosaic.path, [1, 2, 3])
    for c in chips[:12]:
        x, y, w, h = c["window"]
        chip = np.asarray(load_rgb(c["uri"]))
        assert chip.shape == (256, 256, 3)
        assert np.array_equal(chip, full[:, y:y + h, x:x + w].transpose(1, 2, 0))  # bit-identical window read
    # a reduced read (what a 64 px model asks for) is a 1/4-scale average of the same window
    small = np.asarray(load_rgb(chips[0]["uri"], min_size=64))
    assert small.shape == (64, 64, 3)
    x, y, w, h = chips[0]["window"]
    boxed = full[:, y:y + h, x:x + w].reshape(3, 64, 4, 64, 4).mean(axis=(2, 4)).transpose(1, 2, 0)
    assert np.abs(small.astype(float) - boxed).mean() < 3.0


def test_a_planted_tile_comes_back_as_its_chip(scenes: dict, tiles: list, tmp_path: Path) -> None:
    mosaic = scenes["cog"]
    cat = Catalog(tmp_path / "catalog.db")
    report = ingest_scene(cat, mosaic.path, params=ChipParams(size=256, overlap=0.0))
    assert report.windows == 16
    by_window = {tuple(c["window"][:2]): c for c in cat.chip_rows(scene_ids=[report.scene_id])}
    planted = mosaic.planted[5]
    chip = np.asarray(load_rgb(by_window[(planted.x, planted.y)]["uri"]))
    tile = np.asarray(load_rgb(planted.source).resize((CELL, CELL)))
    assert np.abs(chip.astype(int) - tile.astype(int)).max() <= 1  # lossless (deflate) copy of the JPEG's pixels


def test_16bit_bgrn_scene_is_stretched_to_the_planted_colours(scenes: dict, tmp_path: Path) -> None:
    mosaic = scenes["tiled16"]
    cat = Catalog(tmp_path / "catalog.db")
    report = ingest_scene(cat, mosaic.path, params=ChipParams(size=256, overlap=0.0, bands=(3, 2, 1)))
    assert report.stretch != "none" and report.read_bands == [3, 2, 1]
    # a 96 px nodata border: the 5x5 grid of 256 px windows over 1216 px has corner windows mostly nodata
    assert report.windows == 25 and report.skipped_nodata > 0
    assert report.chips_added == report.windows - report.skipped_nodata
    chips = {tuple(c["window"][:2]): c for c in cat.chip_rows(scene_ids=[report.scene_id])}
    bgrn = _array(mosaic.path, [1, 2, 3, 4]).astype(float)
    planted_rgb = (bgrn[[2, 1, 0]] - 100) / 16  # the 8-bit colours that were planted, in R,G,B order
    chip = np.asarray(load_rgb(chips[(256, 256)]["uri"])).astype(float)
    window = planted_rgb[:, 256:512, 256:512]
    for band in range(3):  # a per-band linear stretch keeps each band's picture; 3,2,1 puts red first
        assert np.corrcoef(chip[..., band].ravel(), window[band].ravel())[0, 1] > 0.98
    assert np.corrcoef(chip[..., 0].ravel(), window[2].ravel())[0, 1] < 0.98  # red is not blue
    corner = np.asarray(load_rgb(chips[(256, 0)]["uri"]))  # the top 96 rows are the nodata border: black
    assert (corner[:96] == 0).all() and corner[96:].mean() > 20


def test_reingesting_adds_nothing_and_ids_are_stable(scenes: dict, tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "catalog.db")
    roots = resolve_roots([scenes["cog"].path.parent])
    first = ingest_directory(cat, scenes["cog"].path, allowed_roots=roots, progress=False)
    ids = {c["id"] for c in cat.chip_rows()}
    again = ingest_directory(cat, scenes["cog"].path, allowed_roots=roots, progress=False)
    assert first.chips_added == 49 and again.chips_added == 0 and again.scenes[0]["chips_existing"] == 49
    other = Catalog(tmp_path / "other.db")
    ingest_directory(other, scenes["cog"].path, allowed_roots=roots, progress=False)
    assert {c["id"] for c in other.chip_rows()} == ids == {r.id for r in cat.iter_images()}
    rec = cat.get_image(sorted(ids)[0])
    assert rec is not None and rec.scene_id == first.scenes[0]["scene_id"] and rec.format == "CHIP"
    ref = parse_chip_uri(rec.uri)
    assert rec.footprint is not None and rec.window == [ref.x, ref.y, ref.w, ref.h]


def test_manifest_lines_say_which_files_are_scenes(scenes: dict, tmp_path: Path) -> None:
    import json
    import shutil

    from tools.ingest import ingest_manifest

    for name in ("a.tif", "b.tif"):
        shutil.copy(scenes["stripped"].path if name == "a.tif" else scenes["cog"].path, tmp_path / name)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in (
        {"path": "a.tif", "scene": True, "region": "north"}, {"path": "b.tif", "scene": False, "label": "mosaic"})))
    cat = Catalog(tmp_path / "catalog.db")
    report = ingest_manifest(cat, manifest, allowed_roots=resolve_roots([tmp_path]), progress=False)
    assert len(report.scenes) == 1 and report.scenes[0]["chips_added"] == 49 and report.added == 1
    assert cat.list_scenes()[0].metadata["region"] == "north"
    whole = [r for r in cat.iter_images() if r.scene_id is None]
    assert len(whole) == 1 and whole[0].labels == ["mosaic"] and whole[0].width == 1024


def test_a_moved_scene_keeps_its_chips_and_they_follow_the_file(scenes: dict, tmp_path: Path) -> None:
    import shutil

    first = tmp_path / "a" / "scene.tif"
    first.parent.mkdir()
    shutil.copy(scenes["stripped"].path, first)
    cat = Catalog(tmp_path / "catalog.db")
    roots = resolve_roots([tmp_path])
    before = ingest_directory(cat, first, allowed_roots=roots, progress=False)
    moved = tmp_path / "b" / "renamed.tif"
    moved.parent.mkdir()
    first.rename(moved)
    after = ingest_directory(cat, moved, allowed_roots=roots, progress=False)
    assert before.chips_added == 49 and after.chips_added == 0 and after.scenes[0]["chips_existing"] == 49
    uris = [c["uri"] for c in cat.chip_rows()]
    assert len(uris) == 49 and all(u.startswith(f"{moved}#window=") for u in uris)
    assert np.asarray(load_rgb(uris[0])).shape == (256, 256, 3)
    assert cat.list_scenes()[0].uri == str(moved)


def test_a_truncated_scene_chips_its_readable_part_and_reports_broken_windows(scenes: dict, tmp_path: Path) -> None:
    data = scenes["stripped"].path.read_bytes()
    broken = tmp_path / "truncated.tif"
    broken.write_bytes(data[: int(len(data) * 0.6)])
    cat = Catalog(tmp_path / "catalog.db")
    report = ingest_scene(cat, broken, params=ChipParams(size=256, overlap=0.0))
    assert report.broken and report.chips_added > 0
    assert report.chips_added + len(report.broken) + report.skipped_nodata == report.windows == 16
    assert all(b["reason"] and len(b["window"]) == 4 for b in report.broken)
    assert min(b["window"][1] for b in report.broken) > 0  # the top rows were readable
    scene = cat.get_scene(report.scene_id)
    assert scene is not None and scene.metadata["chipping"][-1]["broken_count"] == len(report.broken)
    again = ingest_scene(cat, broken, params=ChipParams(size=256, overlap=0.0))  # not read again, still reported
    assert again.chips_added == 0 and again.chips_existing == report.chips_added and again.broken == report.broken


def test_bad_scenes_are_refused_with_their_reason(scenes: dict, tmp_path: Path) -> None:
    import rasterio

    bomb = write_bomb(tmp_path / "bomb.tif")
    assert bomb.stat().st_size < 1000 and looks_like_scene(bomb)
    with pytest.raises(SceneRejected, match="decompression bomb.*1,000,000x1,000,000"):
        inspect_scene(bomb)
    cplx = tmp_path / "sar.tif"
    with rasterio.open(cplx, "w", driver="GTiff", width=1100, height=1100, count=1, dtype="complex64") as ds:
        ds.write(np.ones((1, 1100, 1100), dtype=np.complex64))
    with pytest.raises(SceneRejected, match="complex"):
        inspect_scene(cplx)
    cat = Catalog(tmp_path / "catalog.db")
    report = ingest_directory(cat, tmp_path, allowed_roots=resolve_roots([tmp_path]), progress=False)
    reasons = {Path(r["path"]).name: r["reason"] for r in report.rejected}
    assert "decompression bomb" in reasons["bomb.tif"] and "complex" in reasons["sar.tif"]
    assert cat.count_images(status="rejected") == 2 and report.scenes == []
    # a scene outside the data roots, named directly or through a symlink inside them, is refused
    roots = tmp_path / "roots"
    roots.mkdir()
    (roots / "link.tif").symlink_to(scenes["cog"].path)
    report = ingest_directory(cat, roots, allowed_roots=resolve_roots([roots]), progress=False)
    assert report.scenes == [] and "outside the allowed data roots" in report.rejected[0]["reason"]
    with pytest.raises(PathNotAllowedError):
        ingest_directory(cat, scenes["cog"].path, allowed_roots=resolve_roots([roots]), progress=False)


def test_a_sentinel2_sized_scene_is_a_scene_not_a_decompression_bomb(tmp_path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    big = tmp_path / "T32TQM.tif"
    with rasterio.open(big, "w", driver="GTiff", width=10_980, height=10_980, count=3, dtype="uint16", nodata=0,
                       crs="EPSG:32632", transform=from_origin(600_000, 5_000_040, 10, 10), tiled=True,
                       blockxsize=512, blockysize=512, compress="deflate", SPARSE_OK=True) as ds:
        ds.write(np.full((3, 1024, 1024), 1200, dtype=np.uint16), window=rasterio.windows.Window(0, 0, 1024, 1024))
    assert big.stat().st_size < 2_000_000
    cat = Catalog(tmp_path / "catalog.db")
    report = ingest_directory(cat, big, allowed_roots=resolve_roots([tmp_path]), progress=False,
                              scenes=SceneOptions(chips=ChipParams(size=1024, overlap=0.0)))
    assert report.rejected == [] and len(report.scenes) == 1
    s = report.scenes[0]
    assert (s["width"], s["gsd"], s["windows"]) == (10_980, 10.0, 11 * 11)
    assert s["chips_added"] == 1 and s["skipped_nodata"] == 11 * 11 - 1  # only the written blocks hold data


def test_scenes_in_different_crss_all_have_wgs84_footprints(scenes: dict, tiles: list, tmp_path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    cat = Catalog(tmp_path / "catalog.db")
    a = ingest_scene(cat, scenes["cog"].path, params=ChipParams(overlap=0.0))
    other = tmp_path / "mercator.tif"
    with rasterio.open(scenes["stripped"].path) as src:
        profile = src.profile | {"crs": "EPSG:3857", "transform": from_origin(-13_630_000, 4_550_000, 0.3, 0.3)}
        with rasterio.open(other, "w", **profile) as dst:
            dst.write(src.read())
    b = ingest_scene(cat, other, params=ChipParams(overlap=0.0))
    for report in (a, b):
        for c in cat.chip_rows(scene_ids=[report.scene_id]):
            lon, lat = np.array(c["footprint"]["coordinates"][0]).T
            assert -123.5 < lon.min() < lon.max() < -122 and 37 < lat.min() < lat.max() < 39
            assert c["bbox"] == [lon.min(), lat.min(), lon.max(), lat.max()]
