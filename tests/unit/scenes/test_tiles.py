"""XYZ tiles rendered from a real UC Merced mosaic (a COG in UTM): addresses, placement, stretch, transparency."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.mosaics import build_mosaic
from tools.scenes.tiles import TileError, TileStyle, lonlat_to_tile, native_zoom, png_bytes, render_tile, tile_bounds

PROJECT = Path(__file__).resolve().parents[3]


def _tiles(n: int) -> list[tuple[Path, str]]:
    root = PROJECT / "data" / "ucm_sample" / "images"
    return [(sorted((root / d.name).glob("*.jpg"))[0], d.name) for d in sorted(root.iterdir())[:n]]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    import rasterio
    from rasterio.warp import transform_bounds

    path = build_mosaic(tmp_path_factory.mktemp("tiles") / "cog.tif", _tiles(4), cols=2, kind="cog").path
    with rasterio.open(path) as ds:
        return path, list(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds))


def test_tile_addresses() -> None:
    assert tile_bounds(0, 0, 0) == pytest.approx((-20037508.34, -20037508.34, 20037508.34, 20037508.34))
    assert lonlat_to_tile(0.0, 0.0, 1) == (1, 1)
    for bad in ((0, 1, 0), (2, -1, 0), (25, 0, 0)):
        with pytest.raises(TileError):
            tile_bounds(*bad)
    assert native_zoom(0.3, 37.9) == 19 and native_zoom(None, 0.0) == 18


def test_a_tile_over_the_scene_shows_it_and_one_beside_it_is_empty(scene: tuple[Path, list[float]]) -> None:
    path, (west, south, east, north) = scene
    style = TileStyle(bands=(1, 2, 3), stretch="none")
    z = 18
    x, y = lonlat_to_tile((west + east) / 2, (south + north) / 2, z)
    rgba = render_tile(str(path), z, x, y, style)
    assert rgba is not None and rgba.shape == (256, 256, 4)
    assert (rgba[..., 3] == 255).mean() > 0.2 and rgba[..., :3].std() > 10  # real imagery, mostly opaque
    assert render_tile(str(path), z, x + 40, y, style) is None  # far east of the scene: nothing
    png = png_bytes(rgba)
    assert Image.open(io.BytesIO(png)).mode == "RGBA"
    empty = np.asarray(Image.open(io.BytesIO(png_bytes(None))))
    assert empty.shape == (256, 256, 4) and not empty[..., 3].any()


def test_a_zoomed_out_tile_reads_an_overview_and_the_stretch_applies(scene: tuple[Path, list[float]]) -> None:
    path, (west, south, east, north) = scene
    x, y = lonlat_to_tile((west + east) / 2, (south + north) / 2, 14)
    plain = render_tile(str(path), 14, x, y, TileStyle(bands=(1, 2, 3), stretch="none"))
    assert plain is not None and 0 < (plain[..., 3] > 0).sum() < 256 * 256 / 4  # the scene is small at z14
    stretched = render_tile(str(path), 14, x, y, TileStyle(bands=(1, 2, 3), stretch="0:128,0:128,0:128"))
    assert stretched is not None
    inside = plain[..., 3] > 0
    assert stretched[..., :3][inside].mean() > plain[..., :3][inside].mean()  # a narrower stretch: brighter
