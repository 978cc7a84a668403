"""Joining a Ray cluster and the options every Ray Data job of SkyScout shares."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

#: memory each decoding task reserves (its worker: torch and a batch of decoded tiles, ~540 MiB measured); a
#: reservation the model actors do not share, so Ray keeps decoding in CPU tasks of its own instead of fusing
#: it into the actors
DECODE_MEMORY = 768 * 2**20


class RayUnavailableError(RuntimeError):
    """Ray is not installed: the ``ray`` engine needs the optional extra."""


def require_ray() -> Any:
    """The ``ray`` module, or :class:`RayUnavailableError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is what the engine uses
    except ImportError as exc:
        raise RayUnavailableError(
            "the ray engine needs Ray Data: pip install 'skyscout[ray]' (or use --engine local)"
        ) from exc
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where the job runs and how wide.

    ``address``: a cluster to join (``auto``, ``ray://host:10001``, ``host:6379``); None joins the one
    ``RAY_ADDRESS`` names, else starts a local one. ``actors``: the size of the model actor pool (None: one
    per GPU of the cluster when actors take GPUs, else 1). ``gpus_per_actor``: None means 1 when the model
    runs on CUDA, else 0. ``cpus_per_actor``: CPUs each actor reserves. ``batch_size``: images per model call.
    ``num_cpus``: the size of a local cluster started here (None: every core).
    """

    address: str | None = None
    actors: int | None = None
    gpus_per_actor: float | None = None
    cpus_per_actor: float = 1.0
    batch_size: int = 64
    num_cpus: int | None = None

    def gpus(self, device: str) -> float:
        if self.gpus_per_actor is not None:
            return self.gpus_per_actor
        return 1.0 if str(device).startswith("cuda") else 0.0

    def pool_size(self, ray: Any, device: str) -> int:
        if self.actors is not None:
            return max(1, self.actors)
        gpus = self.gpus(device)
        if gpus > 0:
            return max(1, int(ray.cluster_resources().get("GPU", 0) // gpus))
        return 1


def connect(options: RayOptions, *, progress: bool = False) -> Any:
    """Join (or start) the cluster once per process; returns the ``ray`` module."""
    ray = require_ray()
    if not ray.is_initialized():
        address = options.address or os.environ.get("RAY_ADDRESS") or None
        ray.init(address=address, num_cpus=None if address else options.num_cpus, include_dashboard=False,
                 log_to_driver=False, logging_level="warning", ignore_reinit_error=True)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.print_on_execution_start = False
    return ray


def actor_pool(ray: Any, options: RayOptions, device: str) -> dict[str, Any]:
    """``map_batches`` keywords of the model actors: pool size, CPUs and GPUs per actor, batch size."""
    from ray.data import ActorPoolStrategy

    return {"compute": ActorPoolStrategy(size=options.pool_size(ray, device)), "num_cpus": options.cpus_per_actor,
            "num_gpus": options.gpus(device), "batch_size": options.batch_size}


def blocks(n: int, batch_size: int) -> int:
    """How many blocks a list of ``n`` references becomes: about one model batch each."""
    return max(1, -(-n // max(1, batch_size)))


__all__ = ["DECODE_MEMORY", "RayOptions", "RayUnavailableError", "actor_pool", "blocks", "connect", "require_ray"]
