"""The routes the web app added, over real HTTP: search by uploaded image (ingestion's checks, the body limit),
example image lists, chat approvals, the status panel's routes, the public static files and /docs offline."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

from PIL import Image

from tests.integration.http.conftest import PROJECT, LiveServer

VAL = [json.loads(line) for line in (PROJECT / "data" / "ucm_sample" / "val.jsonl").read_text().splitlines()]


def _small_jpeg(path: Path, side: int = 64) -> bytes:
    buf = io.BytesIO()
    with Image.open(path) as im:
        im.convert("RGB").resize((side, side)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _bomb_png(side: int = 100_000) -> bytes:
    """A few bytes of PNG whose header claims ``side`` x ``side`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_search_by_an_uploaded_image_finds_the_image_it_was_made_from(server: LiveServer) -> None:
    row = VAL[0]
    data = _small_jpeg(PROJECT / "data" / "ucm_sample" / row["image"])
    assert len(data) < 4096  # the fixture's body limit
    with server.client() as c:
        r = c.post("/v1/search/image?k=5", content=data, headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert len(hits) == 5 and all(h["thumbnail"].startswith("/v1/images/") for h in hits)
        assert row["image"] in [h["uri"].removeprefix("ucm_sample/") for h in hits[:3]], [h["uri"] for h in hits]
        both = c.post("/v1/search/image?k=5&negative_texts=forest&filter=label=" + row["label"], content=data,
                      headers={"Content-Type": "application/octet-stream"})
        assert both.status_code == 200 and {h["label"] for h in both.json()["hits"]} == {row["label"]}


def test_an_upload_is_checked_as_ingestion_checks_a_file(server: LiveServer) -> None:
    with server.client() as c:
        for body, why in ((b"", "empty"), (b"not an image at all", "not a recognised image format"),
                          (_bomb_png(), "decompression bomb")):
            r = c.post("/v1/search/image", content=body, headers={"Content-Type": "image/png"})
            assert r.status_code == 400 and why in r.json()["error"], (why, r.text)
        big = c.post("/v1/search/image", content=b"\xff" * 10_000, headers={"Content-Type": "image/jpeg"})
        assert big.status_code == 413 and big.json() == {"error": "request body larger than 4096 bytes"}
        assert c.post("/v1/search/image?filter=nokey", content=b"x").status_code == 422


def test_several_example_images_and_the_chat_approval_field(server: LiveServer) -> None:
    with server.client() as c:
        first = c.post("/v1/search", json={"text": "beach", "k": 4}).json()["hits"]
        ids = [h["image_id"] for h in first[:2]]
        r = c.post("/v1/search", json={"image_ids": ids, "negative_image_ids": [first[3]["image_id"]], "k": 5})
        assert r.status_code == 200 and not {h["image_id"] for h in r.json()["hits"]} & set(ids)
        assert c.post("/v1/chat", json={"thread_id": "web-approve-1"}).status_code == 422
        r = c.post("/v1/chat", json={"thread_id": "web-approve-1", "approve": True})
        assert r.status_code == 400 and "nothing on thread" in r.json()["error"], r.text


def test_the_status_panels_routes(server: LiveServer) -> None:
    with server.client() as c:
        indexes = c.get("/v1/indexes").json()
        assert indexes["active"] and indexes["indexes"][0]["model"] == "skyscout-tiny"
        assert c.get("/v1/models").json()["active"] == "skyscout-tiny"
        assert isinstance(c.get("/v1/decisions?limit=5").json(), list)
        ui = c.get("/v1/ui").json()
        assert ui["basemap_url"] is None and set(ui["features"]) >= {"concepts", "detect_concept"}
        r = c.get("/v1/scenes/abcdef0123/tiles/3/1/2.png")
        assert r.status_code == 404 and "no scene" in r.json()["error"]
        assert "app;dur=" in c.get("/v1/status").headers["server-timing"]


def test_the_app_and_swagger_are_served_offline_and_public(server: LiveServer) -> None:
    with server.client(token=None) as c:
        page = c.get("/")
        assert page.status_code == 200 and '<script type="module" src="js/main.js">' in page.text
        assert "http" not in page.text.split("<body>")[0]  # nothing loaded from elsewhere
        assert c.put("/").status_code == 405 and c.delete("/v1/search").headers["allow"] == "POST"
        for path in ("/vendor/leaflet/leaflet.js", "/vendor/leaflet/LICENSE", "/js/search.js", "/docs.html",
                     "/swagger/swagger-ui-bundle.js", "/swagger/swagger-ui.css"):
            assert c.get(path).status_code == 200, path
        assert c.get("/docs").status_code == 401 and c.get("/openapi.json").status_code == 401
    with server.client() as c:
        docs = c.get("/docs").text
        assert "/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
