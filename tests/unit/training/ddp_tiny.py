"""Train skyscout-tiny on the bundled UC Merced sample: one process, or one rank of a torchrun job.

``python ddp_tiny.py --out DIR --config JSON [--resume] [--pause-at STEP]``; under
``python -m torch.distributed.run --nproc-per-node 2 ddp_tiny.py ...`` each process is one rank (gloo).
Rank 0 prints ``STEP n`` after each step and ``DONE steps resumed_from=...`` at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "ucm_sample"


def items() -> list[Any]:
    from tools.training import TrainItem

    rows = [json.loads(line) for line in (SAMPLE / "train.jsonl").read_text().splitlines() if line.strip()]
    return [TrainItem(str(SAMPLE / r["image"]), list(r["captions"])) for r in rows]


def main(argv: list[str] | None = None) -> int:
    from tools.modelops import train_config
    from tools.models import load_model
    from tools.training import train
    from tools.training.distributed import from_env

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", required=True, help="overrides of skyscout-tiny's recipe, as JSON")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--pause-at", type=int, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    dist = from_env("cpu")
    loaded = load_model("skyscout-tiny", cache_dir=Path(tempfile.gettempdir()) / "skyscout-ddp-test-cache")
    config = train_config(loaded.arch, json.loads(args.config))
    main_rank = dist is None or dist.is_main

    def on_step(info: Any) -> None:
        if main_rank:
            print(f"STEP {info.step} {info.loss!r}", flush=True)
        if args.pause_at is not None and info.step == args.pause_at:
            if main_rank:
                print("PAUSED", flush=True)
            time.sleep(600)  # the test kills the job here

    result = train(loaded.model, loaded.tokenizer, None, items(), config, out_dir=args.out, resume=args.resume,
                   progress=False, on_step=on_step, dist=dist)
    if main_rank:
        print(f"DONE {result.steps} resumed_from={result.resumed_from_step}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
