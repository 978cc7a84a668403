"""The ``--engine`` options that ``index`` and ``caption`` share: local, or a Ray Data job on a cluster."""

from __future__ import annotations

import argparse

from tools.distributed.ray_common import RayOptions


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine", "where the work runs (ray: the optional extra skyscout[ray])")
    group.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local (default): this process; ray: a Ray Data job with a pool of model actors")
    group.add_argument("--ray-address", default=None,
                       help="Ray cluster to join (auto, ray://HOST:10001, HOST:6379; default: RAY_ADDRESS, "
                            "else a local cluster)")
    group.add_argument("--ray-actors", type=int, default=None,
                       help="model actors (default: one per GPU when they use GPUs, else 1)")
    group.add_argument("--ray-gpus-per-actor", type=float, default=None,
                       help="GPUs each actor reserves (default: 1 when the model runs on CUDA, else 0)")
    group.add_argument("--ray-cpus-per-actor", type=float, default=1.0, help="CPUs each actor reserves (default 1)")


def ray_options(args: argparse.Namespace, batch_size: int) -> RayOptions | None:
    """The Ray options the command line gave (None for the local engine)."""
    if args.engine != "ray":
        return None
    return RayOptions(address=args.ray_address, actors=args.ray_actors, gpus_per_actor=args.ray_gpus_per_actor,
                      cpus_per_actor=args.ray_cpus_per_actor, batch_size=batch_size)
