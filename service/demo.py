"""The demo, SkyScout's main job on the embedded defaults: ``python -m service.demo`` (``make demo``).

It works offline on the sample bundled in ``data/ucm_sample`` (320 UC Merced tiles with human captions).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from service.cli import main as cli_main

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT / "data" / "ucm_sample"


def _step(title: str, argv: list[str]) -> None:
    print(f"\n=== {title}\n$ skyscout {' '.join(argv)}", flush=True)
    code = cli_main(argv)
    if code != 0:
        raise SystemExit(f"demo step failed ({title}), exit code {code}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", default=str(PROJECT / ".skyscout" / "demo"),
                    help="SKYSCOUT_HOME for the demo (default: .skyscout/demo in the project)")
    ap.add_argument("--fresh", action="store_true", help="start from an empty catalog")
    args = ap.parse_args(argv)
    home = Path(args.home)
    if args.fresh and home.exists():
        import shutil

        shutil.rmtree(home)
    os.environ["SKYSCOUT_HOME"] = str(home)
    roots = os.environ.get("SKYSCOUT_DATA_ROOTS", "")
    os.environ["SKYSCOUT_DATA_ROOTS"] = ":".join(p for p in (str(PROJECT / "data"), roots) if p)
    started = time.perf_counter()
    print(f"SkyScout demo: home {home}, sample {SAMPLE.relative_to(PROJECT)}")
    _step("Ingest the bundled sample (train + val manifests with human captions)",
          ["ingest", "--manifest", str(SAMPLE / "train.jsonl"), "--no-progress"])
    _step("", ["ingest", "--manifest", str(SAMPLE / "val.jsonl"), "--no-progress"])
    _step("Caption images that have no caption yet (offline template captioner)",
          ["caption", "--captioner", "template", "--only-uncaptioned", "--no-progress"])
    _step("Record a dataset version (the manifest's train/val split)",
          ["dataset", "create", "--name", "ucm-sample", "--use-manifest-split", "--val", "0", "--test", "0"])
    _step("Status", ["status"])
    print(f"\nDemo finished in {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
