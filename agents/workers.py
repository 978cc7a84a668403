"""The five worker agents, by name (each module defines its tools and its agent)."""

from __future__ import annotations

from agents import caption, data, embedding, query, training
from agents.toolkit import ToolAgent, ToolSpec

WORKERS: dict[str, ToolAgent] = {a.name: a for a in (data.AGENT, caption.AGENT, training.AGENT, embedding.AGENT,
                                                     query.AGENT)}
#: every worker tool, by name
TOOLS: dict[str, ToolSpec] = {t.name: t for agent in WORKERS.values() for t in agent.tools.values()}

__all__ = ["TOOLS", "WORKERS"]
