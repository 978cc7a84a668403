"""The agents' tools and the agent that runs one plan step with them.

A tool is a :class:`ToolSpec`: a function ``fn(ctx, args) -> ToolOutput`` over the run-time
:class:`~agents.context.AgentContext`, a pydantic argument schema and a description. Offline, a
:class:`ToolAgent` calls the step's tool with the step's arguments. With a chat model it hands the same
tools to LangChain's prebuilt agent (``langchain.agents.create_agent``: LangGraph's tool node in a loop),
where each tool reads the context through LangChain's injected ``ToolRuntime``. Either way a failing tool
becomes an ``error: ...`` message and the failure is logged with its cause.
"""

from __future__ import annotations

import contextvars
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from langchain.tools import ToolRuntime
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool, ToolException
from langgraph.errors import GraphRecursionError
from pydantic import BaseModel, ValidationError

from agents.context import AgentContext
from agents.records import Step, StepResult, StepStatus, resolve_refs, step_result
from prompts.agents import AGENT_TASK_TEMPLATE, REFUSED_FOR_READ

log = logging.getLogger(__name__)

ProgressWriter = Callable[[dict[str, Any]], None]
#: the tools a caller with the ``read`` scope may use: they write nothing but feedback (a mark, a concept and its
#: marks: agents/concepts.py)
READ_TOOLS: frozenset[str] = frozenset({"search_images", "explain_hit", "record_feedback", "report_rejects",
                                        "index_status", "create_concept", "label_concept", "concept_results",
                                        "concept_ask", "remember_concept", "list_concepts"})
_progress: contextvars.ContextVar[ProgressWriter | None] = contextvars.ContextVar("progress", default=None)


@contextmanager
def progress_to(writer: ProgressWriter | None) -> Iterator[None]:
    """Send the progress that tools report (``report_progress``) to ``writer`` while the block runs."""
    token = _progress.set(writer)
    try:
        yield
    finally:
        _progress.reset(token)


def report_progress(**event: Any) -> None:
    """Report progress of a long tool (training steps, indexed images) to whoever streams the run."""
    writer = _progress.get()
    if writer is not None:
        writer({"progress": event})


@dataclass
class ToolOutput:
    """What a tool function returns: a one-line summary (the LLM reads it) and the data it produced."""

    summary: str
    data: dict[str, Any] = field(default_factory=dict)


def _describe_validation(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()]
    return "; ".join(parts)


@dataclass(frozen=True)
class ToolSpec:
    """One tool of an agent: ``fn(ctx, args)`` with its argument schema and its description."""

    name: str
    fn: Callable[[AgentContext, Any], ToolOutput]
    args_schema: type[BaseModel]
    description: str

    def call(self, ctx: AgentContext, args: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(content, artifact): the tool's summary and data, or ``error: ...`` and the error. A caller that may
        only read (``ctx.scope == "read"``) gets a refusal from every tool but :data:`READ_TOOLS`."""
        if ctx.scope != "operate" and self.name not in READ_TOOLS:
            message = REFUSED_FOR_READ.format(action=self.name)
            return f"error: {message}", {"error": message, "error_type": "PermissionError"}
        try:
            out = self.fn(ctx, self.args_schema(**args))
        except ValidationError as exc:
            log.exception("tool %s: invalid arguments %s", self.name, dict(args))
            message = f"invalid arguments for {self.name}: {_describe_validation(exc)}"
            return f"error: {message}", {"error": message, "error_type": "ValidationError"}
        except Exception as exc:  # noqa: BLE001 - the tool boundary: the agent gets a message, the log the cause
            log.exception("tool %s failed with arguments %s", self.name, dict(args))
            message = str(exc) or type(exc).__name__
            return f"error: {message}", {"error": message, "error_type": type(exc).__name__}
        return out.summary, out.data

    def message(self, ctx: AgentContext, args: Mapping[str, Any], call_id: str | None = None) -> ToolMessage:
        """The tool's answer as a ToolMessage (status ``error`` when it failed)."""
        content, artifact = self.call(ctx, args)
        return ToolMessage(content=content, artifact=artifact, name=self.name,
                           tool_call_id=call_id or f"call_{uuid.uuid4().hex[:12]}",
                           status="error" if "error" in artifact else "success")

    @cached_property
    def langchain_tool(self) -> StructuredTool:
        """The LangChain tool a chat model calls; the context arrives through the injected ``ToolRuntime``."""
        spec = self

        def run(runtime: ToolRuntime[AgentContext], **kwargs: Any) -> tuple[str, dict[str, Any]]:
            content, artifact = spec.call(runtime.context, kwargs)
            if "error" in artifact:
                raise ToolException(content)  # LangChain answers it as a ToolMessage with status "error"
            return content, artifact

        return StructuredTool.from_function(func=run, name=self.name, description=self.description,
                                            args_schema=self.args_schema, response_format="content_and_artifact",
                                            handle_tool_error=True)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):  # content blocks
        return " ".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content).strip()
    return str(content).strip()


