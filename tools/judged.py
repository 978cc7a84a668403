"""Scoring a model on users' judgments: each judged query ranks its judged images; precision@10, AP, nDCG@10.

The model embeds the judged images from their files and each query as a search would (prompt templates for
texts, example images, negatives subtracted), so a candidate that has no index yet is scored exactly like the
active model. Metrics per query come from :func:`tools.evaluation.judged_ranking_metrics`; the overall figure
of each metric is its mean over the queries where it is defined, with how many queries and judgments back it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tools.evaluation import encode_image_files, judged_ranking_metrics, text_encoder
from tools.judgments import JudgedQuery, JudgmentSet
from tools.models import LoadedModel
from tools.search import text_vector

#: the metrics reported per query and overall (``k`` = 10)
JUDGED_METRICS = ("precision@10", "average_precision", "ndcg@10")
NEGATIVE_WEIGHT = 0.5  # as a search weighs its negative texts (tools.search.Query.negative_weight)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def _query_vector(query: JudgedQuery, encode: Any, image_vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    pos = [text_vector(encode, t) for t in query.texts] + [image_vectors[i] for i in query.image_ids
                                                           if i in image_vectors]
    if not pos:
        pos = [text_vector(encode, query.label)]
    vec = _unit(np.mean(pos, axis=0))
    if query.negative_texts:
        vec = vec - NEGATIVE_WEIGHT * np.mean([text_vector(encode, t) for t in query.negative_texts], axis=0)
    return _unit(vec)


def overall(per_query: Mapping[str, Mapping[str, Any]], metrics: Sequence[str] = JUDGED_METRICS) -> dict[str, Any]:
    """The mean of each metric over the queries where it is defined, and how many queries and judgments back it."""
    out: dict[str, Any] = {}
    for name in metrics:
        rows = [m for m in per_query.values() if m.get(name) is not None]
        out[name] = float(np.mean([m[name] for m in rows])) if rows else None
        out[f"{name}_queries"] = len(rows)
        out[f"{name}_judgments"] = int(sum(m["n"] for m in rows))
    return out


def evaluate_judgments(loaded: LoadedModel, judged: JudgmentSet, uris: Mapping[str, str], *, device: str = "cpu",
                       batch_size: int = 64, k: int = 10) -> dict[str, Any]:
    """Judged metrics of ``loaded`` on ``judged`` (image files from ``uris``: image id -> path); judgments on
    images without a file there are left out (and counted)."""
    wanted = {j.image_id for j in judged.judgments} | {i for q in judged.queries.values() for i in q.image_ids}
    ids = sorted(i for i in wanted if i in uris)
    model = loaded.model.to(device)
    feats = encode_image_files(model, loaded.preprocess_val, [uris[i] for i in ids], device=device,
                               batch_size=batch_size) if ids else np.zeros((0, 0), dtype=np.float32)
    vectors = {i: feats[n] for n, i in enumerate(ids)}
    encode = text_encoder(model, loaded.tokenizer, device=device)
    per_query: dict[str, dict[str, Any]] = {}
    missing = 0
    for key, rows in sorted(judged.by_query().items()):
        query = judged.queries[key]
        usable = [j for j in rows if j.image_id in vectors]
        missing += len(rows) - len(usable)
        if not usable:
            continue
        qvec = _query_vector(query, encode, vectors)
        scores = np.stack([vectors[j.image_id] for j in usable]) @ qvec
        per_query[query.label] = {**judged_ranking_metrics(scores, [j.relevant for j in usable], k=k),
                                  "concept_id": query.concept_id}
    return {"k": k, "fingerprint": judged.fingerprint(), "overall": overall(per_query), "per_query": per_query,
            "counts": {**judged.counts(), "without_image_file": missing}}


def per_query_ap(evaluation: Mapping[str, Any]) -> dict[str, float]:
    """Query -> average precision (the queries where it is defined): what a paired comparison compares."""
    return {q: float(m["average_precision"]) for q, m in (evaluation.get("per_query") or {}).items()
            if m.get("average_precision") is not None}


__all__ = ["JUDGED_METRICS", "evaluate_judgments", "overall", "per_query_ap"]
