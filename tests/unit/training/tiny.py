"""Tiny real open_clip models and synthetic image files for the training tests, plus a training CLI.

``python tiny.py --data DIR --out DIR [--resume] ...`` trains the tiny model on the PNGs in DIR; the
resume-after-SIGKILL test runs it in subprocesses so that each run has its own RNG and thread state.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip import factory
from PIL import Image

TINY_NAME = "skyscout-test-tiny"
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
WORDS = [
    "red",
    "green",
    "blue",
    "field",
    "river",
    "roof",
    "road",
    "forest",
    "beach",
    "harbor",
    "farm",
    "lake",
]


def tiny_model(seed: int = 0, *, patch_dropout: float = 0.0) -> tuple[torch.nn.Module, Any, Any, Any]:
    """(model, preprocess_train, preprocess_val, tokenizer) of a ~3M-parameter open_clip CLIP.

    ``patch_dropout`` > 0 makes the forward pass draw from torch's global RNG in training mode.
    """
    factory._MODEL_CONFIGS[TINY_NAME] = TINY_CONFIG
    torch.manual_seed(seed)
    model, pre_train, pre_val = open_clip.create_model_and_transforms(
        TINY_NAME, pretrained=None, force_patch_dropout=patch_dropout or None
    )
    return model, pre_train, pre_val, open_clip.get_tokenizer(TINY_NAME)


def make_images(folder: Path, n: int = 12, size: int = 40, seed: int = 0) -> list[tuple[str, list[str]]]:
    """Write ``n`` random PNGs (some grayscale, to exercise RGB conversion); return (path, captions)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        img = Image.fromarray(pixels)
        if i % 5 == 4:
            img = img.convert("L")
        path = folder / f"img{i:03d}.png"
        img.save(path)
        words = rng.choice(WORDS, size=3, replace=False)
        out.append((str(path), [f"a {w} seen from above" for w in words]))
    return out


def main(argv: list[str] | None = None) -> int:
    from tools.training import TrainConfig, TrainItem, train

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", required=True, help="TrainConfig as JSON")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--pause-at", type=int, default=None, help="after this step: print PAUSED, then sleep")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    # Patch dropout: the resumed run must also restore the global torch RNG state to match.
    model, _, pre_val, tokenizer = tiny_model(seed=0, patch_dropout=0.25)
    from tools.augment import train_transform_like

    config = TrainConfig(**json.loads(args.config))
    items = [TrainItem(p, caps) for p, caps in json.loads((args.data / "items.json").read_text())]

    def on_step(info: Any) -> None:
        print(f"STEP {info.step}", flush=True)
        if args.pause_at is not None and info.step == args.pause_at:
            print("PAUSED", flush=True)
            time.sleep(600)  # the test kills us here

    result = train(
        model,
        tokenizer,
        train_transform_like(pre_val, config.augment),
        items,
        config,
        out_dir=args.out,
        resume=args.resume,
        progress=False,
        on_step=on_step,
    )
    print(f"DONE {result.steps} resumed_from={result.resumed_from_step}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
