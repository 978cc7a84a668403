"""Chipping grids, chip URIs and ids, the 8-bit stretch, probabilities, heat-map cells and EPSG:4326 geometry."""

from __future__ import annotations

import numpy as np
import pytest
from shapely import geometry as sgeom

from tools.detect.features import Detection
from tools.detect.probability import background_for, fit_platt, softmax_logit
from tools.detect.raster import infer_stride, score_grid
from tools.detect.scoring import Scored, score_chips, select
from tools.geo import (
    GeoError,
    area_m2,
    feature_collection_problems,
    geometry_problems,
    parse_bbox,
    to_geojson,
    utm_crs,
)
from tools.scenes.chips import (
    ChipError,
    ChipParams,
    axis_starts,
    chip_id,
    chip_uri,
    make_grid,
    parse_bands,
    parse_chip_uri,
    scene_path_of,
)
from tools.scenes.stretch import default_bands, to_rgb8


@pytest.mark.parametrize("length", [256, 300, 511, 1000, 1024, 10_980])
@pytest.mark.parametrize("window,stride", [(256, 256), (256, 128), (256, 192), (100, 37)])
def test_windows_cover_every_pixel_and_stay_inside(length: int, window: int, stride: int) -> None:
    starts = axis_starts(length, window, stride)
    covered = np.zeros(length, dtype=bool)
    for s in starts:
        covered[s:s + window] = True
        assert 0 <= s and s + min(window, length) <= length
    assert covered.all()  # the last window is shifted in: no strip at the edge is dropped
    assert starts == sorted(set(starts))
    assert all(b - a <= stride for a, b in zip(starts, starts[1:], strict=False))


def test_grid_of_a_sentinel2_sized_scene() -> None:
    grid = make_grid(10_980, 10_980, ChipParams(size=256, overlap=0.0), scene_gsd=10.0)
    assert (grid.window, grid.stride, len(grid.xs)) == (256, 256, 43)
    assert grid.xs[-1] == 10_980 - 256
    # resampled to 2.5 m: each chip spans 64 scene pixels of 10 m
    fine = make_grid(10_980, 10_980, ChipParams(size=256, overlap=0.5, gsd=40.0), scene_gsd=10.0)
    assert (fine.window, fine.stride) == (1024, 512)
    with pytest.raises(ChipError, match="no CRS"):
        make_grid(1000, 1000, ChipParams(gsd=1.0), scene_gsd=None)


def test_chip_params_are_checked() -> None:
    for bad in ({"size": 8}, {"overlap": 1.0}, {"overlap": -0.1}, {"gsd": 0.0}, {"bands": (1, 2)},
                {"stretch": "log"}, {"percentiles": (50, 10)}, {"max_nodata": 2}):
        with pytest.raises(ChipError):
            ChipParams(**bad)  # type: ignore[arg-type]
    assert parse_bands("3, 2,1") == (3, 2, 1) and parse_bands(None) is None
    with pytest.raises(ChipError):
        parse_bands("red,green")


def test_chip_uri_round_trips_and_ids_are_stable() -> None:
    uri = chip_uri("/data/dir#1/scene.tif", 512, 256, 256, 256, size=256, bands=(3, 2, 1), stretch="10:900,5:800,1:2")
    ref = parse_chip_uri(uri)
    assert (ref.path, ref.x, ref.y, ref.w, ref.h, ref.size, ref.bands, ref.stretch) == (
        "/data/dir#1/scene.tif", 512, 256, 256, 256, 256, (3, 2, 1), "10:900,5:800,1:2")
    assert scene_path_of(uri) == "/data/dir#1/scene.tif" and scene_path_of("/a/b.jpg") == "/a/b.jpg"
    a = chip_id("s" * 64, 0, 0, 256, 256, size=256, bands=(1, 2, 3), stretch="none")
    assert a == chip_id("s" * 64, 0, 0, 256, 256, size=256, bands=(1, 2, 3), stretch="none")
    assert a != chip_id("s" * 64, 0, 0, 256, 256, size=256, bands=(3, 2, 1), stretch="none")
    assert len(a) == 64 and int(a, 16) >= 0
    with pytest.raises(ChipError):
        parse_chip_uri("/a/scene.tif#window=1,2,3&size=256&bands=1&stretch=none")


