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

from agents.deps import AgentDeps
from agents.planner import PlannerPolicy
from tools.catalog import Catalog
from tools.paths import resolve_roots
from tools.stores.factory import index_registry
from tools.training import TrainConfig

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


def make_deps(home: Path, roots: Sequence[Path], *, policy: PlannerPolicy | None = None,
              train: TrainConfig | None = None, **kwargs: Any) -> AgentDeps:
    """Real dependencies in ``home``: a catalog, a LanceDB registry, CPU, tiny training defaults."""
    return AgentDeps(
        catalog=Catalog(home / "catalog.db"), allowed_roots=resolve_roots([str(r) for r in roots]),
        models_dir=home / "models", cache_dir=home / "cache",
        open_registry=lambda kind: index_registry(kind, path=home / "indexes"),  # type: ignore[arg-type]
        device="cpu", policy=policy or PlannerPolicy(),
        train_defaults=train or TrainConfig(epochs=1, batch_size=8, max_steps=2, checkpoint_every=1,
                                            num_workers=0, lr=5e-4, log_every=1, freeze="text"),
        **kwargs,
    )


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
