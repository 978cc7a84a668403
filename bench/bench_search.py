"""Search under load: HTTP (``skyscout serve``, k=10 text queries) against calling ``app.search.search`` directly.

Both run in the same invocation over the same home: 1, 4 and 16 concurrent clients, each sending its next
query as soon as the last one is answered, for ``--seconds`` per run. Two query sets: ``repeated`` (32 common
phrases, so the query-vector cache answers most of them) and ``distinct`` (every query a new text: what the
text tower costs). Then, one search at a time, where the time of a search goes: text encoding (cached and not),
the vector store, and describing the hits from the catalog.

    python -m bench search                      # builds .skyscout/bench-search once (UCM + EuroSAT val, or the sample)
    python -m bench search --clients 1 4 16 --seconds 10
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "data"
PHRASES = [
    "beach", "harbor with boats", "dense forest", "river", "parking lot", "tennis court", "airplane", "highway",
    "farmland", "storage tanks", "baseball diamond", "mobile home park", "overpass", "runway", "intersection",
    "sparse residential area", "dense residential area", "buildings", "golf course", "sea or lake", "industrial area",
    "pasture", "permanent crops", "annual crops", "herbaceous vegetation", "chaparral", "freeway", "medium residential",
    "green trees", "white roofs", "sand and water", "a bridge over a river",
]


def build_home(home: Path) -> None:
    """Ingest the data and index it with skyscout-tiny (once; the home is reused afterwards)."""
    from app.indexing import build_index
    from service.context import Services
    from service.settings import Settings
    from tools.ingest import ingest_manifest

    settings = Settings(home=home, data_roots=f"{PROJECT / 'data'}:{SHARED}")
    ctx = Services(settings).app
    manifests = [SHARED / "ucm_captions" / "train.jsonl", SHARED / "eurosat" / "val.jsonl"]
    if not manifests[0].is_file():
        manifests = [PROJECT / "data" / "ucm_sample" / "train.jsonl", PROJECT / "data" / "ucm_sample" / "val.jsonl"]
    for manifest in manifests:
        ingest_manifest(ctx.catalog, manifest, allowed_roots=settings.roots, progress=False)
    build_index(ctx, model="skyscout-tiny", num_workers=0, progress=True)


def queries(kind: str) -> Callable[[int], str]:
    counter = itertools.count()
    if kind == "repeated":
        return lambda _: PHRASES[next(counter) % len(PHRASES)]
    return lambda client: f"{PHRASES[next(counter) % len(PHRASES)]} {client}-{next(counter)}"


def load(call: Callable[[str], None], next_query: Callable[[int], str], clients: int, seconds: float
         ) -> tuple[int, int, list[float], float]:
    """Run ``clients`` threads calling ``call`` back to back; (ok, failed, latencies in s, wall time)."""
    latencies: list[float] = []
    failed = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(n: int) -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                call(next_query(n))
            except Exception:  # noqa: BLE001 - counted
                with lock:
                    failed[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies), failed[0], latencies, time.perf_counter() - started


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else (values[0] if values else 0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    env = {**os.environ, "SKYSCOUT_HOME": str(home), "SKYSCOUT_DATA_ROOTS": f"{PROJECT / 'data'}:{SHARED}",
           "SKYSCOUT_API_TOKENS": "read:bench-token", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                            cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("skyscout serve did not start")


def breakdown(home: Path, n: int = 20) -> dict[str, float]:
    """Milliseconds per search spent in each part, one search at a time (median of ``n``)."""
    from app.indexing import open_active_index
    from app.search import search
    from service.context import Services
    from service.settings import Settings
    from tools.search import Query, text_vector

    ctx = Services(Settings(home=home, data_roots=f"{PROJECT / 'data'}:{SHARED}")).app
    search(ctx, Query(texts=["warm up"]))
    active = open_active_index(ctx)
    ref, _ = ctx.load_model(active.model)
    encode = ctx.models.query_encoder(ref.load_spec)

    def median_ms(f: Callable[[int], object]) -> float:
        times = []
        for i in range(n):
            t = time.perf_counter()
            f(i)
            times.append(time.perf_counter() - t)
        return round(statistics.median(times) * 1000, 2)

    vector = text_vector(encode, "beach")
    hits = active.store.search(vector, k=10)
    return {
        "text encoding, new text (8 prompts)": median_ms(lambda i: text_vector(encode, f"beach {i} {time.time()}")),
        "text encoding, cached": median_ms(lambda i: text_vector(encode, "beach")),
        "vector store (k=10)": median_ms(lambda i: active.store.search(vector, k=10)),
        # what tools.search.search does per search: one captions query, then each hit's record and labels
        "catalog reads for 10 hits": median_ms(lambda i: (ctx.catalog.captions_for([h.id for h in hits]),
                                                          [ctx.catalog.get_image(h.id) for h in hits])),
        "whole search, cached text": median_ms(lambda i: search(ctx, Query(texts=["beach"], k=10))),
        "whole search, new text": median_ms(lambda i: search(ctx, Query(texts=[f"beach {i} {time.time()}"], k=10))),
    }


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default=str(PROJECT / ".skyscout" / "bench-search"))
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--queries", nargs="+", default=["repeated", "distinct"], choices=("repeated", "distinct"))
    args = ap.parse_args(argv)
    home = Path(args.home)
    if not (home / "catalog.db").is_file():
        print(f"building {home} (once)", flush=True)
        build_home(home)
    import httpx
    import torch

    from app.search import search
    from service.context import Services
    from service.settings import Settings
    from tools.search import Query

    torch.set_num_threads(Settings().serve_threads)  # the same as `skyscout serve`, so both sides compare alike
    ctx = Services(Settings(home=home, data_roots=f"{PROJECT / 'data'}:{SHARED}")).app
    print(f"home {home}: {ctx.catalog.count_images()} images; {os.cpu_count()} cores; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    search(ctx, Query(texts=["warm up"]))
    proc, url = start_server(home)
    rows = []
    try:
        local = threading.local()

        def over_http(text: str) -> None:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(base_url=url, timeout=60,
                                                     headers={"Authorization": "Bearer bench-token"})
            r = client.post("/v1/search", json={"text": text, "k": 10})
            if r.status_code != 200:
                raise RuntimeError(r.text)

        over_http("warm up")
        for kind in args.queries:
            for clients in args.clients:
                for mode, call in (("direct", lambda t: search(ctx, Query(texts=[t], k=10))), ("http", over_http)):
                    ok, failed, lat, wall = load(call, queries(kind), clients, args.seconds)
                    rows.append((kind, clients, mode, ok / wall, _pct(lat, 50) * 1000, _pct(lat, 95) * 1000, failed))
                    print(f"{kind:9} {clients:3} clients {mode:6} {ok / wall:7.1f} req/s  p50 {rows[-1][4]:7.1f} ms  "
                          f"p95 {rows[-1][5]:7.1f} ms  failed {failed}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print("\n| queries | clients | direct req/s | HTTP req/s | HTTP / direct | direct p50 / p95 ms | "
          "HTTP p50 / p95 ms | failed |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, clients in itertools.product(args.queries, args.clients):
        d = next(r for r in rows if r[:3] == (kind, clients, "direct"))
        h = next(r for r in rows if r[:3] == (kind, clients, "http"))
        print(f"| {kind} | {clients} | {d[3]:.1f} | {h[3]:.1f} | {h[3] / d[3]:.2f} | {d[4]:.0f} / {d[5]:.0f} | "
              f"{h[4]:.0f} / {h[5]:.0f} | {d[6] + h[6]} |")
    print("\nwhere the time of one search goes (median ms, one at a time):")
    for part, ms in breakdown(home).items():
        print(f"  {part:40} {ms:8.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