def test_stretch_to_8bit_and_grey_and_nodata() -> None:
    data = np.array([[[100, 1100], [600, 5000]]], dtype=np.uint16)  # one band
    rgb = to_rgb8(data, "100:1100", valid=np.array([[True, True], [True, False]]))
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[1, 0].tolist() == [128, 128, 128]  # mid-range, repeated to grey
    assert rgb[1, 1].tolist() == [0, 0, 0]  # nodata is black
    same = to_rgb8(np.arange(12, dtype=np.uint8).reshape(3, 2, 2), "none")
    assert same[..., 0].tolist() == [[0, 1], [2, 3]] and same[..., 2].tolist() == [[8, 9], [10, 11]]
    assert default_bands(4) == (1, 2, 3) and default_bands(1) == (1,)
    assert default_bands(3, ("blue", "green", "red")) == (3, 2, 1)


def test_background_prompts_that_name_the_query_are_dropped() -> None:
    prompts = ["farmland", "a parking lot", "forest", "parking lots", "the sea"]
    assert background_for("parking lot", prompts) == [0, 2, 4]
    assert background_for("a forest", prompts) == [0, 1, 3, 4]
    q = np.array([1.0, 0.0])
    vecs = np.array([[0.0, 1.0], [0.999, 0.0447], [0.7, 0.714], [0.0, -1.0], [0.1, 0.99]])
    assert 1 not in background_for("lorry park", prompts, q, vecs)  # nearly the same text vector


def test_probability_is_a_softmax_against_the_background() -> None:
    vecs = np.eye(3, dtype=np.float32)
    scored = score_chips(vecs, np.array([1, 0, 0], np.float32), np.array([[0, 1, 0], [0, 0, 1]], np.float32),
                         temperature=10.0)
    assert scored.scores.tolist() == [1.0, 0.0, 0.0]
    expected = np.exp(10) / (np.exp(10) + 2)
    assert scored.probabilities[0] == pytest.approx(expected)
    assert scored.probabilities[1] == pytest.approx(1 / (1 + np.exp(10) + 1))
    assert softmax_logit(np.array([0.5]), np.zeros((1, 0)), 2.0).tolist() == [1.0]


def test_selection_by_threshold_and_top_k_most_probable_first() -> None:
    p = np.array([0.2, 0.9, 0.6, 0.4])
    s = Scored(np.array([0.1, 0.5, 0.3, 0.4]), np.log(p / (1 - p)), p)
    assert select(s).tolist() == [1, 2]  # default p >= 0.5
    # chip 3 is closer to the query than chip 2 (cosine 0.4 > 0.3) but less probable: it ranks after it
    assert select(s, top_k=3).tolist() == [1, 2, 3]
    assert select(s, top_k=3, threshold=0.5).tolist() == [1, 2]
    assert select(s, threshold=0.0).tolist() == [1, 2, 3, 0]
    with pytest.raises(ValueError):
        select(s, threshold=1.5)


def test_platt_fit_separates_labelled_chips() -> None:
    pos = np.random.default_rng(0).normal(2.0, 1.0, 300)
    platt = fit_platt(np.concatenate([pos, -pos]), np.array([1] * 300 + [0] * 300))  # symmetric: 0 is even odds
    assert platt(np.array([0.0]))[0] == pytest.approx(0.5, abs=0.05)
    assert platt(np.array([3.0]))[0] > 0.95 and platt(np.array([-3.0]))[0] < 0.05


