"""Index use cases: which index answers searches, whether it is up to date, build and drop indexes.

One rule for activation: only the active model's index ever becomes the active index (an index built for
a candidate waits for its promotion), and only once it is complete (blue-green). An index is dropped only
when it is not the active one and the active one is complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.config import SMALL_MACHINE_CORES
from app.context import AppContext
from tools.catalog import Catalog
from tools.distributed.ray_common import RayOptions
from tools.indexes import NoIndexError, active_index, alias_name
from tools.modelref import active_model_key
from tools.stores.base import VectorStore, index_name_for_model

if TYPE_CHECKING:
    from tools.embedding import IndexReport


@dataclass(frozen=True)
class ActiveIndex:
    """The open index searches use, its catalog record, and the key of the model that built it."""

    store: VectorStore
    name: str
    model: str
    dim: int


def open_active_index(ctx: AppContext, store: str | None = None) -> ActiveIndex:
    """The complete index the ``active_index:<store>`` alias names (raises :class:`NoIndexError`)."""
    kind = ctx.store_kind(store)
    record = active_index(ctx.catalog, kind)
    opened = ctx.open_index(record["name"], int(record["dim"]), kind)
    return ActiveIndex(opened, str(record["name"]), str(record["model"]), int(record["dim"]))


def index_state(catalog: Catalog, store_kind: str) -> dict[str, Any]:
    """Where the active model's index stands: its name, whether it is complete and active, what is missing."""
    active = active_model_key(catalog)
    wanted = index_name_for_model(active)
    info = catalog.get_index(wanted)
    alias_target = catalog.get_alias(alias_name(store_kind))
    images = catalog.count_images(status="ok")
    complete = bool(info and info["state"] == "complete" and info["store"] == store_kind)
    count = int(info["count"]) if info else 0
    missing = max(0, images - count) if complete else images
    reasons: list[str] = []
    if not complete:
        state = f" (index {wanted} is {info['state']})" if info else ""
        reasons.append(f"the active model {active} has no complete {store_kind} index{state}")
    if alias_target != wanted:
        target_model = (catalog.get_index(alias_target) or {}).get("model") if alias_target else None
        reasons.append(f"the active index alias points at {alias_target} (model {target_model})"
                       if alias_target else "no index is active yet")
    if complete and missing:
        reasons.append(f"{missing} accepted images are not in index {wanted}")
    if images == 0:
        reasons = []  # nothing to index yet
    return {"model": active, "index": wanted, "alias": alias_target, "complete": complete, "count": count,
            "images": images, "unindexed": missing, "stale": bool(reasons), "reasons": reasons}


def default_decode_workers() -> int:
    """Few cores: decode in a thread beside the model (measured faster here); many: worker processes."""
    cores = os.cpu_count() or 1
    return 0 if cores <= SMALL_MACHINE_CORES else min(8, cores // 2)


def build_index(ctx: AppContext, *, model: str | None = "active", store: str | None = None,
                batch_size: int | None = None, num_workers: int | None = None, activate: bool = True,
                progress: bool = False, on_progress: Callable[[int, int], None] | None = None,
                engine: str = "local", preprocess: str = "auto", ray: RayOptions | None = None) -> IndexReport:
    """Embed every accepted image with ``model`` into its index; make it active when complete, if the
    model is the active one (and ``activate``).

    ``engine="ray"`` runs the embedding as a Ray Data job (``ray`` says where and how wide); ``preprocess``
    chooses where images are resized and normalised (:mod:`tools.engines`)."""
    from tools.embedding import build_index as embed_into_index
    from tools.engines import index_stages

    ref, loaded = ctx.load_model(model)
    workers = num_workers if num_workers is not None else ctx.config.loader_workers
    size = batch_size or ctx.config.batch_size
    make_reader, embedder = index_stages(
        engine=engine, model=loaded.model, transform=loaded.preprocess_val, dim=loaded.embed_dim, device=ctx.device,
        batch_size=size, num_workers=default_decode_workers() if workers is None else workers,
        preprocess=preprocess, ray=ray, progress=progress)
    report = embed_into_index(
        ctx.catalog, ctx.registry(store), model_key=ref.key, model=loaded.model, transform=loaded.preprocess_val,
        dim=loaded.embed_dim, device=ctx.device, batch_size=batch_size or ctx.config.batch_size,
        num_workers=default_decode_workers() if workers is None else workers,
        activate=activate and ref.key == active_model_key(ctx.catalog), progress=progress, on_progress=on_progress,
        make_reader=make_reader, embedder=embedder,
    )
    ctx.forget_index(report.index, store)
    return report


def drop_index(ctx: AppContext, name: str, store: str | None = None) -> bool:
    """Delete an index that is not active, and only while the active index is complete."""
    catalog, kind = ctx.catalog, ctx.store_kind(store)
    alias_target = catalog.get_alias(alias_name(kind))
    if name == alias_target:
        raise PermissionError(f"index {name} is the active index; build and activate its replacement first")
    active_info = catalog.get_index(alias_target) if alias_target else None
    if alias_target and (active_info is None or active_info["state"] != "complete"):
        raise PermissionError(f"the active index {alias_target} is not complete; no index is dropped until it is")
    info = catalog.get_index(name)
    existed = ctx.registry(kind).drop(name)
    ctx.forget_index(name, kind)
    if info is not None:
        catalog.upsert_index(name, model=info["model"], store=info["store"], dim=info["dim"], state="dropped")
    if not existed and info is None:
        raise LookupError(f"no index {name!r}; see `skyscout status` for the existing ones")
    return existed


__all__ = ["ActiveIndex", "NoIndexError", "build_index", "default_decode_workers", "drop_index", "index_state",
           "open_active_index"]
