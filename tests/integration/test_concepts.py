"""Concepts through the CLI, the HTTP API (the web app's contract) and the agents, on the bundled sample indexed by
skyscout-tiny: stages text -> rocchio -> classifier, ask, duplicate and contradicting marks, a concept with only
negatives, a label for an image not in the index, a deleted concept, scopes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.homes import indexed_sample_home

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT / "data" / "ucm_sample"
READ, OPERATE = "read-token-0123456789", "operate-token-0123456789"

pytestmark = pytest.mark.slow  # the module's home embeds 80 tiles once


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's 80 val tiles ingested and indexed by skyscout-tiny, built once for the module."""
    return indexed_sample_home(tmp_path_factory.mktemp("concepts") / "home")


@pytest.fixture
def home(sample_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    shutil.copytree(sample_home, h)
    monkeypatch.setenv("SKYSCOUT_HOME", str(h))
    monkeypatch.setenv("SKYSCOUT_DATA_ROOTS", f"{tmp_path}:{PROJECT / 'data'}")
    monkeypatch.delenv("SKYSCOUT_SETTINGS_FILE", raising=False)
    return h


@pytest.fixture
def cli(run_cli: Callable[..., tuple[int, Any]]) -> Callable[..., tuple[int, Any]]:
    """``skyscout ARGS --json`` in process on this module's ``home`` (tests/conftest.py's ``run_cli``)."""
    return run_cli


def by_label(home: Path, label: str, n: int) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(home / "catalog.db")
    try:
        rows = conn.execute("SELECT image_id FROM labels WHERE label = ? ORDER BY image_id LIMIT ?", (label, n))
        return [r[0] for r in rows]
    finally:
        conn.close()


def test_concept_from_text_to_classifier_on_the_cli(home: Path, cli: Callable[..., tuple[int, Any]]) -> None:
    code, made = cli("concept", "create", "Beaches", "--text", "beach")
    assert code == 0 and made["id"].startswith("c-") and made["labels"] == {"relevant": 0, "not_relevant": 0}
    code, err = cli("concept", "create", "beaches")
    assert code == 2 and "exists already" in err["error"]
    code, shown = cli("concept", "show", "BEACHES", "-k", "5")
    assert code == 0 and shown["stage"] == "text" and len(shown["hits"]) == 5
    assert all(h["stage"] == "text" and h["probability"] is None for h in shown["hits"])
    beaches, harbors = by_label(home, "beach", 4), by_label(home, "harbor", 3)
    code, labelled = cli("concept", "label", "beaches", "--relevant", beaches[0][:10])
    assert code == 0 and labelled["labels"] == {"relevant": 1, "not_relevant": 0}
    assert cli("concept", "show", "beaches")[1]["stage"] == "rocchio"
    cli("concept", "label", "beaches", "--relevant", *beaches[1:3], "--not-relevant", *harbors)
    code, shown = cli("concept", "show", "beaches", "-k", "10")
    assert shown["stage"] == "classifier" and "logistic regression" in shown["reason"]
    probs = [h["probability"] for h in shown["hits"]]
    assert all(0 <= p <= 1 for p in probs) and probs == sorted(probs, reverse=True)
    code, asked = cli("concept", "ask", "beaches", "-n", "3")
    assert code == 0 and len(asked["hits"]) == 3 and "least sure" in asked["why"]
    assert not {h["image_id"] for h in asked["hits"]} & {*beaches[:3], *harbors}  # only unlabelled images
    code, listed = cli("concept", "list")
    assert [c["labels"] for c in listed] == [{"relevant": 3, "not_relevant": 3}]
    assert cli("concept", "delete", "beaches")[0] == 0
    code, err = cli("concept", "show", "beaches")
    assert code == 2 and "no concept" in err["error"]


def test_a_concept_with_only_negatives(home: Path, cli: Callable[..., tuple[int, Any]]) -> None:
    cli("concept", "create", "harbors")
    not_harbors = by_label(home, "beach", 3) + by_label(home, "forest", 2)
    cli("concept", "label", "harbors", "--not-relevant", *not_harbors)
    code, shown = cli("concept", "show", "harbors", "-k", "5")
    assert code == 0 and shown["stage"] == "rocchio" and len(shown["hits"]) == 5  # no classifier without positives
    code, asked = cli("concept", "ask", "harbors", "-n", "2")
    assert code == 0 and len(asked["hits"]) == 2 and "no classifier yet" in asked["why"]


def test_labels_for_images_outside_the_index_or_the_catalog(home: Path, tmp_path: Path,
                                                             cli: Callable[..., tuple[int, Any]]) -> None:
    train = [json.loads(line)["image"] for line in (SAMPLE / "train.jsonl").read_text().splitlines()][:1]
    (tmp_path / "new").mkdir()
    shutil.copyfile(SAMPLE / train[0], tmp_path / "new" / "new.jpg")
    assert cli("ingest", str(tmp_path / "new"))[0] == 0  # in the catalog, not yet in the index
    cli("concept", "create", "farms", "--text", "farmland")
    code, labelled = cli("concept", "label", "farms", "--relevant", str(tmp_path / "new" / "new.jpg"))
    assert code == 0 and labelled["labels"]["relevant"] == 1
    code, shown = cli("concept", "show", "farms")
    assert shown["unindexed_marks"] == 1 and shown["stage"] == "text"  # it ranks once the index holds it
    code, err = cli("concept", "label", "farms", "--relevant", "ab" * 32)  # never ingested
    assert code == 2 and "is not in the catalog" in err["error"]
    assert cli("concept", "show", "farms")[1]["concept"]["labels"]["relevant"] == 1  # nothing recorded


@pytest.fixture
def api(home: Path, tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    from fastapi.testclient import TestClient

    from service.api import create_app
    from service.settings import Settings

    settings = Settings(home=home, data_roots=f"{tmp_path}:{PROJECT / 'data'}",
                        api_tokens=f"read:{READ},operate:{OPERATE}")
    with TestClient(create_app(settings, warm=False), raise_server_exceptions=False) as client:
        def as_(token: str) -> Any:
            client.headers["Authorization"] = f"Bearer {token}"
            return client

        yield as_


def test_the_http_contract(home: Path, api: Callable[[str], Any]) -> None:
    reader = api(READ)
    r = reader.post("/v1/concepts", json={"name": "Harbors", "texts": ["harbor with boats"], "image_ids": [],
                                          "negative_texts": ["beach"]})
    assert r.status_code == 201, r.text
    concept = r.json()
    assert set(concept) >= {"id", "name", "texts", "image_ids", "negative_texts", "labels", "created_at"}
    assert concept["labels"] == {"relevant": 0, "not_relevant": 0}
    assert reader.post("/v1/concepts", json={"name": "harbors"}).status_code == 409
    cid = concept["id"]
    harbors, beaches = by_label(home, "harbor", 4), by_label(home, "beach", 4)
    one = reader.post(f"/v1/concepts/{cid}/labels", json={"image_id": harbors[0], "relevant": True})
    assert one.status_code == 200 and one.json()["labels"] == {"relevant": 1, "not_relevant": 0}
    many = reader.post(f"/v1/concepts/{cid}/labels", json={"labels": [
        *({"image_id": h, "relevant": True} for h in harbors[1:3]),
        *({"image_id": b, "relevant": False} for b in beaches[:3]),
        {"image_id": harbors[0], "relevant": True}]})  # a duplicate mark: counted once
    assert many.json()["labels"] == {"relevant": 3, "not_relevant": 3}
    assert reader.post(f"/v1/concepts/{cid}/labels", json={"image_id": "cd" * 32, "relevant": True}).status_code == 404
    assert reader.post(f"/v1/concepts/{cid}/labels", json={"image_id": harbors[0]}).status_code == 422
    res = reader.get(f"/v1/concepts/{cid}/results", params={"k": 7})
    assert res.status_code == 200, res.text
    doc = res.json()
    assert doc["stage"] == "classifier" and doc["concept"]["id"] == cid and len(doc["hits"]) == 7
    hit = doc["hits"][0]
    assert {"rank", "image_id", "score", "uri", "label", "thumbnail", "stage", "probability"} <= set(hit)
    assert hit["stage"] == "classifier" and 0 <= hit["probability"] <= 1 and not hit["uri"].startswith("/")
    asked = reader.get(f"/v1/concepts/{cid}/ask", params={"n": 2}).json()
    assert len(asked["hits"]) == 2 and asked["why"]
    assert [c["id"] for c in reader.get("/v1/concepts").json()] == [cid]
    assert reader.get(f"/v1/concepts/{cid}").json()["name"] == "Harbors"
    assert reader.delete(f"/v1/concepts/{cid}").status_code == 403  # deleting needs an operate token
    assert api(OPERATE).delete(f"/v1/concepts/{cid}").status_code == 200
    for path in (f"/v1/concepts/{cid}", f"/v1/concepts/{cid}/results", f"/v1/concepts/{cid}/ask"):
        assert api(READ).get(path).status_code == 404
    assert api(READ).post(f"/v1/concepts/{cid}/labels", json={"image_id": harbors[0], "relevant": True}
                          ).status_code == 404


def test_conversation_remembers_and_refines(home: Path) -> None:
    from graph.runner import AgentRunner
    from service.context import Services

    services = Services()
    runner: AgentRunner = services.runner()

    def say(text: str) -> dict[str, Any]:
        out = runner.run(text, thread_id="t-concepts")
        assert out.status == "done", out
        return {r["action"]: r for r in out.results}

    found = say("find harbors")["search_images"]["data"]
    say("the second one is wrong")
    said = say("remember these as my harbors")["remember_concept"]
    assert said["status"] == "ok", said
    concept = services.app.catalog.find_concept("my harbors") or services.app.catalog.find_concept("harbors")
    assert concept is not None and concept["labels"] == {"relevant": len(found["hits"]) - 1, "not_relevant": 1}
    say("the first one is right")
    more = say("more like the ones I liked")["search_images"]
    assert more["status"] == "ok" and found["hits"][0]["image_id"] not in {h["image_id"] for h in more["data"]["hits"]}
    shown = say(f"show concept {concept['name']}")["concept_results"]
    assert shown["status"] == "ok" and shown["data"]["stage"] in ("rocchio", "classifier")
    asked = say(f"what should I label next for {concept['name']}")["concept_ask"]
    assert asked["status"] == "ok" and asked["data"]["hits"]


@pytest.mark.shared_data
def test_detect_with_a_concept_uses_its_classifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`skyscout detect --concept NAME` scores every chip of a scene with the concept's classifier."""
    from tests.support.mosaics import build_mosaic, val_tiles

    shared = PROJECT.parent / "shared" / "data"
    if not (shared / "ucm_captions" / "val.jsonl").is_file():
        pytest.skip("real data not found")
    from app.concepts import concept_results, create_concept, label_concept
    from app.data import ingest
    from app.detect import DetectRequest, detect
    from app.indexing import build_index
    from app.scenes import scene_options
    from service.context import Services
    from service.settings import Settings

    tiles = [t for t in val_tiles(shared, per_class=3) if t[1] in ("harbor", "beach", "forest", "runway")]
    mosaic = build_mosaic(tmp_path / "scene.tif", tiles, cols=4, kind="cog")
    ctx = Services(Settings(home=tmp_path / "home", data_roots=str(tmp_path))).app
    ingest(ctx, mosaic.path, scenes=scene_options(ctx, overlap=0.0))
    build_index(ctx, model="skyscout-tiny", num_workers=0)
    chips = ctx.catalog.chip_rows()
    cover = {c["id"]: mosaic.class_cover(*c["window"]) for c in chips}
    harbor = [i for i, cov in cover.items() if cov.get("harbor", 0) > 0.9]
    other = [i for i, cov in cover.items() if cov.get("harbor", 0) == 0][:3]
    concept = create_concept(ctx, "harbors", texts=["harbor"])
    label_concept(ctx, "harbors", [(i, True) for i in harbor] + [(i, False) for i in other])

    result = detect(ctx, DetectRequest(text="", concept="harbors", threshold=0.0, georeferenced=True))

    assert result.stage == "classifier" and result.query == "harbors" and result.candidates == len(chips) == 12
    assert "the concept 'harbors''s classifier" in result.geojson()["probability"]
    ranked = concept_results(ctx, concept["id"], k=12)
    expected = {h.image_id: p for h, p in zip(ranked.hits, ranked.probabilities, strict=True)}
    got = {d.chip_id: d.probability for d in result.all_chips}
    assert got == pytest.approx(expected)  # the same classifier scores both
    assert min(got[i] for i in harbor) > max(got[i] for i in other)
