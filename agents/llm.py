"""Chat models and the tool-calling loop every agent shares.

:func:`create_chat_model` builds any LangChain chat model from a ``provider:model`` spec (an
OpenAI-compatible local server included, by base URL), importing the provider's package only then and
naming the package to install when it is missing. Without a spec there is no LLM: the offline router and
the planner's explicit policy decide, and the agents call their tools directly.

:class:`ToolAgent` runs one plan step. Offline it calls the step's tool with the step's arguments; with an
LLM it is a small tool-calling loop (``bind_tools``, run the calls, feed the results back) until the model
answers in text. Either way a failing tool becomes a ToolMessage whose content starts with ``error:``, and
the failure is logged with its cause.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ValidationError

from agents.deps import Step, StepResult, StepStatus
from prompts.agents import AGENT_TASK_TEMPLATE

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

log = logging.getLogger(__name__)

#: provider -> (module that must be importable, package to install)
PROVIDER_PACKAGES: dict[str, tuple[str, str]] = {
    "openai": ("langchain_openai", "langchain-openai"),
    "azure_openai": ("langchain_openai", "langchain-openai"),
    "anthropic": ("langchain_anthropic", "langchain-anthropic"),
    "ollama": ("langchain_ollama", "langchain-ollama"),
    "google_genai": ("langchain_google_genai", "langchain-google-genai"),
    "google_vertexai": ("langchain_google_vertexai", "langchain-google-vertexai"),
    "mistralai": ("langchain_mistralai", "langchain-mistralai"),
    "groq": ("langchain_groq", "langchain-groq"),
    "huggingface": ("langchain_huggingface", "langchain-huggingface"),
    "bedrock": ("langchain_aws", "langchain-aws"),
    "bedrock_converse": ("langchain_aws", "langchain-aws"),
    "fireworks": ("langchain_fireworks", "langchain-fireworks"),
    "together": ("langchain_together", "langchain-together"),
    "deepseek": ("langchain_deepseek", "langchain-deepseek"),
    "xai": ("langchain_xai", "langchain-xai"),
}
#: specs that mean "no LLM": the offline router and the explicit policy
OFFLINE_SPECS = frozenset({"", "none", "offline", "router"})


class LLMUnavailableError(RuntimeError):
    """A chat model was asked for but cannot be built here (the message says what to install or set)."""


def create_chat_model(
    spec: str | None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    temperature: float = 0.0,
    **kwargs: Any,
) -> BaseChatModel | None:
    """The chat model named by ``spec`` (``provider:model``), or ``None`` for the offline default.

    ``base_url`` points an OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1, LM Studio ...); with
    it a spec without a provider means ``openai:``. Local servers usually accept any ``api_key``.
    """
    if spec is None or spec.strip().lower() in OFFLINE_SPECS:
        return None
    spec = spec.strip()
    provider, sep, model = spec.partition(":")
    if not sep:
        if base_url is None:
            raise LLMUnavailableError(
                f"chat model spec {spec!r} names no provider; write it as 'provider:model', e.g. "
                f"'openai:gpt-4o-mini', 'anthropic:claude-3-5-haiku-latest', 'ollama:llama3.1', or give a "
                "base URL for an OpenAI-compatible server (then 'openai:' is assumed)"
            )
        provider, model = "openai", spec
    if not model:
        raise LLMUnavailableError(f"chat model spec {spec!r} names no model after '{provider}:'")
    module, package = PROVIDER_PACKAGES.get(provider, (f"langchain_{provider}", f"langchain-{provider}"))
    if importlib.util.find_spec(module) is None:
        raise LLMUnavailableError(
            f"the chat model {provider}:{model} needs the package {package!r}, which is not installed: "
            f"run `pip install {package}` in SkyScout's virtual environment, or unset the LLM setting to "
            "use the offline router"
        )
    from langchain.chat_models import init_chat_model

    options: dict[str, Any] = {"temperature": temperature, **kwargs}
    if base_url is not None:
        options["base_url"] = base_url
        options.setdefault("api_key", api_key or "not-needed")
    elif api_key is not None:
        options["api_key"] = api_key
    try:
        return init_chat_model(model, model_provider=provider, **options)
    except ImportError as exc:  # a dependency of the provider package itself
        raise LLMUnavailableError(f"cannot load the chat model {provider}:{model}: {exc}") from exc
    except ValueError as exc:
        raise LLMUnavailableError(f"cannot build the chat model {provider}:{model}: {exc}") from exc


# -- tools ------------------------------------------------------------------------------------------


@dataclass
class ToolOutput:
    """What a tool function returns: a one-line summary (the LLM reads it) and the data it produced."""

    summary: str
    data: dict[str, Any] = field(default_factory=dict)


def _describe_validation(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()]
    return "; ".join(parts)


def agent_tool(
    fn: Callable[[Any], ToolOutput], *, name: str, description: str, args_schema: type[BaseModel]
) -> StructuredTool:
    """Wrap ``fn(args: args_schema) -> ToolOutput`` as a LangChain tool answering ``(content, artifact)``.

    An exception inside ``fn`` is logged with its traceback and becomes the content ``error: ...`` with
    the artifact ``{"error": ..., "error_type": ...}``, so the agent reads what went wrong.
    """

    def run(**kwargs: Any) -> tuple[str, dict[str, Any]]:
        try:
            out = fn(args_schema(**kwargs))
        except ValidationError as exc:
            log.exception("tool %s: invalid arguments %s", name, kwargs)
            message = f"invalid arguments for {name}: {_describe_validation(exc)}"
            return f"error: {message}", {"error": message, "error_type": "ValidationError"}
        except Exception as exc:  # noqa: BLE001 - the tool boundary: the agent gets a message, the log the cause
            log.exception("tool %s failed with arguments %s", name, kwargs)
            message = str(exc) or type(exc).__name__
            return f"error: {message}", {"error": message, "error_type": type(exc).__name__}
        return out.summary, out.data

    return StructuredTool.from_function(
        func=run,
        name=name,
        description=description,
        args_schema=args_schema,
        response_format="content_and_artifact",
    )


def call_tool(tool: BaseTool, args: Mapping[str, Any], call_id: str | None = None) -> ToolMessage:
    """Run one tool call; invalid arguments or a crash come back as an ``error: ...`` ToolMessage."""
    call_id = call_id or f"call_{uuid.uuid4().hex[:12]}"
    try:
        message = tool.invoke({"type": "tool_call", "name": tool.name, "args": dict(args), "id": call_id})
    except ValidationError as exc:
        log.exception("tool %s: invalid arguments %s", tool.name, dict(args))
        text = f"invalid arguments for {tool.name}: {_describe_validation(exc)}"
        return ToolMessage(
            content=f"error: {text}",
            tool_call_id=call_id,
            name=tool.name,
            status="error",
            artifact={"error": text, "error_type": "ValidationError"},
        )
    except Exception as exc:  # noqa: BLE001 - the tool boundary
        log.exception("tool %s failed with arguments %s", tool.name, dict(args))
        text = str(exc) or type(exc).__name__
        return ToolMessage(
            content=f"error: {text}",
            tool_call_id=call_id,
            name=tool.name,
            status="error",
            artifact={"error": text, "error_type": type(exc).__name__},
        )
    assert isinstance(message, ToolMessage)
    if isinstance(message.artifact, dict) and "error" in message.artifact:
        message.status = "error"
    return message


# -- references between steps ------------------------------------------------------------------------

#: ``$name`` in a step's arguments -> the key of the data an earlier step produced
REFERENCES: dict[str, str] = {"$candidate": "model_version", "$dataset": "dataset_id"}
_REFERENCE_DEFAULTS: dict[str, str] = {"$dataset": "latest"}


def resolve_refs(args: Mapping[str, Any], results: Sequence[StepResult]) -> dict[str, Any]:
    """``args`` with ``$candidate`` / ``$dataset`` replaced by what the latest successful step produced."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, str) and value in REFERENCES:
            wanted = REFERENCES[value]
            found = next(
                (
                    r["data"][wanted]
                    for r in reversed(results)
                    if r["status"] == "ok" and r["data"].get(wanted)
                ),
                None,
            )
            if found is None:
                if value not in _REFERENCE_DEFAULTS:
                    raise LookupError(
                        f"no earlier step of this request produced a {wanted} for {key}={value}"
                    )
                found = _REFERENCE_DEFAULTS[value]
            out[key] = found
        else:
            out[key] = value
    return out


