"""Wiring of real dependencies from settings: the one place that builds catalogs, models and stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from service.settings import Settings, load_settings
from tools.catalog import Catalog


@dataclass
class AppContext:
    """Lazily built dependencies shared by the CLI, the HTTP service and the agents."""

    settings: Settings = field(default_factory=load_settings)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.settings.catalog_path)
