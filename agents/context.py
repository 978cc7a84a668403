"""What the graph's nodes and the agents' tools are given at run time: LangGraph's ``context_schema``.

One :class:`AgentContext` per process (``service/context.py`` builds it): the application context (catalog,
models, stores), the planner's policy, the optional chat model and the offline intent router. The graph
is compiled once without any of these; each run receives the context
(``graph.invoke(..., context=agent_context)``) and nodes read it from ``runtime.context``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agents.policy import ROUND_TRAINING, PlannerPolicy
from app.context import AppContext

#: what a caller may ask the agents for (see :attr:`AgentContext.scope`)
Scope = Literal["read", "operate"]

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agents.routing import IntentRouter


@dataclass
class AgentContext:
    """The run-time dependencies of the agent graph.

    ``router`` is an :class:`~agents.routing.IntentRouter` or a callable that builds one on first use (the
    default loads MiniLM when the first request needs it). ``training`` holds the caps of the agents'
    training steps over the base model's recipe. ``dry_run`` makes a run interpret and propose without
    acting or recording anything. ``scope`` is what the caller may ask for: ``operate`` (the CLI, an operate
    token) may start work; ``read`` (a read token) may search, explain and give feedback, and every step that
    would write or start work is refused with the reason.
    """

    app: AppContext
    policy: PlannerPolicy = field(default_factory=PlannerPolicy)
    llm: BaseChatModel | None = None
    router: IntentRouter | Callable[[], IntentRouter] | None = None
    training: dict[str, Any] = field(default_factory=lambda: dict(ROUND_TRAINING))
    dry_run: bool = False
    scope: Scope = "operate"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def intent_router(self) -> IntentRouter:
        """The intent router, built on first use when a factory (or nothing) was given."""
        from agents.routing import IntentRouter, default_router

        with self._lock:
            if not isinstance(self.router, IntentRouter):
                self.router = self.router() if self.router is not None else default_router()
            return self.router

    def dry(self) -> AgentContext:
        """The same context for a dry run (shares the router and the application context)."""
        return AgentContext(self.app, self.policy, self.llm, self._shared_router(), self.training, dry_run=True,
                            scope=self.scope)

    def scoped(self, scope: Scope) -> AgentContext:
        """The same context for a caller with ``scope`` (shares the router and the application context)."""
        if scope == self.scope:
            return self
        return AgentContext(self.app, self.policy, self.llm, self._shared_router(), self.training,
                            dry_run=self.dry_run, scope=scope)

    def _shared_router(self) -> IntentRouter | Callable[[], IntentRouter] | None:
        """The router, or (not built yet) a factory that builds it once, here, for every copy."""
        from agents.routing import IntentRouter

        return self.router if isinstance(self.router, IntentRouter) else self.intent_router


__all__ = ["AgentContext", "Scope"]
