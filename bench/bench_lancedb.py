"""Benchmark the LanceDB store: upsert throughput, index build, disk size, flat vs ANN latency and recall.

Data: N synthetic L2-normalised vectors drawn from a Gaussian mixture (``--centres`` clusters of uneven
size, not uniform noise, so that nearest neighbours are meaningful and the IVF partitions matter).
Queries are fresh draws from the same mixture. The reference is exact top-k by numpy brute force in the
same run; every LanceDB figure is compared with it (recall@k, latency ratio).

    .venv/bin/python -m bench.bench_lancedb                 # N = 1,000,000, 512-d (several minutes)
    .venv/bin/python -m bench.bench_lancedb --n 20000       # smoke run

Target (the issue): median single-query latency <= 20 ms at recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np

from tools.stores.lance import ANN_INDEX_TYPES, LanceIndexes, LanceStore

TARGET_MEDIAN_MS = 20.0
TARGET_RECALL = 0.95
#: refine_factor values tried per index type (PQ's coarse codes need deep re-ranking, SQ's do not)
DEFAULT_REFINE_GRID: dict[str, list[int]] = {
    "IVF_SQ": [0, 2, 10],
    "IVF_PQ": [10, 20, 40],
    "IVF_HNSW_SQ": [0, 5],
}


def mixture(
    n: int, dim: int, centres: int, *, sigma: float, seed: int, spread: float = 0.5, chunk: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors from a Gaussian mixture (isotropic clusters of uneven size) and their cluster ids.

    With the default sigma, a point's cosine to another of its cluster is about 0.55 and to other
    clusters about 0: neighbours are well defined across clusters but nearly tied within one, which
    makes recall@10 a demanding test for quantized indexes (they must rank inside a cluster).
    """
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((centres, dim)).astype(np.float32)
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    weights = rng.lognormal(0.0, spread, centres)  # uneven sizes: spread 0.5 -> largest ~5x the median
    weights /= weights.sum()
    labels = rng.choice(centres, size=n, p=weights).astype(np.int32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        x = mu[labels[start:stop]] + sigma * rng.standard_normal((stop - start, dim), dtype=np.float32)
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out, labels


def exact_topk(x: np.ndarray, q: np.ndarray, k: int, chunk: int = 200_000) -> np.ndarray:
    """Indices of the exact top-k rows of ``x`` by dot product with each query (numpy brute force)."""
    best_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
    best_i = np.zeros((q.shape[0], k), dtype=np.int64)
    for start in range(0, x.shape[0], chunk):
        s = q @ x[start : start + chunk].T
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    return best_i


def numpy_single_query(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    s = x @ q
    part = np.argpartition(-s, k - 1)[:k]
    return part[np.argsort(-s[part])]


def p95(values: Sequence[float]) -> float:
    return float(np.percentile(values, 95))


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def vector_index_bytes(store: LanceStore) -> int:
    """Size of the vector index files, as LanceDB reports it."""
    return sum(int(i.size_bytes or 0) for i in store._table.list_indices() if "vector" in list(i.columns))


def human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024:
            return f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def image_ids(n: int) -> list[str]:
    return [hashlib.sha256(i.to_bytes(8, "little")).hexdigest() for i in range(n)]


def measure_search(
    store: LanceStore, queries: np.ndarray, truth_ids: list[set[str]], k: int, **params: object
) -> tuple[list[float], float]:
    for q in queries[:5]:  # warm caches
        store.search(q, k, **params)  # type: ignore[arg-type]
    lat, recalls = [], []
    for q, truth in zip(queries, truth_ids, strict=True):
        t0 = time.perf_counter()
        hits = store.search(q, k, **params)  # type: ignore[arg-type]
        lat.append((time.perf_counter() - t0) * 1000.0)
        recalls.append(len({h.id for h in hits} & truth) / k)
    return lat, float(np.mean(recalls))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="vectors in the table")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--centres", type=int, default=1000, help="Gaussian mixture components")
    p.add_argument("--sigma", type=float, default=0.04, help="per-coordinate noise around a centre")
    p.add_argument("--spread", type=float, default=0.5, help="log-normal sigma of the cluster sizes")
    p.add_argument("--queries", type=int, default=200, help="ANN queries (recall and latency)")
    p.add_argument("--flat-queries", type=int, default=20, help="exact-search queries (slow at 1M)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--batch", type=int, default=50_000, help="rows per upsert call")
    p.add_argument(
        "--index-type",
        nargs="+",
        default=["IVF_SQ"],
        choices=list(ANN_INDEX_TYPES),
        help="built one after another",
    )
    p.add_argument("--partitions", type=int, default=None, help="IVF partitions (default sqrt(n))")
    p.add_argument("--sub-vectors", type=int, default=None, help="PQ sub-vectors (default dim/8)")
    p.add_argument("--nprobes", type=int, nargs="+", default=None, help="IVF nprobes values (10 20 40)")
    p.add_argument("--refine", type=int, nargs="+", default=None, help="refine_factor values (per type)")
    p.add_argument("--ef", type=int, nargs="+", default=[64, 128], help="HNSW ef values")
    p.add_argument("--path", type=Path, default=None, help="table directory (default: a temp dir, removed)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    k = args.k

    workdir = args.path or Path(tempfile.mkdtemp(prefix="bench_lancedb_"))
    print(f"# LanceDB bench: n={args.n:,} dim={args.dim} centres={args.centres} k={k} dir={workdir}", flush=True)
    t0 = time.perf_counter()
    # one draw, split: the queries come from the same mixture but are not in the table
    allx, labels = mixture(
        args.n + args.queries, args.dim, args.centres, sigma=args.sigma, seed=args.seed, spread=args.spread
    )
    x, q = allx[: args.n], allx[args.n :]
    ids = image_ids(args.n)
    print(f"data: {time.perf_counter() - t0:.1f}s", flush=True)

    # exact reference (numpy brute force, same process)
    t0 = time.perf_counter()
    truth = exact_topk(x, q, k)
    truth_ids = [{ids[i] for i in row} for row in truth]
    print(f"numpy exact top-{k} for {len(q)} queries: {time.perf_counter() - t0:.1f}s", flush=True)
    numpy_single_query(x, q[0], k)  # warm
    np_lat = []
    for qq in q[: args.flat_queries]:
        t0 = time.perf_counter()
        numpy_single_query(x, qq, k)
        np_lat.append((time.perf_counter() - t0) * 1000.0)
    np_med = statistics.median(np_lat)

    # upsert
    registry = LanceIndexes(workdir, read_consistency_interval=None)
    registry.drop("bench")
    store = registry.open("bench", args.dim)

    def metas(start: int, stop: int) -> list[dict[str, object]]:
        # a label and tile bounds on a 1000-wide grid, as the indexing job writes them
        return [
            {"label": f"class_{labels[i] % 45}", "minx": float(i % 1000), "miny": float(i // 1000),
             "maxx": float(i % 1000 + 1), "maxy": float(i // 1000 + 1)}
            for i in range(start, stop)
        ]  # fmt: skip

    t0 = time.perf_counter()
    for start in range(0, args.n, args.batch):
        stop = min(args.n, start + args.batch)
        store.upsert(ids[start:stop], x[start:stop], metas(start, stop))
    upsert_s = time.perf_counter() - t0
    n_re = min(args.batch, args.n)
    t0 = time.perf_counter()
    store.upsert(ids[:n_re], x[:n_re], metas(0, n_re))
    reupsert_s = time.perf_counter() - t0
    assert store.count() == args.n, "re-upserting must not duplicate"
    store.optimize(cleanup_older_than=timedelta(0))  # compact; drop the versions the re-upsert left
    size_flat = dir_size(workdir)
    print(
        f"upsert: {args.n / upsert_s:,.0f} vectors/s ({upsert_s:.1f}s); re-upsert of {n_re:,} existing ids: "
        f"{n_re / reupsert_s:,.0f} vectors/s; disk {human(size_flat)}",
        flush=True,
    )

    rows: list[tuple[str, float, float, float]] = [("numpy brute force (1 query)", np_med, p95(np_lat), 1.0)]
    flat_lat, flat_recall = measure_search(store, q[: args.flat_queries], truth_ids[: args.flat_queries], k, exact=True)
    rows.append(("LanceDB flat (exact scan)", statistics.median(flat_lat), p95(flat_lat), flat_recall))
    print(f"flat: median {statistics.median(flat_lat):.1f} ms, recall {flat_recall:.3f}", flush=True)

    builds: list[str] = []
    best: tuple[str, float, float, float] | None = None
    filtered: list[str] = []
    for index_type in args.index_type:
        t0 = time.perf_counter()
        report = store.build_ann_index(
            index_type=index_type,
            force=True,
            num_partitions=args.partitions,
            num_sub_vectors=args.sub_vectors if index_type == "IVF_PQ" else None,
            scalar_fields=["label"],
        )
        build_s = time.perf_counter() - t0
        size_ann = vector_index_bytes(store)
        builds.append(f"{index_type:<12} {build_s:>8.1f} s  index {human(size_ann):>10}  {report.params}")
        print(f"index: {index_type} {report.params} built in {build_s:.1f}s; index {human(size_ann)}", flush=True)
        nprobes = args.nprobes or [10, 20, 40]
        refine = args.refine or DEFAULT_REFINE_GRID[index_type]
        if index_type == "IVF_HNSW_SQ":
            settings = [{"nprobes": 1, "ef": ef, "refine_factor": rf} for ef in args.ef for rf in refine]
        else:
            settings = [{"nprobes": npb, "refine_factor": rf} for npb in nprobes for rf in refine]
        chosen: tuple[dict[str, int], float] | None = None
        for params in settings:
            lat, recall = measure_search(store, q, truth_ids, k, **params)
            label = f"{index_type} " + " ".join(f"{a}={b}" for a, b in params.items())
            row = (label, statistics.median(lat), p95(lat), recall)
            rows.append(row)
            print(f"{label}: median {row[1]:.2f} ms p95 {row[2]:.2f} ms recall {recall:.3f}", flush=True)
            if recall >= TARGET_RECALL and (chosen is None or row[1] < chosen[1]):
                chosen = (params, row[1])
            if recall >= TARGET_RECALL and (best is None or row[1] < best[1]):
                best = row
        use = chosen[0] if chosen else settings[-1]
        flt_lat = []
        for qq in q[:20]:
            t0 = time.perf_counter()
            store.search(qq, k, {"label": "class_7"}, **use)
            flt_lat.append((time.perf_counter() - t0) * 1000.0)
        filtered.append(f"{index_type} {use}: {statistics.median(flt_lat):.2f} ms median")

    print()
    print(f"LanceDB, n={args.n:,}, dim={args.dim}, k={k}, {len(q)} queries (numpy and flat: {len(flat_lat)})")
    print(f"{'search':<44} {'median ms':>10} {'p95 ms':>9} {'recall@' + str(k):>10} {'vs numpy':>9}")
    for name, med, pp, rec in rows:
        print(f"{name:<44} {med:>10.2f} {pp:>9.2f} {rec:>10.3f} {np_med / med:>8.1f}x")
    print()
    rate = args.n / upsert_s
    print(f"upsert throughput    {rate:>10,.0f} vectors/s (batches of {args.batch:,}, {upsert_s:.1f}s)")
    print(f"re-upsert (existing) {n_re / reupsert_s:>10,.0f} vectors/s ({n_re:,} ids, merge_insert)")
    print(f"disk, table          {human(size_flat):>10} (vectors, ids, metadata; before indexes)")
    for line in builds:
        print(f"index build          {line}")
    for line in filtered:
        print(f"filtered (label=)    {line}")
    if best is not None:
        ok = best[1] <= TARGET_MEDIAN_MS
        print(f"fastest at recall@{k} >= {TARGET_RECALL}: {best[0]} -> {best[1]:.2f} ms median "
              f"({'meets' if ok else 'misses'} the {TARGET_MEDIAN_MS:.0f} ms target)")  # fmt: skip
    else:
        print(f"no setting reached recall@{k} >= {TARGET_RECALL}")
    if args.path is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
