"""``skyscout train --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT]``: data-parallel training.

The command starts torchrun itself (:mod:`tools.training.launch`), which runs the same ``skyscout train``
command line in each worker; inside the workers these options are gone and ``WORLD_SIZE`` is set.
"""

from __future__ import annotations

import argparse
import os
import sys

from tools.training.launch import Launch, run_torchrun


def add_launch_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data-parallel training (torchrun)",
                                      "every rank takes a slice of each batch; the batch size stays the global one")
    group.add_argument("--nproc-per-node", type=int, default=None, metavar="N",
                       help="worker processes on this node (one per GPU; CPU workers use gloo)")
    group.add_argument("--nnodes", type=int, default=1, metavar="M", help="nodes in the job (default 1)")
    group.add_argument("--rdzv-endpoint", default=None, metavar="HOST:PORT",
                       help="rendezvous of a multi-node job (the same on every node)")
    group.add_argument("--rdzv-id", default="skyscout-train", help="job id of the rendezvous (default skyscout-train)")


def in_torchrun() -> bool:
    """Whether this process is a worker of a torchrun job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or "TORCHELASTIC_RUN_ID" in os.environ


def is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def launch_torchrun(args: argparse.Namespace) -> int:
    """Run this command under torchrun; its exit code (the command line must be this process's own)."""
    argv = sys.argv[1:]
    if "train" not in argv:
        raise ValueError("--nproc-per-node starts torchrun from the command line: run `skyscout train ...`")
    return run_torchrun(Launch(args.nproc_per_node, args.nnodes, args.rdzv_endpoint, args.rdzv_id), argv)
