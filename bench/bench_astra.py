"""Astra DB bulk upserts through the local Data API stand-in: insertMany chunks, concurrency, retries.

The store (``tools.stores.astra.AstraStore``) sends chunks of at most 100 documents as unordered
``insertMany`` requests, ``concurrency`` of them in flight, and retries 429/5xx with exponential backoff.
This runs it against ``tests/support/astra_standin.py`` (real astrapy over HTTP on 127.0.0.1), so the figures
are the client's and the protocol's cost, not Astra DB's: a real database adds network latency per request,
which is what concurrency hides. Each row: a fresh collection, ``--n`` unit vectors of ``--dim`` dimensions.

    python -m bench astra                       # 20,000 x 512-d at concurrency 1, 4, 8, 16
    python -m bench astra --n 5000 --fail 20    # also: 20 injected HTTP 429 answers, all retried
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.astra_standin import running_standin  # noqa: E402
from tools.stores.factory import index_registry  # noqa: E402

TOKEN = "AstraCS:bench-token"


def vectors(n: int, dim: int) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def one_run(endpoint: str, name: str, vecs: np.ndarray, concurrency: int, chunk: int) -> tuple[float, int]:
    registry = index_registry("astra", endpoint=endpoint, token=TOKEN, keyspace="default_keyspace",
                              environment="other", concurrency=concurrency, chunk_size=chunk, retry_base_delay_s=0.01)
    store = registry.open(name, vecs.shape[1])
    ids = [f"img-{i:08d}" for i in range(len(vecs))]
    meta = [{"label": f"class{i % 16}", "source": "bench"} for i in range(len(vecs))]
    t0 = time.perf_counter()
    written = 0
    for s in range(0, len(ids), 5000):  # the indexing writer upserts batch by batch
        written += store.upsert(ids[s:s + 5000], vecs[s:s + 5000], meta[s:s + 5000])
    seconds = time.perf_counter() - t0
    count = store.count()
    registry.drop(name)
    assert written == len(ids), (written, len(ids))
    return seconds, count


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--chunk", type=int, default=100, help="documents per insertMany (the Data API's limit is 100)")
    ap.add_argument("--fail", type=int, default=0, help="HTTP 429 answers to inject into the last run")
    args = ap.parse_args(argv)
    vecs = vectors(args.n, args.dim)
    print(f"{args.n} x {args.dim}-d vectors, chunks of {args.chunk}, stand-in on 127.0.0.1 (no network latency)")
    print(f"{'concurrency':>12}{'seconds':>10}{'vectors/s':>12}{'count':>9}{'requests':>10}")
    with running_standin(token=TOKEN) as server:
        base = None
        for k, conc in enumerate(args.concurrency):
            if args.fail and k == len(args.concurrency) - 1:
                server.fail_next(args.fail, status=429, commands=("insertMany",))
            before = len(server.commands("insertMany"))
            seconds, count = one_run(server.endpoint, f"bench_{k}", vecs, conc, args.chunk)
            requests = len(server.commands("insertMany")) - before
            rate = args.n / seconds
            base = base or rate
            note = f"  ({args.fail} injected 429s retried)" if args.fail and k == len(args.concurrency) - 1 else ""
            print(f"{conc:>12}{seconds:>10.2f}{rate:>12.0f}{count:>9}{requests:>10}{note}")


if __name__ == "__main__":
    main()
