"""A conversation that remembers: one search refined by follow-ups on the same thread, as `skyscout chat`
runs them (``AgentRunner.run`` per message), over the bundled sample indexed by ``skyscout-tiny``.

Nothing is faked: the offline router reads the first request; the follow-ups are read against the
thread's last search; each runs through the graph and its checkpointer.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from app.indexing import build_index
from service.commands.chat import chat_loop
from service.context import Services
from service.settings import Settings
from tools.ingest import ingest_manifest

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_five_follow_ups_refine_one_search(tmp_path: Path) -> None:
    services = Services(Settings(home=tmp_path / "home", data_roots=str(PROJECT / "data")))
    app = services.app
    ingest_manifest(app.catalog, PROJECT / "data" / "ucm_sample" / "val.jsonl", allowed_roots=list(app.config.roots),
                    progress=False, source="ucm_val")
    build_index(app, model="skyscout-tiny", num_workers=0)
    runner, thread = services.runner(), "conv-1"

    def say(text: str) -> dict:  # type: ignore[type-arg]
        outcome = runner.run(text, thread_id=thread)
        assert outcome.status == "done" and not outcome.errors, outcome.answer
        return {r["action"]: r for r in outcome.results}

    first = say("show me tiles that look like harbors")["search_images"]["data"]
    assert first["query"] == "harbors" and len(first["hits"]) == 10  # filler stripped by the router

    only = say("now only the ones from source ucm_val")["search_images"]["data"]
    assert only["query"] == "harbors" and only["filters"] == {"source": "ucm_val"}

    without = say("without parking lots")["search_images"]["data"]
    assert without["negative"] == ["parking lots"] and without["filters"] == {"source": "ucm_val"}

    labelled = say("just the harbors")["search_images"]["data"]
    assert labelled["filters"] == {"source": "ucm_val", "label": "harbor"}
    assert all(h["label"] == "harbor" for h in labelled["hits"])

    like = say("more like the first one")["search_images"]["data"]
    assert like["image"] == labelled["hits"][0]["image_id"] and like["query"] is None
    assert labelled["hits"][0]["image_id"] not in [h["image_id"] for h in like["hits"]]

    marked = say("the third one is wrong")["record_feedback"]["data"]
    third = like["hits"][2]["image_id"]
    assert marked["image_id"] == third and marked["relevant"] is False
    stored = [f for f in app.catalog.feedback() if f["image_id"] == third]
    assert stored and stored[0]["relevant"] == 0 and stored[0]["query_id"] == like["query_id"]

    exported = say("export these")["export_results"]["data"]
    doc = json.loads(Path(exported["path"]).read_text())
    assert doc["type"] == "FeatureCollection" and [f["properties"]["image_id"] for f in doc["features"]] == \
        [h["image_id"] for h in like["hits"]]

    missing = runner.run("number 12 is wrong", thread_id=thread)
    assert missing.results[0]["status"] == "failed" and "no result number 12" in missing.results[0]["summary"]


def test_the_chat_transcript_reads_once_per_step(tmp_path: Path) -> None:
    services = Services(Settings(home=tmp_path / "home", data_roots=str(PROJECT / "data")))
    out = io.StringIO()
    chat_loop(services.runner(), "conv-2", io.StringIO("what is the status?\n/quit\n"), out)
    text = out.getvalue()
    assert text.count("-> s1 planner/status") == 1 and text.count("[planner/status]") == 1
