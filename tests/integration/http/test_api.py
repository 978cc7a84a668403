"""The HTTP API over real HTTP (uvicorn on 127.0.0.1): auth, search, feedback, thumbnails, limits, errors."""

from __future__ import annotations

import io
import json

from PIL import Image

from tests.integration.http.conftest import LiveServer


def test_health_needs_no_token(server: LiveServer) -> None:
    with server.client(token=None) as c:
        doc = c.get("/healthz").json()
        assert doc["status"] == "ok" and doc["auth"] == "bearer"  # the web app asks for a token first


def test_missing_token_is_401_wrong_token_is_403(server: LiveServer) -> None:
    with server.client(token=None) as c:
        r = c.post("/v1/search", json={"text": "beach"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    with server.client(token="nope") as c:
        assert c.post("/v1/search", json={"text": "beach"}).status_code == 403
    with server.client(token="other-token") as c:
        assert c.get("/v1/status").status_code == 200


def test_search_feedback_thumbnail(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/v1/search", json={"text": "harbor with boats", "k": 4, "filters": {"label": "harbor"}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["hits"]) == 4 and all(h["label"] == "harbor" for h in body["hits"])
        hit = body["hits"][0]
        more = c.post("/v1/search", json={"image_id": hit["image_id"], "k": 3}).json()
        assert hit["image_id"] not in [h["image_id"] for h in more["hits"]]
        fb = c.post("/v1/feedback", json={"query_id": body["query_id"], "image_id": hit["image_id"],
                                          "relevant": False, "query": "harbor with boats"})
        assert fb.status_code == 200 and fb.json()["feedback_id"] >= 1
        thumb = c.get(hit["thumbnail"], params={"size": 64})
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(thumb.content)).size) == 64
        status = c.get("/v1/status").json()
        assert status["images"] == 80 and status["active_index"]
        jobs = c.get("/v1/jobs").json()
        assert {j["kind"] for j in jobs} >= {"ingest", "index"}
        assert c.get(f"/v1/jobs/{jobs[0]['id']}").json()["id"] == jobs[0]["id"]


def test_bad_requests_get_clear_errors_without_traces(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/v1/search", json={})
        assert r.status_code == 422 and "give a text" in r.text
        r = c.post("/v1/search", json={"text": "x", "k": 0})
        assert r.status_code == 422
        r = c.post("/v1/search", json={"text": "x", "filters": {"bad key;": "x"}})
        assert r.status_code == 422
        r = c.post("/v1/feedback", json={"query_id": "q", "image_id": "f" * 64, "relevant": True})
        assert r.status_code == 404 and "not in the catalog" in r.json()["error"]
        assert c.get("/v1/images/" + "0" * 64 + "/thumbnail").status_code == 404
        assert c.get("/v1/jobs/nope").status_code == 404
        big = c.post("/v1/search", content=b"{" + b" " * 10_000 + b"}",
                     headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.json()["error"] == "request body larger than 4096 bytes"
        chunked = c.post("/v1/search", content=iter([b"{", b" " * 5_000, b" " * 5_000, b"}"]),
                         headers={"content-type": "application/json"})  # no Content-Length: counted as read
        assert chunked.status_code == 413 and "larger than 4096 bytes" in chunked.json()["error"]
        for r in (big, chunked):
            assert "Traceback" not in r.text


def _events(text: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_chat_answers_and_streams_steps_on_one_thread(server: LiveServer) -> None:
    """The offline router and policy answer; no LLM is involved, nothing is faked."""
    with server.client() as c:
        r = c.post("/v1/chat", json={"thread_id": "http-chat-1", "message": "how many images do we have?"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "done" and body["thread_id"] == "http-chat-1" and "80" in (body["answer"] or "")
        with c.stream("POST", "/v1/chat/stream", json={"thread_id": "http-chat-1", "message": "find beaches"}) as s:
            assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
            events = _events(s.read().decode())
        kinds = [e for e, _ in events]
        assert kinds[-1] == "done" and kinds.count("step") >= 2
        done = events[-1][1]
        assert done["status"] == "done" and done["request"] == "find beaches"
        searched = [r for r in done["results"] if r["action"] == "search_images"]
        assert searched and searched[0]["status"] == "ok" and searched[0]["data"]["hits"]


def test_improve_runs_one_tick(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/v1/improve")
        assert r.status_code == 200, r.text
        assert "decisions" in r.json() and r.json()["ingested"] == []
