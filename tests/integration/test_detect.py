"""Detection on real UC Merced mosaics (untrained skyscout-tiny: geometry, not quality): GeoJSON, merge areas,
areas of interest, the score COG, scenes without a CRS, and the CLI, HTTP and agent ways in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from shapely import geometry as sgeom

from tests.support.mosaics import CELL, GSD, build_mosaic, val_tiles
from tools.geo import GeoError, area_m2, feature_collection_problems

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]  # one model load and 81 chips embedded: ~15-100 s
TILE_M2 = (CELL * GSD) ** 2  # 5,898.24 m2: one planted UC Merced tile at 0.3 m


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not (shared / "ucm_captions" / "val.jsonl").is_file():
        pytest.skip("real data not found")
    from app.data import ingest
    from app.indexing import build_index
    from app.scenes import scene_options
    from service.context import Services
    from service.settings import Settings

    root = tmp_path_factory.mktemp("detect")
    tiles = val_tiles(shared, per_class=1)
    (root / "aligned").mkdir()
    aligned = build_mosaic(root / "aligned" / "cog.tif", tiles, cols=4, kind="cog")
    overlapping = build_mosaic(root / "stripped.tif", tiles, cols=4, kind="stripped", seed=1)
    bare = build_mosaic(root / "nocrs.tif", tiles, cols=4, kind="nocrs", seed=2)
    settings = Settings(home=root / "home", data_roots=str(root))
    ctx = Services(settings).app
    ingest(ctx, root / "aligned", scenes=scene_options(ctx, overlap=0.0))
    ingest(ctx, overlapping.path, scenes=scene_options(ctx, overlap=0.5))
    ingest(ctx, bare.path, scenes=scene_options(ctx, overlap=0.0))
    report = build_index(ctx, model="skyscout-tiny", num_workers=0)
    assert report.activated and report.count == 16 + 49 + 16
    ids = {Path(s.uri).name: s.id for s in ctx.catalog.list_scenes()}
    yield {"root": root, "ctx": ctx, "settings": settings, "aligned": aligned, "overlapping": overlapping,
           "ids": ids}


def _detect(world: dict, **kw: object):  # type: ignore[no-untyped-def]
    from app.detect import DetectRequest, detect

    return detect(world["ctx"], DetectRequest(**kw))  # type: ignore[arg-type]


def test_every_chip_as_rfc7946_geojson_that_round_trips(world: dict) -> None:
    result = _detect(world, text="harbor", scene=world["ids"]["cog.tif"], threshold=0.0, georeferenced=True)
    doc = json.loads(json.dumps(result.geojson()))
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 16 == result.candidates
    assert feature_collection_problems(doc) == []
    probabilities = [f["properties"]["probability"] for f in doc["features"]]
    assert probabilities == sorted(probabilities, reverse=True)  # most probable first
    for f in doc["features"]:
        p = f["properties"]
        assert set(p) >= {"score", "probability", "query", "model", "chip_id", "scene_id"}
        assert 0 <= p["probability"] <= 1
        shape = sgeom.shape(f["geometry"])
        assert shape.is_valid and shape.exterior.is_ccw
        assert area_m2(shape) == pytest.approx(TILE_M2, rel=2e-3)  # one chip = one planted tile here
        assert sgeom.shape(sgeom.mapping(shape)).equals(shape)


def test_merged_regions_have_the_planted_area(world: dict) -> None:
    one = _detect(world, text="harbor", scene=world["ids"]["cog.tif"], top_k=1, merge=True)
    assert len(one.merged) == 1 and one.merged[0]["properties"]["chips"] == 1
    assert one.merged[0]["properties"]["area_m2"] == pytest.approx(TILE_M2, rel=2e-3)
    everything = _detect(world, text="harbor", scene=world["ids"]["cog.tif"], threshold=0.0, merge=True)
    (region,) = everything.merged
    assert region["properties"]["chips"] == 16 and region["properties"]["area_m2"] == pytest.approx(16 * TILE_M2,
                                                                                                   rel=2e-3)
    assert region["properties"]["max_score"] >= region["properties"]["mean_score"]
    assert feature_collection_problems(everything.geojson()) == []
    # overlapping chips (stride 128) dissolve into the scene's own square, not a sum of overlapping areas
    overlapping = _detect(world, text="harbor", scene=world["ids"]["stripped.tif"], threshold=0.0, merge=True)
    assert overlapping.candidates == 49 and len(overlapping.merged) == 1
    assert overlapping.merged[0]["properties"]["area_m2"] == pytest.approx(16 * TILE_M2, rel=2e-3)


def test_the_part_check_tempers_each_chip_by_its_weakest_quadrant(world: dict,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`detect --parts`: a chip's log-odds becomes a weighted mean of its own and its weakest quadrant's (each read
    from the scene and embedded); the output says what its probabilities are; a second query embeds nothing
    again; a scope with too many chips is refused with what to do."""
    from app import detect as detect_mod
    from app.models import text_encoder_of
    from tools.detect.parts import WEAKEST_WEIGHT, quadrant_uris
    from tools.detect.probability import sigmoid, softmax_logit
    from tools.embedding import input_size
    from tools.imageio import load_rgb
    from tools.models.encode import encode_images
    from tools.search import text_vector

    ctx, scene = world["ctx"], world["ids"]["stripped.tif"]
    plain = _detect(world, text="harbor", scene=scene, threshold=0.0)
    checked = _detect(world, text="harbor", scene=scene, threshold=0.0, parts=True)
    assert checked.candidates == plain.candidates == 49
    assert "weakest quadrant" in checked.geojson()["probability"]
    own = {d.chip_id: d.logit for d in plain.all_chips}
    _, loaded = ctx.load_model(checked.model)
    encode = text_encoder_of(loaded, ctx.device)
    query = text_vector(encode, "harbor")
    background = np.stack([text_vector(encode, p) for p in checked.background])
    for d in checked.all_chips[::12]:
        quads = encode_images(loaded, [load_rgb(u, min_size=input_size(loaded.model)) for u in quadrant_uris(d.uri)])
        weakest = softmax_logit(quads @ query, quads @ background.T, checked.temperature).min()
        assert d.logit == pytest.approx((own[d.chip_id] + WEAKEST_WEIGHT * weakest) / (1 + WEAKEST_WEIGHT), abs=2e-3)
        assert d.probability == pytest.approx(float(sigmoid(np.array(d.logit))), abs=1e-9)
    assert [d.logit for d in checked.detections] == sorted((d.logit for d in checked.detections), reverse=True)

    def no_embedding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the quadrants were embedded again")

    monkeypatch.setattr("tools.detect.parts.embed_parts", no_embedding)
    again = _detect(world, text="beach", scene=scene, threshold=0.0, parts=True)
    assert again.candidates == 49
    monkeypatch.setattr(detect_mod, "MAX_PART_CHIPS", 10)
    with pytest.raises(ValueError, match="narrow the scope"):
        _detect(world, text="beach", scene=scene, parts=True)