def _brief(data: Mapping[str, Any], limit: int = 5) -> dict[str, Any]:
    """A shallow copy with long lists cut (what an LLM or a log needs, not every hit)."""
    return {k: (v[:limit] if isinstance(v, list) else v) for k, v in data.items()}


class ToolAgent:
    """One agent: a name, its tools and its system prompt; :meth:`run` performs a plan step.

    Offline the step's ``action`` names the tool and its ``args`` are the tool's arguments; with the
    context's chat model, the step's text and arguments are the model's task and it may call any of the
    agent's tools, up to ``max_turns`` rounds.
    """

    def __init__(self, name: str, tools: Sequence[ToolSpec], *, system_prompt: str, max_turns: int = 6) -> None:
        self.name = name
        self.tools: dict[str, ToolSpec] = {t.name: t for t in tools}
        self.system_prompt = system_prompt
        self.max_turns = max_turns

    def run(self, ctx: AgentContext, step: Step, results: Sequence[StepResult]) -> StepResult:
        if step.get("error"):
            return step_result(step, "failed", str(step["error"]), {"error": step["error"]}, agent=self.name)
        try:
            args = resolve_refs(step["args"], results)
        except LookupError as exc:
            return step_result(step, "skipped", f"skipped: {exc}", {"error": str(exc)}, agent=self.name)
        if ctx.llm is None:
            tool = self.tools.get(step["action"])
            if tool is None:
                text = f"the {self.name} agent has no tool {step['action']!r}; it has {sorted(self.tools)}"
                return step_result(step, "failed", f"error: {text}", {"error": text}, agent=self.name)
            return self._from_messages(step, [tool.message(ctx, args)], final=None)
        return self._run_llm(ctx, step, args, results)

    def _run_llm(self, ctx: AgentContext, step: Step, args: dict[str, Any], results: Sequence[StepResult]
                 ) -> StepResult:
        from langchain.agents import create_agent

        assert ctx.llm is not None
        agent = create_agent(ctx.llm, [t.langchain_tool for t in self.tools.values()],
                             system_prompt=self.system_prompt, context_schema=AgentContext)
        context = [{"step": r["step"], "action": r["action"], "status": r["status"], "data": _brief(r["data"])}
                   for r in results[-5:]]
        task = AGENT_TASK_TEMPLATE.format(text=step["text"], action=step["action"],
                                          args=json.dumps(args, default=str), context=json.dumps(context, default=str))
        messages: list[BaseMessage] = [HumanMessage(task)]
        final: str | None = None
        # each round is a model call and a tool call: two supersteps of the agent's graph
        config = RunnableConfig(recursion_limit=2 * self.max_turns + 1)
        try:
            stream = agent.stream({"messages": messages}, config, context=ctx,  # type: ignore[call-overload]
                                  stream_mode="values")
            for values in stream:
                messages = values["messages"]
            last = messages[-1]
            final = _text(last.content) if isinstance(last, AIMessage) and not last.tool_calls else None
        except GraphRecursionError:
            final = f"stopped after {self.max_turns} rounds of tool calls"
        return self._from_messages(step, [m for m in messages if isinstance(m, ToolMessage)], final=final)

    def _from_messages(self, step: Step, messages: Sequence[ToolMessage], *, final: str | None) -> StepResult:
        ok = [m for m in messages if m.status != "error" and isinstance(m.artifact, dict)
              and "error" not in m.artifact]
        errors = [_text(m.content) for m in messages if m not in ok]
        data: dict[str, Any] = dict(ok[-1].artifact) if ok else {}
        if len(ok) > 1:
            data["calls"] = [{"tool": m.name, **_brief(m.artifact)} for m in ok]
        if ok:
            data["tool"] = ok[-1].name
        if errors:
            data["errors"] = errors
        status: StepStatus = "ok" if ok or not errors else "failed"
        summary = final or (_text(ok[-1].content) if ok else "; ".join(errors) or "nothing to do")
        return step_result(step, status, summary, data, agent=self.name)


__all__ = ["READ_TOOLS", "ProgressWriter", "ToolAgent", "ToolOutput", "ToolSpec", "progress_to", "report_progress"]
