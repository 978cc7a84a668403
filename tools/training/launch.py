"""``skyscout train --nproc-per-node N``: start torchrun with the same command line in each worker process.

torchrun (``python -m torch.distributed.run``) starts ``N`` workers on this node, each running
``python -m service.cli train ...`` without the launcher's own options; the workers join one process group
(:mod:`tools.training.distributed`). One node: ``--standalone`` (a local rendezvous on a free port). Several
nodes: the same command on each node with ``--nnodes M --rdzv-endpoint HOST:PORT`` (the c10d rendezvous on
HOST, usually the first node), and a shared ``SKYSCOUT_HOME`` so every rank reads one catalog and rank 0's
checkpoints are where the others resume from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

#: the launcher's options, removed from the command line each worker runs (flag -> takes a value)
LAUNCH_OPTIONS = {"--nproc-per-node": True, "--nnodes": True, "--rdzv-endpoint": True, "--rdzv-id": True}


@dataclass(frozen=True)
class Launch:
    """How many workers, on how many nodes, meeting where."""

    nproc_per_node: int
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    rdzv_id: str = "skyscout-train"


def worker_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` without the launcher's options (``--opt VALUE`` and ``--opt=VALUE`` forms)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCH_OPTIONS:
            skip = LAUNCH_OPTIONS[name] and "=" not in arg
            continue
        out.append(arg)
    return out


def torchrun_command(launch: Launch, argv: Sequence[str]) -> list[str]:
    """The torchrun command line that runs ``skyscout`` with ``argv`` (minus the launcher's options)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={launch.nproc_per_node}"]
    if launch.nnodes == 1 and launch.rdzv_endpoint is None:
        cmd.append("--standalone")
    else:
        if launch.rdzv_endpoint is None:
            raise ValueError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")
        cmd += [f"--nnodes={launch.nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={launch.rdzv_endpoint}",
                f"--rdzv-id={launch.rdzv_id}"]
    return [*cmd, "-m", "service.cli", *worker_argv(argv)]


def run_torchrun(launch: Launch, argv: Sequence[str]) -> int:
    """Run the job and return torchrun's exit code (non-zero when any worker failed)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, launch.nproc_per_node))))
    return subprocess.call(torchrun_command(launch, argv), env=env)


__all__ = ["LAUNCH_OPTIONS", "Launch", "run_torchrun", "torchrun_command", "worker_argv"]
