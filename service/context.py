"""The composition root: settings become the application context, the agents' context and the graph runner.

A process builds one :class:`Services` (the CLI per command, ``serve`` once for its lifetime, the
scheduler inside ``serve`` shares it). Each part is built on first use, so a CLI search builds the
application context only: it never imports the agents, LangGraph or LangChain.
"""

from __future__ import annotations

import hashlib
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import AppConfig, AstraCredentials
from app.context import AppContext
from service.settings import Settings, load_settings

if TYPE_CHECKING:
    from agents.context import AgentContext
    from graph.runner import AgentRunner


def instance_id(settings: Settings) -> str:
    """An opaque name of a SkyScout home (its resolved path, hashed): equal homes, equal ids."""
    return hashlib.sha256(str(Path(settings.home).resolve()).encode()).hexdigest()[:12]


def app_config(settings: Settings) -> AppConfig:
    """The application's view of the settings: typed, resolved, immutable."""
    return AppConfig(
        home=settings.home, roots=tuple(settings.roots), device=settings.device,
        keep_checkpoints=settings.keep_checkpoints, keep_candidates=settings.keep_candidates,
        store=settings.store,  # type: ignore[arg-type]  # validated by AppContext.store_kind
        astra=AstraCredentials(settings.astra_endpoint, settings.astra_token, settings.astra_keyspace,
                               settings.astra_concurrency, settings.astra_chunk_size, settings.astra_max_retries),
        workers=settings.workers, max_pixels=settings.max_pixels, captioner=settings.captioner,
        scene_min_side=settings.scene_min_side, max_scene_pixels=settings.max_scene_pixels,
        detect_background=tuple(p.strip() for p in settings.detect_background.split(",") if p.strip()),
    )


class Services:
    """What one process builds from its settings, once."""

    def __init__(self, settings: Settings | None = None, *, app: AppContext | None = None) -> None:
        self.settings = settings or load_settings()
        if app is not None:
            self.__dict__["app"] = app
        self._lock = threading.Lock()
        self._runner: AgentRunner | None = None

    @cached_property
    def app(self) -> AppContext:
        return AppContext(app_config(self.settings))

    @cached_property
    def agents(self) -> AgentContext:
        """The agents' run-time context: the application context, the policy, the chat model if any."""
        from agents.context import AgentContext
        from agents.llm import create_chat_model
        from agents.policy import ROUND_TRAINING, PlannerPolicy

        s = self.settings
        return AgentContext(self.app, policy=PlannerPolicy(**s.policy),
                            llm=create_chat_model(s.llm, base_url=s.llm_base_url, api_key=s.llm_api_key),
                            training={**ROUND_TRAINING, **s.round_training})

    def runner(self) -> AgentRunner:
        """The compiled agent graph with a SqliteSaver in SKYSCOUT_HOME, kept open for the process."""
        from graph.runner import AgentRunner, default_checkpoint_path, open_sqlite_checkpointer

        with self._lock:
            if self._runner is None:
                saver = open_sqlite_checkpointer(default_checkpoint_path(self.settings.home))
                self._runner = AgentRunner(self.agents, checkpointer=saver)
            return self._runner


__all__ = ["Services", "app_config"]
