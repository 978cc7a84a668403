"""Wiring of real dependencies from settings: the one place that builds catalogs, models and stores."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from service.settings import Settings, load_settings
from tools.catalog import Catalog


@dataclass
class AppContext:
    """Lazily built dependencies shared by the CLI, the HTTP service and the agents.

    Models are loaded once per process and spec (through the agents' model cache), never at import time.
    """

    settings: Settings = field(default_factory=load_settings)
    _models: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.settings.catalog_path)

    @cached_property
    def device(self) -> str:
        from tools.modelops import pick_device

        return pick_device(self.settings.device)

    def registry(self, kind: str | None = None) -> Any:
        """The index registry of a vector store backend (default: ``SKYSCOUT_STORE``)."""
        from tools.stores.factory import index_registry

        kind = kind or self.settings.store
        if kind == "lancedb":
            return index_registry("lancedb", path=self.settings.indexes_dir / "lancedb")
        s = self.settings
        return index_registry(kind, endpoint=s.astra_endpoint, token=s.astra_token,  # type: ignore[arg-type]
                              keyspace=s.astra_keyspace)

    def agent_deps(self) -> Any:
        """The agents' dependencies (:class:`agents.deps.AgentDeps`), built once; its model cache is shared."""
        with self._lock:
            if "deps" not in self._models:
                self._models["deps"] = self._build_agent_deps()
            return self._models["deps"]

    def _build_agent_deps(self) -> Any:
        from agents.deps import AgentDeps

        s = self.settings
        return AgentDeps(
            catalog=self.catalog, allowed_roots=s.roots, models_dir=s.models_dir, cache_dir=s.cache_dir,
            open_registry=self.registry, store_kind=s.store, device=s.device, captioner=s.captioner,
            workers=s.workers,
        )

    def chat_model(self) -> Any:
        """The configured LangChain chat model, or None for the offline router and policy."""
        from agents.llm import create_chat_model

        s = self.settings
        return create_chat_model(s.llm, base_url=s.llm_base_url, api_key=s.llm_api_key)

    def agent_runner(self) -> Any:
        """The compiled agent graph with a SqliteSaver checkpointer in SKYSCOUT_HOME (kept open for the process)."""
        from graph.runner import AgentRunner, default_checkpoint_path, open_sqlite_checkpointer

        with self._lock:
            if "runner" not in self._models:
                saver = open_sqlite_checkpointer(default_checkpoint_path(self.settings.home))
                runner = AgentRunner(self._models.get("deps") or self._build_agent_deps(), checkpointer=saver,
                                     llm=self.chat_model())
                self._models["deps"] = runner.deps
                self._models["runner"] = runner
            return self._models["runner"]

    def model(self, spec: str | None = None) -> tuple[Any, Any]:
        """(resolved spec, loaded model) for ``spec`` (default ``active``), cached per process."""
        from tools.modelops import resolve_model

        resolved = resolve_model(self.catalog, spec)
        return resolved, self.agent_deps().model_cache.model(resolved.load_spec)
