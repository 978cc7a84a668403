"""The agents' LangChain tools: pydantic argument schemas, real work through tools/, and errors that
reach the agent as ``error: ...`` messages while the cause is logged.

The index/search test loads the real ``skyscout-tiny`` model once (a few seconds on CPU).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from pydantic import BaseModel

from agents.context import AgentContext
from agents.llm import LLMUnavailableError, create_chat_model
from agents.records import resolve_refs
from agents.workers import TOOLS
from app.indexing import index_state
from tests.unit.graph.support import make_context, write_tiles
from tools.indexes import alias_name

Call = Callable[[str, dict[str, Any]], ToolMessage]


@pytest.fixture
def deps(tmp_path: Path) -> AgentContext:
    write_tiles(tmp_path / "tiles", {"beach": 6, "forest": 6})
    (tmp_path / "tiles" / "beach" / "broken.png").write_bytes(b"not a png")
    return make_context(tmp_path / "home", [tmp_path])


@pytest.fixture
def call(deps: AgentContext) -> Call:
    """Call a tool by name as an offline agent does (``ToolSpec.message``)."""
    return lambda name, args: TOOLS[name].message(deps, args)


def test_every_tool_has_a_pydantic_schema_and_a_description() -> None:
    assert set(TOOLS) == {"ingest_images", "report_rejects", "create_dataset_version", "caption_images",
                          "train_candidate", "evaluate_model", "build_index", "index_status", "drop_index",
                          "search_images", "explain_hit", "record_feedback", "detect", "export_results",
                          "create_concept", "list_concepts", "label_concept", "concept_results", "concept_ask",
                          "remember_concept"}
    for spec in TOOLS.values():
        assert isinstance(spec.args_schema, type) and issubclass(spec.args_schema, BaseModel)
        assert len(spec.description) > 40
        tool = spec.langchain_tool  # what a chat model sees: the schema without the injected runtime
        shown = tool.tool_call_schema.model_json_schema().get("properties", {})
        assert set(shown) == set(spec.args_schema.model_fields)


def test_ingest_reports_rejects_and_dataset_versions(deps: AgentContext, call: Call) -> None:
    root = deps.app.config.roots[0] / "tiles"

    msg = call("ingest_images", {"path": str(root), "labels_from_folders": True})

    assert msg.status == "success"
    assert msg.artifact["added"] == 12 and msg.artifact["rejected"] == 1
    assert msg.artifact["rejects"][0]["path"].endswith("broken.png")
    assert "12 added" in msg.content and "broken.png" in msg.content
    rejects = call("report_rejects", {})
    assert rejects.artifact["count"] == 1 and "broken.png" in rejects.content
    captioned = call("caption_images", {"captioner": "template"})
    assert captioned.artifact["captioned"] == 12 and captioned.artifact["uncaptioned_left"] == 0
    ds = call("create_dataset_version", {"val_frac": 0.25, "test_frac": 0.25})
    assert ds.artifact["dataset_id"].startswith("ds-") and ds.artifact["created"] is True
    again = call("create_dataset_version", {"val_frac": 0.25, "test_frac": 0.25})
    assert again.artifact["dataset_id"] == ds.artifact["dataset_id"] and "already existed" in again.content


def test_a_failing_tool_becomes_an_error_message_and_is_logged(
    call: Call, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path.parent / "elsewhere"
    with caplog.at_level(logging.ERROR, logger="agents.toolkit"):
        msg = call("ingest_images", {"path": str(outside)})

    assert msg.status == "error"
    assert msg.content.startswith("error: ") and "outside the allowed data roots" in msg.content
    assert msg.artifact["error_type"] == "PathNotAllowedError"
    record = next(r for r in caplog.records if "ingest_images failed" in r.getMessage())
    assert record.exc_info is not None  # logged with its cause


def test_invalid_arguments_become_an_error_message(call: Call, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="agents.toolkit"):
        msg = call("search_images", {"query": "beach", "k": 0})

    assert msg.status == "error"
    assert msg.content.startswith("error: invalid arguments for search_images: k:")
    assert any(r.exc_info for r in caplog.records)


def test_search_without_an_index_says_what_to_do(call: Call) -> None:
    msg = call("search_images", {"query": "beach"})
    assert msg.status == "error" and "no complete lancedb index is active yet" in msg.content


def test_references_to_earlier_steps() -> None:
    results = [{"step": "s1", "agent": "data", "action": "create_dataset_version", "status": "ok",
                "summary": "", "data": {"dataset_id": "ds-1"}}]
    assert resolve_refs({"dataset": "$dataset", "k": 3}, results) == {"dataset": "ds-1", "k": 3}
    assert resolve_refs({"dataset": "$dataset"}, []) == {"dataset": "latest"}
    with pytest.raises(LookupError, match="model_version"):
        resolve_refs({"model": "$candidate"}, results)


def test_chat_model_factory_names_the_package_to_install() -> None:
    assert create_chat_model(None) is None and create_chat_model("offline") is None
    with pytest.raises(LLMUnavailableError, match="provider"):
        create_chat_model("gpt-4o-mini")
    with pytest.raises(LLMUnavailableError, match="pip install langchain-nosuchprovider"):
        create_chat_model("nosuchprovider:some-model")


def test_index_search_explain_feedback_and_drop_guard(deps: AgentContext, call: Call) -> None:
    """Real skyscout-tiny embeddings into a real LanceDB index; the active index cannot be dropped."""
    root = deps.app.config.roots[0] / "tiles"
    call("ingest_images", {"path": str(root), "labels_from_folders": True})
    call("caption_images", {})

    built = call("build_index", {"model": "active"})

    assert built.status == "success", built.content
    assert built.artifact["count"] == 12 and built.artifact["activated"] is True
    assert index_state(deps.app.catalog, "lancedb")["stale"] is False
    found = call("search_images", {"query": "beach", "k": 3, "filters": {"label": "beach"}})
    assert found.status == "success", found.content
    hits = found.artifact["hits"]
    assert len(hits) == 3 and all(h["label"] == "beach" for h in hits)
    assert "Top 3 for 'beach'" in found.content and "label beach" in found.content
    by_image = call("search_images", {"image": str(root / "forest" / "forest_000.png"), "k": 2})
    assert by_image.status == "success" and len(by_image.artifact["hits"]) == 2
    why = call("explain_hit", {"image_id": hits[0]["image_id"], "query": "beach"})
    assert why.artifact["closest_caption"] and "labelled beach" in why.content
    fb = call("record_feedback",
                   {"image_id": hits[0]["image_id"], "relevant": False, "query": "beach"})
    assert deps.app.catalog.feedback()[0]["id"] == fb.artifact["feedback_id"]
    active = deps.app.catalog.get_alias(alias_name("lancedb"))
    refused = call("drop_index", {"name": active})
    assert refused.status == "error" and "is the active index" in refused.content
    assert deps.app.registry().exists(active)