def test_areas_of_interest_limit_detection_and_search(world: dict) -> None:
    from app.search import search
    from tools.search import Query

    ctx = world["ctx"]
    rows = ctx.catalog.chip_rows(scene_ids=[world["ids"]["cog.tif"]])
    target = sgeom.shape(rows[0]["footprint"])
    inner = target.buffer(-target.length / 40)  # well inside one chip: touches only it among aligned chips
    result = _detect(world, text="harbor", bbox=list(inner.bounds), threshold=0.0)
    assert {d.chip_id for d in result.detections} >= {rows[0]["id"]}
    assert all(sgeom.shape(d.geometry).intersects(inner) for d in result.detections)
    assert len(result.detections) < 16 + 49
    hits = search(ctx, Query(texts=["harbor"], k=50, aoi=sgeom.mapping(inner))).hits
    assert hits and all(sgeom.shape(h.geometry).intersects(inner) for h in hits)
    in_scene = search(ctx, Query(texts=["harbor"], k=50, scenes=[world["ids"]["cog.tif"][:8]])).hits
    assert len(in_scene) == 16 and {h.scene_id for h in in_scene} == {world["ids"]["cog.tif"]}
    everywhere = search(ctx, Query(texts=["harbor"], k=200)).hits
    assert len(everywhere) == 16 + 49 + 16
    with pytest.raises(GeoError):
        _detect(world, text="harbor", bbox="1,2,3")


def test_score_heat_map_is_a_georeferenced_cog(world: dict, tmp_path: Path) -> None:
    import rasterio

    from app.detect import write_rasters

    result = _detect(world, text="beach", scene=world["ids"]["stripped.tif"], top_k=3)
    (written,) = write_rasters(world["ctx"], result, tmp_path / "beach.tif")
    with rasterio.open(written["path"]) as ds:
        assert ds.crs.to_epsg() == 32610 and ds.count == 2 and (ds.width, ds.height) == (8, 8)
        assert ds.transform.a == pytest.approx(128 * GSD) and ds.descriptions == ("score", "probability")
        assert ds.profile.get("tiled") or ds.overviews(1) is not None
        grid = ds.read(1)
    by_window = {tuple(d.window[:2]): d.score for d in result.all_chips}
    # the top-left cell is covered by the chip at (0, 0) only; an inner cell by four chips
    assert grid[0, 0] == pytest.approx(by_window[(0, 0)], abs=1e-6)
    four = [by_window[(x, y)] for x in (0, 128) for y in (0, 128)]
    assert grid[1, 1] == pytest.approx(np.mean(four), abs=1e-6)


