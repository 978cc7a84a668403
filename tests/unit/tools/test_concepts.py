"""Concept ranking math (tools/concepts): stages, Rocchio, the classifier against the query alone, active learning,
and the judged metrics checked against naive loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tools.concepts import ask, choose_stage, fit_classifier, rocchio, sample_background, spread
from tools.evaluation import judged_ranking_metrics


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def clusters(seed: int = 0, n: int = 200, dim: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors: a target concept (label 1) beside a confuser close to it, and background; a query that sits
    between target and confuser (as a text query often does)."""
    rng = np.random.default_rng(seed)
    target, confuser = unit(rng.normal(size=dim)), unit(rng.normal(size=dim))
    confuser = unit(0.6 * target + 0.8 * confuser)
    x = np.concatenate([unit(target + 0.35 * rng.normal(size=(n // 4, dim))),
                        unit(confuser + 0.35 * rng.normal(size=(n // 4, dim))),
                        unit(rng.normal(size=(n // 2, dim)))])
    y = np.concatenate([np.ones(n // 4), np.zeros(n - n // 4)])
    return x.astype(np.float32), y, unit(target + confuser).astype(np.float32)


def ap_of(scores: np.ndarray, y: np.ndarray) -> float:
    return float(judged_ranking_metrics(scores, y.astype(bool), k=10)["average_precision"])


def test_stages_follow_the_marks() -> None:
    assert choose_stage(0, 0) == "text"
    assert choose_stage(1, 0) == choose_stage(0, 2) == choose_stage(5, 2) == "rocchio"
    assert choose_stage(3, 3) == "classifier"


def test_rocchio_moves_towards_positives_and_away_from_negatives() -> None:
    q = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    pos = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    neg = np.array([[0.0, 0.0, 1.0]], dtype=np.float32)
    v = rocchio(q, pos, neg, alpha=1, beta=2, gamma=1)
    assert np.allclose(v, unit(np.array([1.0, 2.0, -1.0])), atol=1e-6)
    assert np.allclose(rocchio(None, pos, np.zeros((0, 3))), pos[0])  # GeoVibes: 2 mean(pos) - mean(neg)
    only_negatives = rocchio(q, np.zeros((0, 3)), neg)
    assert only_negatives[2] < 0 and only_negatives[0] > 0
    with pytest.raises(ValueError, match="cancel out"):
        rocchio(q, np.zeros((0, 3)), q[None, :], gamma=1.0)


def test_the_classifier_ranks_better_than_the_query_alone() -> None:
    x, y, query = clusters()
    rng = np.random.default_rng(1)
    pos_idx = rng.choice(np.flatnonzero(y == 1), 5, replace=False)
    neg_idx = rng.choice(np.flatnonzero((y == 0) & (np.arange(len(y)) < 100)), 5, replace=False)  # confusers
    picked = sample_background([str(i) for i in range(len(x))], {str(i) for i in [*pos_idx, *neg_idx]}, 80)
    background = x[[int(i) for i in picked]]
    clf = fit_classifier(x[pos_idx], x[neg_idx], background)
    probs = clf.probabilities(x)
    assert probs.shape == (len(x),) and ((probs >= 0) & (probs <= 1)).all()
    text_ap, clf_ap = ap_of(x @ query, y), ap_of(probs, y)
    refined_ap = ap_of(x @ rocchio(query, x[pos_idx], x[neg_idx]), y)
    assert clf_ap > text_ap + 0.1, (text_ap, refined_ap, clf_ap)
    # ranking by the weight direction (a nearest-neighbour query) is ranking by probability
    assert np.array_equal(np.argsort(-(x @ clf.direction), kind="stable"), np.argsort(-probs, kind="stable"))


def test_the_classifier_needs_both_kinds() -> None:
    x, _, _ = clusters()
    with pytest.raises(ValueError, match="needs relevant images"):
        fit_classifier(np.zeros((0, x.shape[1])), x[:3])
    clf = fit_classifier(x[:3], np.zeros((0, x.shape[1])), x[100:150])  # background negatives suffice
    assert clf.n_relevant == 3 and clf.n_not_relevant == 0 and clf.n_background == 50


def test_background_sample_is_stable_and_leaves_out_the_marked() -> None:
    ids = [f"i{n:03d}" for n in range(50)]
    a = sample_background(ids, {"i001", "i002"}, 10, seed=3)
    assert a == sample_background(list(reversed(ids)), {"i001", "i002"}, 10, seed=3)
    assert len(a) == 10 and not {"i001", "i002"} & set(a)
    assert sample_background(ids[:5], set(), 10) == ids[:5]


def test_ask_picks_the_least_sure_spread_apart() -> None:
    vectors = unit(np.array([[1, 0, 0], [0.99, 0.14, 0], [0, 1, 0], [0, 0, 1], [0.7, 0.7, 0]], dtype=np.float64))
    probs = np.array([0.5, 0.5, 0.45, 0.95, 0.01])
    ids = ["a", "b", "c", "d", "e"]
    chosen, facts = ask(ids, vectors, probs, 2, pool_factor=2)
    # the four least sure are a, b, c (and e or d); a and b are near duplicates: one of them, then c
    assert chosen == ["a", "c"] and 0.45 <= facts["p_min"] <= facts["p_max"] <= 0.5
    assert spread(vectors, 3) == [0, 2, 3]  # c and d tie (distance 1 from a): the lower index first


def naive(scores: list[float], relevant: list[bool], k: int) -> dict[str, float | None]:
    """The textbook definitions with explicit loops (ties: not relevant first)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], relevant[i]))
    ranked = [relevant[i] for i in order]
    top = ranked[:k]
    p = sum(top) / len(top) if top else None
    n_rel = sum(ranked)
    if not n_rel:
        return {"p": p, "ap": None, "ndcg": None}
    hits, total = 0, 0.0
    for pos, rel in enumerate(ranked, start=1):
        if rel:
            hits += 1
            total += hits / pos
    dcg = sum(1 / math.log2(pos + 2) for pos, rel in enumerate(top) if rel)
    idcg = sum(1 / math.log2(pos + 2) for pos in range(min(k, n_rel)))
    return {"p": p, "ap": total / n_rel, "ndcg": dcg / idcg}


@pytest.mark.parametrize("seed", range(6))
def test_judged_metrics_match_naive_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    scores = np.round(rng.random(n), 1).tolist()  # rounded: ties happen
    relevant = (rng.random(n) < 0.4).tolist()
    got = judged_ranking_metrics(scores, relevant, k=10)
    want = naive(scores, relevant, 10)
    assert got["n"] == n and got["n_relevant"] == sum(relevant)
    assert got["precision@10"] == pytest.approx(want["p"])
    for name, key in (("average_precision", "ap"), ("ndcg@10", "ndcg")):
        assert (got[name] is None) == (want[key] is None)
        if want[key] is not None:
            assert got[name] == pytest.approx(want[key])


def test_judged_metrics_count_ties_against_the_relevant() -> None:
    m = judged_ranking_metrics([0.5, 0.5, 0.5], [True, False, False])
    assert m["average_precision"] == pytest.approx(1 / 3)
    assert judged_ranking_metrics([], [])["precision@10"] is None
