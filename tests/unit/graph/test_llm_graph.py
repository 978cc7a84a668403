"""The agent graph with a language model, where the LLM's replies are the only thing faked.

A scripted chat model answers in order: the planner's structured plan (a tool call named ``RequestPlan``),
then, for each agent, its tool calls and its final sentence. The graph, the tool-calling loop, the tools,
the catalog and the checkpointer are the real ones.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from agents.context import AgentContext
from graph.runner import AgentRunner
from tests.unit.graph.support import ScriptedChatModel, calls, make_context, says, scripted, write_tiles


@pytest.fixture
def deps(tmp_path: Path) -> AgentContext:
    write_tiles(tmp_path / "tiles", {"beach": 5, "forest": 5})
    return make_context(tmp_path / "home", [tmp_path])


def plan(*steps: dict[str, object], reason: str = "the user asked for these steps") -> object:
    return calls(("RequestPlan", {"steps": list(steps), "reason": reason}))


def with_llm(ctx: AgentContext, llm: ScriptedChatModel) -> AgentContext:
    ctx.llm = llm
    return ctx


def run(deps: AgentContext, llm: ScriptedChatModel, request: str, thread: str = "t1") -> object:
    return AgentRunner(with_llm(deps, llm), checkpointer=InMemorySaver()).run(request, thread_id=thread)


def test_llm_reply_drives_a_multi_step_plan_through_tool_calling_agents(deps: AgentContext) -> None:
    tiles = str(deps.app.config.roots[0] / "tiles")
    llm = scripted(
        plan({"intent": "ingest", "args": {"path": tiles}, "text": "ingest the tiles"},
             {"intent": "caption", "args": {}, "text": "caption them"}),
        calls(("ingest_images", {"path": tiles, "labels_from_folders": True})),
        says("I ingested 10 images from the tiles folder."),
        calls(("caption_images", {"captioner": "template"})),
        says("All 10 images now have template captions."),
    )

    outcome = run(deps, llm, "please ingest the tiles and caption them")

    assert outcome.status == "done" and outcome.errors == []
    assert outcome.interpretation["reason"] == "the user asked for these steps"
    assert [p["intent"] for p in outcome.interpretation["plan"]] == ["ingest", "caption"]
    assert [r["summary"] for r in outcome.results] == ["I ingested 10 images from the tiles folder.",
                                                       "All 10 images now have template captions."]
    assert outcome.results[0]["data"]["added"] == 10 and outcome.results[1]["data"]["captioned"] == 10
    assert deps.app.catalog.label_counts() == {"beach": 5, "forest": 5} and deps.app.catalog.count_uncaptioned() == 0
    # what the model was told: the data agent's task, then the tool's answer
    task = llm.seen[1][-1]
    assert isinstance(task, HumanMessage) and "ingest the tiles" in task.content and tiles in task.content
    tool_answer = llm.seen[2][-1]
    assert isinstance(tool_answer, ToolMessage) and "10 added" in tool_answer.content
    assert [d["action"] for d in deps.app.catalog.decisions()] == ["caption", "ingest"]


def test_a_tool_error_reaches_the_llm_as_an_error_message(
    deps: AgentContext, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = str(tmp_path.parent / "not-allowed")
    llm = scripted(
        plan({"intent": "ingest", "args": {"path": outside}, "text": "ingest that folder"}),
        calls(("ingest_images", {"path": outside})),
        says("I could not ingest it: the folder is outside the allowed data roots."),
    )

    with caplog.at_level(logging.ERROR, logger="agents.toolkit"):
        outcome = run(deps, llm, "ingest the folder next door")

    error = llm.seen[2][-1]
    assert isinstance(error, ToolMessage) and error.status == "error"
    assert error.content.startswith("error: ") and "outside the allowed data roots" in error.content
    assert any(r.exc_info for r in caplog.records if "ingest_images failed" in r.getMessage())
    assert outcome.results[0]["status"] == "failed"
    assert outcome.results[0]["summary"].startswith("I could not ingest it")
    assert outcome.errors and deps.app.catalog.count_images() == 0


def test_an_unknown_tool_name_is_answered_with_the_available_ones(deps: AgentContext) -> None:
    llm = scripted(
        plan({"intent": "caption", "args": {}, "text": "caption"}),
        calls(("delete_everything", {})),
        says("That tool does not exist; nothing to caption anyway."),
    )

    outcome = run(deps, llm, "caption")

    reply = llm.seen[2][-1]
    assert isinstance(reply, ToolMessage)
    # LangGraph's tool node answers it: the unknown name and the tools the agent does have
    assert reply.status == "error"
    assert "delete_everything is not a valid tool" in reply.content and "[caption_images]" in reply.content
    assert outcome.results[0]["status"] == "failed"


def test_a_request_the_llm_calls_unknown_is_answered_without_running_anything(deps: AgentContext) -> None:
    llm = scripted(plan({"intent": "unknown", "args": {}, "text": "order a pizza"},
                        reason="this is not about imagery"))

    outcome = run(deps, llm, "order a pizza")

    assert outcome.results[0]["status"] == "failed" and "order a pizza" in outcome.answer
    assert deps.app.catalog.decisions() == [] and len(llm.seen) == 1


def test_a_run_that_fails_midway_continues_on_its_thread(deps: AgentContext) -> None:
    """The first model's script ends after the data agent's tool call (as if the LLM server went away)."""
    tiles = str(deps.app.config.roots[0] / "tiles")
    saver = InMemorySaver()
    first = scripted(plan({"intent": "ingest", "args": {"path": tiles}, "text": "ingest"},
                          {"intent": "status", "args": {}, "text": "status"}),
                     calls(("ingest_images", {"path": tiles})))

    failed = AgentRunner(with_llm(deps, first), checkpointer=saver).run("ingest, then status", thread_id="t9")

    assert failed.status == "failed" and "--thread t9" in failed.answer
    second = scripted(calls(("ingest_images", {"path": tiles})), says("Ingested the tiles."))
    done = AgentRunner(with_llm(deps, second), checkpointer=saver).run(None, thread_id="t9")

    assert done.status == "done" and done.resumed
    assert [r["action"] for r in done.results] == ["ingest_images", "status"]
    assert done.results[0]["data"]["unchanged"] == 10  # the step ran again: nothing was ingested twice
    assert len(second.seen) == 2  # no new interpretation: the plan came from the checkpoint