def test_heat_map_cells_average_the_chips_covering_them() -> None:
    windows = [[0, 0, 4, 4], [2, 0, 4, 4], [4, 0, 4, 4], [0, 2, 4, 4]]
    assert infer_stride(windows) == 2
    dets = [Detection(str(i), "s", score=float(i), probability=0.5, window=w, geometry=None)
            for i, w in enumerate(windows)]
    grid = score_grid(dets, width=8, height=6, stride=2)
    assert grid.shape == (2, 3, 4)
    assert grid[0, 0, 0] == 0.0 and grid[0, 0, 1] == pytest.approx(0.5) and grid[0, 0, 2] == pytest.approx(1.5)
    assert grid[0, 1, 0] == pytest.approx(1.5)  # chips 0 and 3
    assert np.isnan(grid[0, 2, 2])  # no chip covers it


def test_bbox_parsing_and_its_errors() -> None:
    aoi = parse_bbox("-122.5,37.7,-122.3,37.9")
    assert aoi.bbox == (-122.5, 37.7, -122.3, 37.9)
    assert aoi.intersects(to_geojson(sgeom.box(-122.4, 37.8, -122.35, 37.85)))
    assert not aoi.intersects(to_geojson(sgeom.box(0, 0, 1, 1))) and not aoi.intersects(None)
    for bad, why in (("1,2,3", "four numbers"), ("10,50,0,60", "reversed"), ("0,0,200,10", "out of range"),
                     ("a,b,c,d", "four numbers"), ("0,nan,1,1", "finite")):
        with pytest.raises(GeoError, match=why):
            parse_bbox(bad)


def test_rfc7946_rings_and_the_checker() -> None:
    clockwise = sgeom.Polygon([(0, 0), (0, 1), (1, 1), (1, 0)])
    geo = to_geojson(clockwise)
    assert geometry_problems(geo) == []
    ring = geo["coordinates"][0]
    assert ring[0] == ring[-1]
    bad = {"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]]}
    assert any("counter-clockwise" in p for p in geometry_problems(bad))
    assert any("out of range" in p for p in geometry_problems(
        {"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [200, 1], [0, 0]]]}))
    assert any("not closed" in p for p in geometry_problems(
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}))
    fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": geo}]}
    assert feature_collection_problems(fc) == []


def test_areas_are_computed_in_the_local_utm_zone() -> None:
    assert utm_crs(-122.4, 37.8) == "EPSG:32610" and utm_crs(151.2, -33.9) == "EPSG:32756"
    from tools.geo import box_to_wgs84

    # a 1 km square in UTM 10N, taken to EPSG:4326 and measured back
    square = box_to_wgs84(500_000, 4_180_000, 501_000, 4_181_000, "EPSG:32610")
    assert area_m2(square) == pytest.approx(1_000_000, rel=1e-4)


def test_local_maxima_keep_one_chip_per_finding() -> None:
    from tools.detect.scoring import local_maxima

    # a 3 x 3 grid of 4 px chips every 2 px, best in the middle; a second scene is independent
    windows = np.array([[x, y, 4, 4] for y in (0, 2, 4) for x in (0, 2, 4)] + [[0, 0, 4, 4]])
    scores = np.array([0.1, 0.2, 0.1, 0.2, 0.9, 0.2, 0.1, 0.2, 0.1, 0.5])
    keep = local_maxima(scores, ["a"] * 9 + ["b"], windows)
    assert keep.tolist() == [False, False, False, False, True, False, False, False, False, True]
    # chips that only touch (stride = size) never suppress each other
    tiles = np.array([[0, 0, 4, 4], [4, 0, 4, 4], [0, 4, 4, 4]])
    assert local_maxima(np.array([0.3, 0.2, 0.1]), ["a"] * 3, tiles).all()
    s = Scored(scores, np.zeros(10), np.ones(10))
    assert select(s, threshold=0.0, keep=keep).tolist() == [4, 9]
