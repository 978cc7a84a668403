"""Run benchmarks: ``python -m bench [NAME ...]`` (default: all, LanceDB at 100k vectors). ``--list`` names them.

With one NAME, further ``--options`` go to that benchmark (e.g. ``python -m bench lancedb --n 1000000``).
"""

from __future__ import annotations

import importlib
import sys

BENCHES = {
    "ingest": "bench.bench_ingest",
    "training": "bench.bench_training",
    "embedding": "bench.bench_embedding",
    "lancedb": "bench.bench_lancedb",
    "gpu": "bench.bench_gpu",
    "scenes": "bench.bench_scenes",
    "astra": "bench.bench_astra",
    "search": "bench.bench_search",
}
QUICK = ["ingest", "training", "embedding", "lancedb", "search"]
#: arguments for each benchmark when several run in one go (`make bench`): minutes, not hours
QUICK_ARGS = {"lancedb": ["--n", "100000"], "search": ["--seconds", "5"]}


def main(argv: list[str]) -> int:
    if "--list" in argv:
        print("\n".join(BENCHES))
        return 0
    first_option = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names = argv[:first_option] or QUICK
    rest = argv[first_option:]
    for name in names:
        if name not in BENCHES:
            print(f"unknown benchmark {name!r}; valid: {', '.join(BENCHES)}", file=sys.stderr)
            return 2
        try:
            module = importlib.import_module(BENCHES[name])
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available yet ({exc})")
            continue
        print(f"== {name}")
        module.main(rest if len(names) == 1 else QUICK_ARGS.get(name, []))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
