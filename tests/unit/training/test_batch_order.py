"""Batches that keep alike captions apart: UCM's human captions repeat across the images of a scene type,
and in a contrastive batch such repeats are each other's false negatives. Training clusters the images by
their caption embeddings (no labels read) and spreads every cluster evenly over each epoch, while every
image is still seen exactly once per epoch and a run stays reproducible from its seed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from tools.models import load_model
from tools.training import TrainItem, caption_clusters, kmeans_cosine, spread_order

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "ucm_sample" / "train.jsonl"


def _repeats(order: np.ndarray, groups: np.ndarray, batch: int) -> int:
    """Pairs of same-group images within the full batches of ``order`` (false negatives of ClipLoss)."""
    total = 0
    for start in range(0, len(order) - batch + 1, batch):
        counts = Counter(groups[order[start : start + batch]].tolist())
        total += sum(c * (c - 1) // 2 for c in counts.values())
    return total


def _purity(groups: np.ndarray, labels: list[str]) -> float:
    by_group: dict[int, Counter[str]] = {}
    for g, label in zip(groups.tolist(), labels, strict=True):
        by_group.setdefault(g, Counter())[label] += 1
    return sum(c.most_common(1)[0][1] for c in by_group.values()) / len(labels)


def test_kmeans_recovers_separated_clusters_and_is_seeded() -> None:
    gen = torch.Generator().manual_seed(0)
    centers = torch.nn.functional.normalize(torch.randn(6, 32, generator=gen), dim=-1)
    truth = torch.arange(6).repeat_interleave(40)
    x = torch.nn.functional.normalize(centers[truth] + 0.15 * torch.randn(240, 32, generator=gen), dim=-1)
    groups = kmeans_cosine(x, 6, seed=1, chunk=50)  # chunked distance computation too
    assert _purity(groups, [str(t) for t in truth.tolist()]) == 1.0 and len(set(groups.tolist())) == 6
    assert np.array_equal(groups, kmeans_cosine(x, 6, seed=1))
    assert len(set(kmeans_cosine(x[:3], 10, seed=0).tolist())) <= 3  # k is capped by the row count


@pytest.fixture(scope="module")
def ucm_sample_clusters(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[str]]:
    """Clusters of the bundled UCM sample's 240 training images, from the real MiniLM caption embeddings."""
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    items = [TrainItem(r["image"], r["captions"]) for r in rows]
    tiny = load_model("skyscout-tiny", cache_dir=tmp_path_factory.mktemp("cache"))
    texts = sorted({c for it in items for c in it.captions})
    with torch.no_grad():
        feats = tiny.model.encode_text(tiny.tokenizer(texts), normalize=True)  # type: ignore[operator]
    groups = caption_clusters(items, {t: i for i, t in enumerate(texts)}, feats, k=16, seed=0)
    return groups, [r["label"] for r in rows]


def test_caption_clusters_find_the_scene_types_without_labels(ucm_sample_clusters) -> None:  # type: ignore[no-untyped-def]
    groups, labels = ucm_sample_clusters
    assert len(set(labels)) == 16
    assert _purity(groups, labels) > 0.9


def test_spread_is_a_permutation_with_far_fewer_repeated_scene_types(ucm_sample_clusters) -> None:  # type: ignore[no-untyped-def]
    groups, labels = ucm_sample_clusters
    scene = np.unique(np.asarray(labels), return_inverse=True)[1]
    for batch in (8, 16, 32):
        shuffled_total = spread_total = 0
        for epoch in range(5):
            order = np.random.default_rng(epoch).permutation(len(labels))
            out = spread_order(order, groups, seed=7, epoch=epoch, batch=batch)
            assert sorted(out.tolist()) == list(range(len(labels)))
            shuffled_total += _repeats(order, scene, batch)  # counted by the true labels
            spread_total += _repeats(out, scene, batch)
        # up to one image per scene type a batch, repeats almost vanish; beyond that some must remain
        assert spread_total < shuffled_total * (0.25 if batch <= 16 else 0.75), (batch, spread_total, shuffled_total)


def test_groups_of_one_keep_a_random_shuffle() -> None:
    order = np.random.default_rng(0).permutation(50)
    out = spread_order(order, np.arange(50), seed=0)
    assert sorted(out.tolist()) == list(range(50)) and not np.array_equal(out, np.arange(50))


def test_deterministic_per_seed_and_epoch() -> None:
    groups = np.repeat(np.arange(4), 6)
    order = np.random.default_rng(3).permutation(24)
    assert np.array_equal(spread_order(order, groups, 5, 2), spread_order(order, groups, 5, 2))
    assert not np.array_equal(spread_order(order, groups, 5, 2), spread_order(order, groups, 5, 3))


def test_more_groups_than_a_batch_rotate_and_never_meet_twice_in_one() -> None:
    """`--caption-groups 32` with batches of 16 (a mixed catalog with more kinds of caption than a batch holds):
    every batch still holds 16 different groups, and every group gets its turn in each epoch."""
    groups = np.repeat(np.arange(32), 10)
    order = np.random.default_rng(3).permutation(len(groups))
    out = spread_order(order, groups, seed=1, epoch=0, batch=16)
    assert sorted(out.tolist()) == list(range(len(groups)))
    batches = [groups[out[s:s + 16]] for s in range(0, len(out), 16)]
    assert all(len(set(b.tolist())) == 16 for b in batches)
    assert set(np.concatenate(batches[:2]).tolist()) == set(range(32))  # the first two batches cover all groups
