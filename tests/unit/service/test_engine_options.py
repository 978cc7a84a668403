"""The command-line options of the distributed engines: --engine ray for index and caption, torchrun for train."""

from __future__ import annotations

import sys

import pytest

from service.cli import build_parser
from service.commands.engine_options import ray_options
from tools.distributed.ray_common import RayOptions
from tools.engines import index_stages
from tools.training.launch import Launch, torchrun_command


def test_index_and_caption_take_the_ray_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["index", "--engine", "ray", "--ray-address", "auto", "--ray-actors", "4",
                              "--ray-gpus-per-actor", "0.5", "--batch-size", "128", "--preprocess", "device"])
    assert ray_options(args, args.batch_size) == RayOptions(address="auto", actors=4, gpus_per_actor=0.5,
                                                            batch_size=128)
    assert args.preprocess == "device"
    local = parser.parse_args(["caption", "--captioner", "template"])
    assert local.engine == "local" and ray_options(local, 32) is None
    assert parser.parse_args(["caption", "--engine", "ray"]).engine == "ray"


def test_ray_options_pick_gpus_from_the_device() -> None:
    assert RayOptions().gpus("cuda") == 1.0 and RayOptions().gpus("cpu") == 0.0
    assert RayOptions(gpus_per_actor=0.25).gpus("cuda") == 0.25


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        index_stages(engine="spark", model=None, transform=None, dim=4, device="cpu", batch_size=8, num_workers=0)


def test_local_engine_on_cpu_keeps_the_default_stages() -> None:
    # (None, None): tools.embedding.build_index keeps its host path, unchanged
    assert index_stages(engine="local", model=None, transform=None, dim=4, device="cpu", batch_size=8,
                        num_workers=0) == (None, None)


def test_train_launches_torchrun_with_the_same_command() -> None:
    argv = ["train", "--nproc-per-node", "2", "--max-steps", "3", "--json"]
    one = torchrun_command(Launch(2), argv)
    assert one[:5] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone"]
    assert one[5:] == ["-m", "service.cli", "train", "--max-steps", "3", "--json"]
    many = torchrun_command(Launch(8, nnodes=4, rdzv_endpoint="node0:29400", rdzv_id="job7"), argv)
    assert "--nnodes=4" in many and "--rdzv-endpoint=node0:29400" in many and "--rdzv-id=job7" in many
    with pytest.raises(ValueError, match="rdzv-endpoint"):
        torchrun_command(Launch(8, nnodes=2), argv)
    args = build_parser().parse_args(["train", "--nproc-per-node", "2", "--nnodes", "1"])
    assert args.nproc_per_node == 2 and args.nnodes == 1