def test_a_scene_without_crs_is_searched_but_not_georeferenced(world: dict) -> None:
    nocrs = world["ids"]["nocrs.tif"]
    with pytest.raises(GeoError, match="no CRS"):
        _detect(world, text="harbor", scene=nocrs, top_k=2, georeferenced=True)
    plain = _detect(world, text="harbor", scene=nocrs, top_k=2)
    assert len(plain.detections) == 2 and all(d.geometry is None and len(d.window) == 4 for d in plain.detections)
    everywhere = _detect(world, text="harbor", threshold=0.0, georeferenced=True)
    assert nocrs not in everywhere.scenes and any("without a CRS" in w for w in everywhere.warnings)


def test_cli_detect_and_scenes(world: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                               tmp_path: Path) -> None:
    from service.cli import main

    monkeypatch.setenv("SKYSCOUT_HOME", str(world["settings"].home))
    monkeypatch.setenv("SKYSCOUT_DATA_ROOTS", str(world["root"]))
    out = tmp_path / "harbors.geojson"
    capsys.readouterr()
    assert main(["detect", "harbor", "--scene", world["ids"]["cog.tif"][:10], "--top-k", "3", "--merge",
                 "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["detections"] == 3 and Path(doc["out"]) == out.resolve()
    fc = json.loads(out.read_text())
    assert feature_collection_problems(fc) == [] and all("area_m2" in f["properties"] for f in fc["features"])
    assert main(["scenes", "--json"]) == 0
    scenes = json.loads(capsys.readouterr().out)
    assert {Path(s["uri"]).name: s["chips"] for s in scenes} == {"cog.tif": 16, "stripped.tif": 49, "nocrs.tif": 16}
    assert main(["detect", "harbor", "--scene", world["ids"]["nocrs.tif"], "--out", str(tmp_path / "x.geojson")]) == 2
    assert "has no CRS" in capsys.readouterr().err and not (tmp_path / "x.geojson").exists()


def test_http_detect_returns_geojson_and_lists_scenes(world: dict) -> None:
    from fastapi.testclient import TestClient

    from service.api import create_app
    from service.context import Services

    with TestClient(create_app(services=Services(world["settings"], app=world["ctx"]), warm=False)) as client:
        r = client.post("/v1/detect", json={"text": "harbor", "scene_id": world["ids"]["cog.tif"][:8], "top_k": 2})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
        assert feature_collection_problems(r.json()) == [] and len(r.json()["features"]) == 2
        assert client.post("/v1/detect", json={"text": "harbor", "scene_id": world["ids"]["nocrs.tif"]}
                           ).status_code == 400
        assert client.post("/v1/detect", json={"text": "harbor", "bbox": [1, 2, 3]}).status_code == 422
        listed = client.get("/v1/scenes").json()
        assert len(listed) == 3 and all("footprint" in s for s in listed)
        one = client.get(f"/v1/scenes/{world['ids']['stripped.tif'][:12]}").json()
        assert one["chips"] == 49 and one["crs"] == "EPSG:32610"
        assert client.get("/v1/scenes/abcdef0123").status_code == 404
        box = sgeom.shape(listed[0]["footprint"]).bounds
        hits = client.post("/v1/search", json={"text": "harbor", "bbox": list(box), "k": 100}).json()["hits"]
        assert hits and all(h["geometry"] is not None for h in hits)


def test_query_agent_detect_tool_and_the_detect_intent(world: dict) -> None:
    from agents.context import AgentContext
    from agents.plans import interpret
    from agents.query import DetectArgs
    from agents.routing import default_router
    from agents.workers import TOOLS

    scene = world["ids"]["cog.tif"]
    out = TOOLS["detect"].fn(AgentContext(world["ctx"]), DetectArgs(query="harbor", scene=scene[:8], top_k=2))
    assert Path(out.data["out"]).is_file() and out.data["detections"] == 2
    assert "GeoJSON written to" in out.summary
    plan = interpret(f"where are the harbors in scene {scene[:8]}", router=default_router())
    (step,) = plan.steps
    assert (step["agent"], step["action"]) == ("query", "detect")
    assert step["args"] == {"query": "harbors", "scene": scene[:8]}
