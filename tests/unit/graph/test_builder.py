"""The agent graph offline (no LLM): multi-step plans, supervision, approvals, threads, the state's contents.

Requests are given as ready intents (the router has its own tests), so nothing here loads a model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph

from agents.context import AgentContext
from agents.policy import PlannerPolicy
from graph.builder import build_graph
from graph.runner import AgentRunner, sqlite_checkpointer
from tests.unit.graph.support import make_context, write_tiles


@pytest.fixture
def ctx(tmp_path: Path) -> AgentContext:
    write_tiles(tmp_path / "tiles", {"beach": 6, "forest": 6})
    return make_context(tmp_path / "home", [tmp_path],
                        router=lambda: pytest.fail("requests here come as intents: no router is built"))


@pytest.fixture
def runner(ctx: AgentContext, tmp_path: Path) -> Iterator[AgentRunner]:
    with sqlite_checkpointer(tmp_path / "home" / "checkpoints.sqlite") as saver:
        yield AgentRunner(ctx, checkpointer=saver)


def ingest_and_caption(ctx: AgentContext) -> list[dict[str, Any]]:
    tiles = str(ctx.app.config.roots[0] / "tiles")
    return [{"intent": "ingest", "args": {"path": tiles, "labels_from_folders": True}},
            {"intent": "caption", "args": {"captioner": "template"}}]


def test_build_graph_returns_an_uncompiled_graph_without_dependencies() -> None:
    graph = build_graph()

    assert isinstance(graph, StateGraph) and graph.context_schema is AgentContext
    assert {"interpret", "supervisor", "approve", "data", "caption", "training", "embedding", "query",
            "planner", "finish"} <= set(graph.nodes)
    app = graph.compile(checkpointer=InMemorySaver())
    assert set(app.get_input_jsonschema()["properties"]) == {"request", "thread_id", "intents"}
    assert "answer" in app.get_output_jsonschema()["properties"]


def test_multi_step_plan_runs_each_agent_and_explains_each_step(runner: AgentRunner, ctx: AgentContext) -> None:
    intents = [*ingest_and_caption(ctx), {"intent": "status"}, {"intent": "explain"}]

    outcome = runner.run("ingest the tiles, caption them, then tell me where we stand", thread_id="t1",
                         intents=intents)

    assert outcome.status == "done" and outcome.errors == []
    assert [(r["agent"], r["action"], r["status"]) for r in outcome.results] == [
        ("data", "ingest_images", "ok"), ("caption", "caption_images", "ok"), ("planner", "status", "ok"),
        ("planner", "explain", "ok")]
    assert ctx.app.catalog.count_images() == 12 and ctx.app.catalog.count_uncaptioned() == 0
    logged = ctx.app.catalog.decisions()
    assert [d["action"] for d in logged] == ["caption", "ingest"]
    assert all(d["outcome"].startswith("ok: ") and d["actor"] == "user" for d in logged)
    assert "12 added" in outcome.answer and "Decisions:" in outcome.answer
    assert "no complete lancedb index" in outcome.results[2]["summary"]
    # the state holds ids, paths, counts and texts: small, JSON-able, no vectors
    state = runner.graph.get_state(runner.config("t1")).values
    text = json.dumps(state)
    assert len(text) < 30_000


def test_steps_that_cannot_run_say_why(runner: AgentRunner) -> None:
    intents = [{"intent": "ingest", "args": {}}, {"intent": "search", "args": {"k": 3}},
               {"intent": "unknown", "args": {}}]

    outcome = runner.run("ingest, search, blah", thread_id="t2", intents=intents)

    assert [r["status"] for r in outcome.results] == ["failed", "failed", "failed"]
    assert "say which folder or manifest to ingest" in outcome.results[0]["summary"]
    assert "say what to look for" in outcome.results[1]["summary"]
    assert len(outcome.errors) == 3


def test_declined_training_skips_the_steps_that_need_it(ctx: AgentContext, tmp_path: Path) -> None:
    ctx.policy = PlannerPolicy(require_approval=True)
    with sqlite_checkpointer(tmp_path / "home" / "checkpoints.sqlite") as saver:
        runner = AgentRunner(ctx, checkpointer=saver)
        waiting = runner.run("ingest, caption and train", thread_id="t3",
                             intents=[*ingest_and_caption(ctx), {"intent": "train"}])

        assert waiting.status == "awaiting_approval"
        assert waiting.approval["action"] == "train_candidate"
        assert "requires approval" in waiting.approval["reason"] and "--thread t3 --approve" in waiting.answer
        with pytest.raises(ValueError, match="unfinished request"):
            runner.run("something else", thread_id="t3")

        done = runner.run(None, thread_id="t3", approve=False)

    assert done.status == "done" and done.resumed
    statuses = {r["action"]: r["status"] for r in done.results}
    assert statuses == {"ingest_images": "ok", "caption_images": "ok", "create_dataset_version": "ok",
                        "train_candidate": "skipped", "evaluate_model": "skipped", "promote": "skipped",
                        "build_index": "skipped"}
    assert ctx.app.catalog.list_jobs(kind="train") == []
    assert ctx.app.catalog.decisions(action="declined")[0]["actor"] == "user"
    assert ctx.app.catalog.decisions(action="train")[0]["outcome"] == "skipped: declined"


def test_approved_step_runs(ctx: AgentContext, runner: AgentRunner) -> None:
    ctx.policy = PlannerPolicy(require_approval=True, approval_actions=["caption_images"])

    waiting = runner.run("ingest and caption", thread_id="t4", intents=ingest_and_caption(ctx))
    assert waiting.status == "awaiting_approval" and ctx.app.catalog.count_uncaptioned() == 12

    done = runner.run(None, thread_id="t4", approve=True)

    assert done.status == "done" and ctx.app.catalog.count_uncaptioned() == 0
    assert [d["action"] for d in done.decisions] == ["ingest", "caption", "approved"]


def test_a_new_request_on_a_finished_thread_starts_clean(ctx: AgentContext, runner: AgentRunner) -> None:
    runner.run("ingest and caption", thread_id="t5", intents=ingest_and_caption(ctx))

    second = runner.run("status", thread_id="t5", intents=[{"intent": "status"}])

    assert [r["action"] for r in second.results] == ["status"] and second.decisions == []
    with pytest.raises(ValueError, match="no unfinished request"):
        runner.run(None, thread_id="t5")


def test_an_improvement_round_adds_the_steps_it_decides(ctx: AgentContext, runner: AgentRunner) -> None:
    from tools.indexes import alias_name
    from tools.stores.base import index_name_for_model

    runner.run("ingest", thread_id="t6", intents=ingest_and_caption(ctx)[:1])
    name = index_name_for_model("skyscout-tiny")  # as if the base model's index were built: only captions lack
    ctx.app.catalog.upsert_index(name, model="skyscout-tiny", store="lancedb", dim=384, state="complete", count=12)
    ctx.app.catalog.set_alias(alias_name("lancedb"), name)

    outcome = runner.run("improve", thread_id="t6", intents=[{"intent": "improve"}])

    assert [(r["action"], r["status"]) for r in outcome.results] == [("improve", "ok"), ("caption_images", "ok")]
    assert ctx.app.catalog.count_uncaptioned() == 0
    caption = ctx.app.catalog.decisions(action="caption")[0]
    assert caption["actor"] == "planner" and caption["reason"].startswith("12 accepted images have no caption")
    assert caption["outcome"].startswith("ok: Captioned 12 of 12 images")
