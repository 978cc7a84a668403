"""Settings: ``SKYSCOUT_*`` environment variables over an optional TOML settings file over defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tools.captioning.factory import CAPTIONER_NAMES, CaptionerName

#: what an HTTP token may do: ``read`` (search, status, thumbnails, feedback; chat that searches and explains)
#: and ``operate`` (everything, including chat actions that write, improve and cancelling jobs)
SCOPES: tuple[str, ...] = ("read", "operate")


def _settings_file() -> Path | None:
    explicit = os.environ.get("SKYSCOUT_SETTINGS_FILE")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"SKYSCOUT_SETTINGS_FILE points at {path}, which does not exist")
        return path
    local = Path("skyscout.toml")
    return local if local.is_file() else None


class Settings(BaseSettings):
    """Everything configurable. Environment variables are the field names upper-cased, prefixed SKYSCOUT_."""

    model_config = SettingsConfigDict(env_prefix="SKYSCOUT_", extra="ignore")

    home: Path = Field(Path(".skyscout"), description="where the catalog, models and indexes live")
    data_roots: str = Field(".", description="directories images may be read from, separated by ':'")
    device: str = Field("auto", description="torch device for models: auto, cpu, cuda, cuda:1, ...")
    workers: int = Field(4, description="threads for decoding images during ingestion and captioning")
    max_pixels: int = Field(89_478_485, description="larger images are rejected as decompression bombs")
    scene_min_side: int = Field(1024, description="files whose longer side reaches this many pixels are ingested "
                                "as scenes and chipped (0: only with --scenes or a manifest's scene: true)")
    max_scene_pixels: int = Field(10_000_000_000, description="scenes claiming more pixels are rejected as "
                                  "decompression bombs")
    detect_background: str = Field("", description="background prompts detection weighs a query against, "
                                   "comma-separated (empty: the built-in land-cover set)")
    captioner: CaptionerName = Field("template", description=f"default captioner: {', '.join(CAPTIONER_NAMES)}")
    store: str = Field("lancedb", description="vector store: lancedb (embedded) or astra")
    astra_endpoint: str | None = Field(None, description="Astra DB API endpoint (else ASTRA_DB_API_ENDPOINT)")
    astra_token: str | None = Field(None, description="Astra DB token (else ASTRA_DB_APPLICATION_TOKEN)")
    astra_keyspace: str | None = Field(None, description="Astra DB keyspace (else ASTRA_DB_KEYSPACE)")
    astra_concurrency: int = Field(8, ge=1, description="Astra DB bulk upserts: insertMany requests in flight")
    astra_chunk_size: int = Field(100, ge=1, le=100, description="Astra DB documents per insertMany (at most 100)")
    astra_max_retries: int = Field(5, ge=0, description="Astra DB retries of a request on 429/5xx/timeouts")
    llm: str | None = Field(None, description="LangChain chat model 'provider:model'; unset: offline router")
    llm_base_url: str | None = Field(None, description="base URL of an OpenAI-compatible server")
    llm_api_key: str | None = Field(None, description="API key for the chat model (local servers accept any)")
    api_tokens: str = Field("", description="bearer tokens accepted by the HTTP API, comma-separated; 'read:TOKEN' "
                            "may search, read status and thumbnails and give feedback, 'operate:TOKEN' (or a bare "
                            "TOKEN) may also start work (chat actions that write, improve, cancel)")
    server_url: str | None = Field(None, description="a running `skyscout serve` of this home: CLI searches go "
                                   "through it (unset: http://127.0.0.1:8000 when one of this home answers there)")
    server_token: str | None = Field(None, description="bearer token for server_url (default: the first API token)")
    keep_checkpoints: bool = Field(False, description="keep finished training runs' checkpoints (resumable state)")
    keep_candidates: int = Field(3, ge=0, description="`skyscout gc` keeps the active model, its parent and this "
                                 "many newest other model versions")
    max_body_bytes: int = Field(1_000_000, description="largest HTTP request body accepted")
    serve_threads: int = Field(1, ge=1, description="torch threads in `skyscout serve`: concurrent requests share "
                               "the cores (on a busy 2-core machine 2 threads made a text query 10x slower)")
    improve_every: str | None = Field(None, description="run the improvement loop inside `serve`, e.g. 6h")
    basemap_url: str | None = Field(None, description="an XYZ basemap under the web app's map, e.g. "
                                    "https://tile.example.org/{z}/{x}/{y}.png (unset: none; the app works offline)")
    basemap_attribution: str = Field("", description="the basemap's attribution, shown on the map")
    watch_dirs: str = Field("", description="folders the improvement loop ingests new files from, ':'-separated")
    policy: dict[str, Any] = Field(
        default_factory=dict, description="the planner's policy (thresholds, margins, approvals), as JSON or a "
        "[policy] table in the settings file; `skyscout policy` shows the effective one")
    round_training: dict[str, Any] = Field(
        default_factory=dict, description="training options of the agents' rounds over the model's recipe "
        'and the round caps, as JSON, e.g. {"max_steps": 600}')

    @property
    def tokens(self) -> list[str]:
        return [token for token, _ in self.token_scopes]

    @property
    def token_scopes(self) -> list[tuple[str, str]]:
        """(token, scope) pairs: ``read:TOKEN`` and ``operate:TOKEN``; a bare token may operate."""
        out = []
        for entry in (t.strip() for t in self.api_tokens.split(",")):
            scope, sep, token = entry.partition(":")
            if sep and scope in SCOPES and token:
                out.append((token, scope))
            elif entry:
                out.append((entry, "operate"))
        return out

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[Any] = [init_settings, env_settings]
        path = _settings_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def roots(self) -> list[Path]:
        """The data roots as absolute, symlink-resolved paths."""
        from tools.paths import resolve_roots

        return resolve_roots(self.data_roots.split(":"))


def load_settings(**overrides: Any) -> Settings:
    """Read settings now (environment and file), with explicit ``overrides`` taking precedence."""
    return Settings(**overrides)
