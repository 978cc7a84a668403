"""Test helpers shared by the graph and agent tests: real image tiles on disk and real agent dependencies."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from PIL import Image
from pydantic import Field

from agents.context import AgentContext
from agents.policy import PlannerPolicy
from app.config import AppConfig
from app.context import AppContext
from tools.paths import resolve_roots

_COLOURS = [(200, 180, 120), (30, 120, 40), (40, 70, 160), (150, 150, 150), (120, 60, 30), (220, 220, 60)]


def write_tiles(root: Path, counts: dict[str, int], *, size: int = 48, seed: int = 0) -> list[Path]:
    """``counts[label]`` small RGB tiles in ``root/<label>/``: a colour per label plus noise."""
    rng = np.random.default_rng(seed)
    paths = []
    for i, (label, n) in enumerate(sorted(counts.items())):
        (root / label).mkdir(parents=True, exist_ok=True)
        base = np.array(_COLOURS[i % len(_COLOURS)], dtype=np.int16)
        for j in range(n):
            noise = rng.integers(-40, 40, (size, size, 3))
            pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
            path = root / label / f"{label}_{j:03d}.png"
            Image.fromarray(pixels).save(path)
            paths.append(path)
    return paths


#: the agents' training caps in tests: two optimizer steps at batch 8 (seconds on a CPU)
TINY_TRAINING: dict[str, Any] = {"epochs": 1, "batch_size": 8, "max_steps": 2, "checkpoint_every": 1,
                                 "num_workers": 0, "lr": 5e-4, "log_every": 1, "freeze": "text"}


def make_app(home: Path, roots: Sequence[Path], **config: Any) -> AppContext:
    """A real application context in ``home``: a catalog, a LanceDB registry, the CPU."""
    return AppContext(AppConfig(home=home, roots=tuple(resolve_roots([str(r) for r in roots])), device="cpu",
                                workers=2, **config))


def make_context(home: Path, roots: Sequence[Path], *, policy: PlannerPolicy | None = None,
                 training: dict[str, Any] | None = None, llm: Any = None, router: Any = None) -> AgentContext:
    """The agents' run-time context over a real application context, with tiny training caps."""
    return AgentContext(make_app(home, roots), policy=policy or PlannerPolicy(), llm=llm, router=router,
                        training=dict(training or TINY_TRAINING))


class ScriptedChatModel(GenericFakeChatModel):
    """A chat model whose replies are a fixed script: the only thing these tests fake is the LLM's reply.

    Everything else (tool binding, structured output parsing, the tools, the catalog) is the real code.
    ``seen`` keeps the messages each call was given, so a test can check what the model was told.
    """

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def scripted(*replies: AIMessage) -> ScriptedChatModel:
    """A :class:`ScriptedChatModel` that answers ``replies`` in order (and fails if asked once more)."""
    return ScriptedChatModel(messages=iter(replies))


def calls(*calls: tuple[str, dict[str, Any]]) -> AIMessage:
    """An LLM reply that calls tools: ``calls(("ingest_images", {"path": "..."}))``."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{i}_{name}"}
                                             for i, (name, args) in enumerate(calls)])


def says(text: str) -> AIMessage:
    """An LLM reply in plain text (the agent's final answer)."""
    return AIMessage(content=text)
