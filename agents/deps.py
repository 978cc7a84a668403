"""What every agent is given (:class:`AgentDeps`) and the records they exchange (plan steps and results).

Agents never build their own catalog, model, captioner or store: the caller (``service/context.py`` in the
application, the tests directly) builds one :class:`AgentDeps` and hands it to every agent factory. Heavy
things are loaded on first use and kept for the life of the process by :class:`ModelCache`.

The step and result records are plain ``TypedDict``s of ids, paths, numbers and short texts, because
they travel in the LangGraph state and are checkpointed: never pixels, vectors or model objects.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NotRequired

from typing_extensions import TypedDict

from tools.catalog import Catalog
from tools.stores.base import IndexRegistry
from tools.training import TrainConfig

if TYPE_CHECKING:
    from agents.planner import PlannerPolicy
    from tools.captioning.base import Captioner
    from tools.models import LoadedModel

AgentName = Literal["data", "caption", "training", "embedding", "query", "planner"]
AGENT_NAMES: tuple[str, ...] = ("data", "caption", "training", "embedding", "query", "planner")
StepStatus = Literal["ok", "failed", "skipped"]


class Step(TypedDict):
    """One unit of work in a plan: which agent, which of its actions (a tool name), with what arguments.

    ``args`` may hold references resolved when the step runs: ``"$candidate"`` (the model version the
    latest training step produced) and ``"$dataset"`` (the dataset version the latest dataset step made).
    ``depends_on`` names the step whose success this one needs; when that step failed or was skipped,
    this one is skipped too.
    """

    id: str
    agent: AgentName
    action: str
    args: dict[str, Any]
    text: str  # the instruction, as the user (or the planner) put it
    origin: Literal["user", "planner"]
    reason: str  # why the step is in the plan
    depends_on: NotRequired[str | None]
    decision_id: NotRequired[int | None]  # the catalog decision that put it there
    approved: NotRequired[bool]  # an expensive step the user approved
    checked: NotRequired[bool]  # the supervisor's pre-step checks already ran
    error: NotRequired[str]  # a step that cannot run as given (e.g. ingest without a path)


class StepResult(TypedDict):
    """What running (or skipping) one step gave: a status, a one-line summary and the data it produced."""

    step: str  # Step.id
    agent: str
    action: str
    status: StepStatus
    summary: str
    data: dict[str, Any]


class ModelCache:
    """Loads each model spec once per process and keeps the most recent ``max_models`` (thread-safe).

    ``loader`` is :func:`tools.models.load_model` unless a caller injects another; keys are load specs
    (``skyscout-tiny``, ``path:/.../model.pt``), so a model version and its checkpoint path share one entry.
    Captioners are cached the same way, by name.
    """

    def __init__(
        self,
        *,
        cache_dir: Path,
        device: str = "cpu",
        max_models: int = 2,
        loader: Callable[..., LoadedModel] | None = None,
        make_captioner: Callable[[str], Captioner] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.device = device
        self.max_models = max(1, max_models)
        self._loader = loader
        self._make_captioner = make_captioner
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._captioners: dict[str, Captioner] = {}
        self._lock = threading.Lock()

    def model(self, load_spec: str) -> LoadedModel:
        """The loaded model for ``load_spec`` (loaded now if it is not cached)."""
        with self._lock:
            if load_spec in self._models:
                self._models.move_to_end(load_spec)
                return self._models[load_spec]
            loader = self._loader
            if loader is None:
                from tools.models import load_model

                loader = load_model
            loaded = loader(load_spec, cache_dir=self.cache_dir, device=self.device, progress=False)
            self._models[load_spec] = loaded
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return loaded

    def captioner(self, name: str) -> Captioner:
        """The captioner called ``name`` (built now if it is not cached)."""
        with self._lock:
            if name not in self._captioners:
                if self._make_captioner is not None:
                    self._captioners[name] = self._make_captioner(name)
                else:
                    from tools.captioning.factory import create_captioner

                    self._captioners[name] = create_captioner(name, device=self.device)
            return self._captioners[name]

    def forget(self, load_spec: str) -> None:
        """Drop one cached model (e.g. after its checkpoint file was replaced)."""
        with self._lock:
            self._models.pop(load_spec, None)

    def __contains__(self, load_spec: object) -> bool:
        return load_spec in self._models


def cpu_train_defaults() -> TrainConfig:
    """Fine-tuning defaults sized for the offline CPU path: ``skyscout-tiny``'s recipe (its image tower
    against the frozen pretrained MiniLM text tower), capped so that one improvement round stays short."""
    from tools.modelops import train_config
    from tools.models import TINY_ARCH

    # The full recipe (40 epochs) takes UC Merced zero-shot top-1 from 0.03 to 0.71 in about 6 minutes; a
    # planner round stops at 300 steps (about 4 UCM epochs at batch 16, under a minute) and the planner
    # decides from the evaluation whether another round is worth it.
    return train_config(TINY_ARCH, {"epochs": 10, "max_steps": 300, "checkpoint_every": 50, "num_workers": 2,
                                    "log_every": 5})


def _default_policy() -> PlannerPolicy:
    from agents.planner import PlannerPolicy

    return PlannerPolicy()


@dataclass
class AgentDeps:
    """Everything the agents use, built once by the caller and shared.

    Required:
        catalog: the SkyScout catalog.
        allowed_roots: directories images and manifests may be read from (resolved, absolute).
        models_dir: where fine-tuning runs and candidate checkpoints are written.
        cache_dir: the model cache (downloaded weights, generated configs).
        open_registry: store kind (``lancedb`` / ``astra``) -> the :class:`IndexRegistry` of that backend,
            e.g. ``lambda kind: index_registry(kind, path=home / "indexes")``.

    Optional:
        store_kind: which vector store backend holds the indexes (default ``lancedb``).
        device: torch device for models (``auto`` picks CUDA when present).
        captioner: the captioner used when a request names none (``template`` offline).
        train_defaults: the fine-tuning configuration when a request gives no hyper-parameters.
        policy: the planner's explicit policy (:class:`agents.planner.PlannerPolicy`).
        workers: image-decoding threads for ingestion and captioning.
        loader_workers: DataLoader worker processes for indexing (0: decode in-process).
        batch_size: images per batch when embedding or evaluating.
        progress: show progress bars (off inside the agents by default).
        models: the per-process :class:`ModelCache` (built from ``cache_dir``/``device`` when omitted).
    """

    catalog: Catalog
    allowed_roots: list[Path]
    models_dir: Path
    cache_dir: Path
    open_registry: Callable[[str], IndexRegistry]
    store_kind: str = "lancedb"
    device: str = "auto"
    captioner: str = "template"
    train_defaults: TrainConfig = field(default_factory=cpu_train_defaults)
    policy: PlannerPolicy = field(default_factory=_default_policy)
    workers: int = 2
    loader_workers: int = 0
    batch_size: int = 64
    progress: bool = False
    models: ModelCache | None = None
    _registries: dict[str, IndexRegistry] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        from tools.modelops import pick_device

        self.allowed_roots = [Path(r) for r in self.allowed_roots]
        self.models_dir = Path(self.models_dir)
        self.cache_dir = Path(self.cache_dir)
        self.device = pick_device(self.device)
        if self.models is None:
            self.models = ModelCache(cache_dir=self.cache_dir, device=self.device)

    @property
    def model_cache(self) -> ModelCache:
        assert self.models is not None  # set in __post_init__
        return self.models

    def registry(self) -> IndexRegistry:
        """The index registry of ``store_kind``, opened once."""
        if self.store_kind not in self._registries:
            self._registries[self.store_kind] = self.open_registry(self.store_kind)
        return self._registries[self.store_kind]

    def active_model_key(self) -> str:
        """The active model version id, or the base model spec before any promotion."""
        from tools.modelops import DEFAULT_BASE_MODEL

        return self.catalog.get_alias("active_model") or DEFAULT_BASE_MODEL

    def load(self, spec: str | None) -> tuple[str, LoadedModel]:
        """Resolve ``spec`` (``active``, ``mv-...``, a preset, ``path:...``) and load it through the cache.

        Returns the key evaluations and indexes are recorded under (the version id, else the load spec)
        and the loaded model.
        """
        from tools.modelops import resolve_model

        resolved = resolve_model(self.catalog, spec)
        loaded = self.model_cache.model(resolved.load_spec)
        return resolved.version_id or resolved.load_spec, loaded

    def text_encoder(self, spec: str | None) -> Callable[[list[str]], Any]:
        """A text encoder (texts -> unit rows) for search, taken from the loaded model ``spec``."""
        from tools.evaluation import text_encoder

        _, loaded = self.load(spec)
        return text_encoder(loaded.model, loaded.tokenizer, device=self.device)


__all__ = ["AGENT_NAMES", "AgentDeps", "AgentName", "ModelCache", "Step", "StepResult", "cpu_train_defaults"]