# -- the agent --------------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):  # content blocks
        return " ".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content).strip()
    return str(content).strip()


class ToolAgent:
    """One agent: a name, its tools, and (optionally) the chat model that chooses the calls.

    ``run(step, results)`` performs ``step`` and returns a :class:`StepResult`. Offline the step's
    ``action`` names the tool and its ``args`` are the tool's arguments; with an LLM, the step's text and
    arguments are the model's task and it may call any of the agent's tools, up to ``max_turns`` rounds.
    """

    def __init__(
        self,
        name: str,
        tools: Sequence[BaseTool],
        *,
        llm: BaseChatModel | None = None,
        system_prompt: str,
        max_turns: int = 6,
    ) -> None:
        self.name = name
        self.tools: dict[str, BaseTool] = {t.name: t for t in tools}
        self.llm = llm
        self.system_prompt = system_prompt
        self.max_turns = max_turns

    def run(self, step: Step, results: Sequence[StepResult]) -> StepResult:
        if step.get("error"):
            return self._result(step, "failed", str(step["error"]), {"error": step["error"]})
        try:
            args = resolve_refs(step["args"], results)
        except LookupError as exc:
            return self._result(step, "skipped", f"skipped: {exc}", {"error": str(exc)})
        if self.llm is None:
            tool = self.tools.get(step["action"])
            if tool is None:
                text = f"the {self.name} agent has no tool {step['action']!r}; it has {sorted(self.tools)}"
                return self._result(step, "failed", f"error: {text}", {"error": text})
            return self._from_messages(step, [call_tool(tool, args)], final=None)
        return self._run_llm(step, args, results)

    def _run_llm(self, step: Step, args: dict[str, Any], results: Sequence[StepResult]) -> StepResult:
        assert self.llm is not None
        bound = self.llm.bind_tools(list(self.tools.values()))
        context = [
            {"step": r["step"], "action": r["action"], "status": r["status"], "data": _brief(r["data"])}
            for r in results[-5:]
        ]
        messages: list[BaseMessage] = [
            SystemMessage(self.system_prompt),
            HumanMessage(
                AGENT_TASK_TEMPLATE.format(
                    text=step["text"],
                    action=step["action"],
                    args=json.dumps(args, default=str),
                    context=json.dumps(context, default=str),
                )
            ),
        ]
        tool_messages: list[ToolMessage] = []
        final: str | None = None
        for _ in range(self.max_turns):
            reply = bound.invoke(messages)
            assert isinstance(reply, AIMessage)
            messages.append(reply)
            if not reply.tool_calls:
                final = _text(reply.content)
                break
            for call in reply.tool_calls:
                tool = self.tools.get(call["name"])
                if tool is None:
                    text = f"unknown tool {call['name']!r}; available: {', '.join(sorted(self.tools))}"
                    log.warning("%s agent: %s", self.name, text)
                    msg = ToolMessage(
                        content=f"error: {text}",
                        tool_call_id=call["id"] or "",
                        name=call["name"],
                        status="error",
                        artifact={"error": text},
                    )
                else:
                    msg = call_tool(tool, call["args"], call["id"])
                messages.append(msg)
                tool_messages.append(msg)
        else:
            final = f"stopped after {self.max_turns} rounds of tool calls"
        return self._from_messages(step, tool_messages, final=final)

    def _from_messages(self, step: Step, messages: Sequence[ToolMessage], *, final: str | None) -> StepResult:
        ok = [m for m in messages if m.status != "error" and isinstance(m.artifact, dict)]
        errors = [_text(m.content) for m in messages if m.status == "error"]
        data: dict[str, Any] = dict(ok[-1].artifact) if ok else {}
        if len(ok) > 1:
            data["calls"] = [{"tool": m.name, **_brief(m.artifact)} for m in ok]
        if ok:
            data["tool"] = ok[-1].name
        if errors:
            data["errors"] = errors
        status: StepStatus = "ok" if ok or not errors else "failed"
        summary = final or (_text(ok[-1].content) if ok else "; ".join(errors) or "nothing to do")
        return self._result(step, status, summary, data)

    def _result(self, step: Step, status: StepStatus, summary: str, data: dict[str, Any]) -> StepResult:
        return StepResult(step=step["id"], agent=self.name, action=step["action"], status=status,
                          summary=summary, data=data)


def _brief(data: Mapping[str, Any], limit: int = 5) -> dict[str, Any]:
    """A shallow copy with long lists cut (what an LLM or a log needs, not every hit)."""
    return {k: (v[:limit] if isinstance(v, list) else v) for k, v in data.items()}


__all__ = [
    "LLMUnavailableError",
    "ToolAgent",
    "ToolOutput",
    "agent_tool",
    "call_tool",
    "create_chat_model",
    "resolve_refs",
]
