"""Zero-shot and retrieval metrics, checked against naive loop implementations on random data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.unit.training.tiny import make_images, tiny_model
from tools import evaluation as ev
from tools.templates import REMOTE_SENSING_TEMPLATES

# -- naive references (plain Python loops, no vectorisation) ------------------------------------------


def _norm(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _hit_at_k(scores: list[float], relevant: list[bool], k: int) -> bool:
    # Sort by score, ties broken against the relevant candidates (pessimistic).
    order = sorted(range(len(scores)), key=lambda j: (-scores[j], relevant[j]))
    return any(relevant[j] for j in order[:k])


def _naive_recall(queries: np.ndarray, cands: np.ndarray, rel: list[list[bool]], k: int) -> float:
    q = [_norm(list(map(float, r))) for r in queries]
    c = [_norm(list(map(float, r))) for r in cands]
    hits, n = 0, 0
    for i, qi in enumerate(q):
        if not any(rel[i]):
            continue
        n += 1
        hits += _hit_at_k([_dot(qi, cj) for cj in c], rel[i], k)
    return hits / n


def _naive_classifier(encode, classnames, templates):
    out = []
    for c in classnames:
        embs = [_norm(list(map(float, encode([t.format(c)])[0]))) for t in templates]
        mean = [sum(e[d] for e in embs) / len(embs) for d in range(len(embs[0]))]
        out.append(_norm(mean))
    return np.array(out)


def _fake_encoder(dim: int = 16):
    rng = np.random.default_rng(123)
    table: dict[str, np.ndarray] = {}

    def encode(texts: list[str]) -> np.ndarray:
        for t in texts:
            table.setdefault(t, rng.normal(size=dim))
        return np.stack([table[t] * 3.0 for t in texts])  # unnormalised on purpose

    return encode


# -- zero-shot ----------------------------------------------------------------------------------------


def test_zero_shot_classifier_matches_naive() -> None:
    encode = _fake_encoder()
    names = ["beach", "forest", "harbor", "runway"]
    clf = ev.zero_shot_classifier(encode, names, REMOTE_SENSING_TEMPLATES)
    assert clf.shape == (4, 16) and clf.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(clf, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(clf, _naive_classifier(encode, names, REMOTE_SENSING_TEMPLATES), atol=1e-6)


def test_zero_shot_classifier_rejects_bad_templates() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        ev.zero_shot_classifier(_fake_encoder(), ["a"], ["no placeholder"])
    with pytest.raises(ValueError, match="templates is empty"):
        ev.zero_shot_classifier(_fake_encoder(), ["a"], [])


def test_default_templates() -> None:
    for t in (
        "a satellite photo of {}.",
        "an aerial photo of {}.",
        "a satellite image of {}.",
        "{} seen from above.",
        "an overhead view of {}.",
    ):
        assert t in REMOTE_SENSING_TEMPLATES
    assert all(t.count("{}") == 1 for t in REMOTE_SENSING_TEMPLATES)


@pytest.mark.parametrize("n_classes", [3, 7, 12])
def test_zero_shot_accuracy_matches_naive(n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    feats = rng.normal(size=(60, 8))
    clf = ev.l2_normalize(rng.normal(size=(n_classes, 8)))
    labels = rng.integers(0, n_classes, size=60)
    names = [f"class{c}" for c in range(n_classes)]
    res = ev.zero_shot_accuracy(feats, labels, clf, classnames=names)

    onehot = [[c == lab for c in range(n_classes)] for lab in labels]
    assert res["top1"] == pytest.approx(_naive_recall(feats, clf, onehot, 1))
    assert res["top5"] == pytest.approx(_naive_recall(feats, clf, onehot, min(5, n_classes)))
    assert res["n"] == 60
    for c, name in enumerate(names):
        idx = [i for i in range(60) if labels[i] == c]
        if not idx:
            assert name not in res["per_class"]
            continue
        rel = [onehot[i] for i in idx]
        assert res["per_class"][name] == pytest.approx(_naive_recall(feats[idx], clf, rel, 1))
    assert res["mean_per_class"] == pytest.approx(np.mean(list(res["per_class"].values())))


def test_zero_shot_accuracy_perfect_and_collapsed() -> None:
    clf = np.eye(4, dtype=np.float32)
    labels = np.array([0, 1, 2, 3, 2])
    assert ev.zero_shot_accuracy(clf[labels] * 5, labels, clf)["top1"] == 1.0
    collapsed = ev.zero_shot_accuracy(np.ones((5, 4)), labels, clf)  # all scores tie
    assert collapsed["top1"] == 0.0 and collapsed["top5"] == 1.0  # top-5 of 4 classes: everything


def test_zero_shot_accuracy_validates() -> None:
    with pytest.raises(ValueError, match="labels must be in"):
        ev.zero_shot_accuracy(np.ones((2, 3)), [0, 5], np.eye(3))
    with pytest.raises(ValueError, match="classnames"):
        ev.zero_shot_accuracy(np.ones((2, 3)), [0, 1], np.eye(3), classnames=["a"])


# -- retrieval ----------------------------------------------------------------------------------------


def _random_retrieval(seed: int, n_images: int = 30, dim: int = 6):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n_images, dim))
    owner = np.repeat(np.arange(n_images), rng.integers(1, 4, size=n_images))
    owner = owner[owner != 3]  # image 3 has no caption: left out of image->text
    texts = images[owner] * 0.3 + rng.normal(size=(len(owner), dim))
    return images, texts, owner


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_metrics_match_naive(seed: int) -> None:
    images, texts, owner = _random_retrieval(seed)
    res = ev.retrieval_metrics(images, texts, owner.tolist())
    t2i_rel = [[owner[t] == i for i in range(len(images))] for t in range(len(texts))]
    i2t_rel = [[owner[t] == i for t in range(len(texts))] for i in range(len(images))]
    expected = {}
    for k in (1, 5, 10):
        expected[f"text_to_image_R@{k}"] = _naive_recall(texts, images, t2i_rel, k)
    for k in (1, 5, 10):
        expected[f"image_to_text_R@{k}"] = _naive_recall(images, texts, i2t_rel, k)
    for key, value in expected.items():
        assert res[key] == pytest.approx(value), key
    assert res["mean_recall"] == pytest.approx(np.mean(list(expected.values())))
    assert res["n_texts"] == len(texts) and res["n_images"] == len(images) - 1
    assert 0.0 < res["text_to_image_R@10"] < 1.0  # the random data is neither trivial nor hopeless


@pytest.mark.parametrize("seed", [0, 1])
def test_class_aware_retrieval_matches_naive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    images, texts = rng.normal(size=(25, 5)), rng.normal(size=(40, 5))
    ilab = rng.choice(["beach", "farm", "river", "port"], size=25)
    tlab = rng.choice(["beach", "farm", "river", "lake"], size=40)  # "lake" texts have no image
    res = ev.class_aware_retrieval_metrics(images, texts, ilab, tlab)
    t2i_rel = [[tlab[t] == ilab[i] for i in range(25)] for t in range(40)]
    i2t_rel = [[ilab[i] == tlab[t] for t in range(40)] for i in range(25)]
    for k in (1, 5, 10):
        assert res[f"text_to_image_R@{k}"] == pytest.approx(_naive_recall(texts, images, t2i_rel, k))
        assert res[f"image_to_text_R@{k}"] == pytest.approx(_naive_recall(images, texts, i2t_rel, k))
    assert res["n_texts"] == int((tlab != "lake").sum())
    assert res["n_images"] == int((ilab != "port").sum())


def test_retrieval_chunking_is_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    images, texts, owner = _random_retrieval(5, n_images=50)
    whole = ev.retrieval_metrics(images, texts, owner)
    monkeypatch.setattr(ev, "_CHUNK", 7)
    assert ev.retrieval_metrics(images, texts, owner) == whole


def test_retrieval_perfect_and_ties() -> None:
    feats = np.eye(5)
    res = ev.retrieval_metrics(feats, feats, [0, 1, 2, 3, 4])
    assert all(res[f"text_to_image_R@{k}"] == 1.0 for k in (1, 5, 10))
    tied = ev.retrieval_metrics(np.ones((5, 3)), np.ones((5, 3)), [0, 1, 2, 3, 4])
    assert tied["text_to_image_R@1"] == 0.0 and tied["text_to_image_R@5"] == 1.0


def test_retrieval_validates() -> None:
    with pytest.raises(ValueError, match="entries"):
        ev.retrieval_metrics(np.ones((2, 3)), np.ones((3, 3)), [0, 1])
    with pytest.raises(ValueError, match="index"):
        ev.retrieval_metrics(np.ones((2, 3)), np.ones((2, 3)), [0, 2])


# -- adapters over a real (tiny) open_clip model ------------------------------------------------------


def test_encoders_on_tiny_model(tmp_path: Path) -> None:
    model, _, pre_val, tokenizer = tiny_model()
    model.train()
    encode = ev.text_encoder(model, tokenizer, batch_size=3)
    feats = encode(["a beach", "a farm", "a river", "a road", "a lake"])
    assert feats.shape == (5, 32) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    assert model.training  # mode restored
    clf = ev.zero_shot_classifier(encode, ["beach", "farm"], REMOTE_SENSING_TEMPLATES)
    assert clf.shape == (2, 32)

    paths = [p for p, _ in make_images(tmp_path, 5)]
    img = ev.encode_image_files(model, pre_val, paths, batch_size=2)
    assert img.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, rtol=1e-5)
    res = ev.zero_shot_accuracy(img, [0, 1, 0, 1, 0], clf, classnames=["beach", "farm"])
    assert set(res) == {"top1", "top5", "mean_per_class", "per_class", "n", "correct", "confusion"}
    assert len(res["correct"]) == 5 and sum(res["correct"]) / 5 == res["top1"]
    matrix = np.array(res["confusion"]["matrix"])
    assert res["confusion"]["classes"] == ["beach", "farm"] and matrix.sum() == 5
    assert np.trace(matrix) == sum(res["correct"]) and list(matrix.sum(axis=1)) == [3, 2]


def test_per_image_recall_averages_to_mean_recall_with_equal_captions() -> None:
    """Each image's share of the mean recall, checked against a naive loop over its own hits."""
    rng = np.random.default_rng(3)
    images, texts = rng.normal(size=(9, 16)), rng.normal(size=(27, 16))
    owner = np.repeat(np.arange(9), 3)  # three captions per image
    res = ev.retrieval_metrics(images, texts, owner)
    assert np.mean(res["per_image"]) == pytest.approx(res["mean_recall"])
    img, txt = ev.l2_normalize(images), ev.l2_normalize(texts)
    for i in range(9):
        i2t_rank = int(np.argsort(-(img[i] @ txt.T)).tolist().index(next(
            t for t in np.argsort(-(img[i] @ txt.T)) if owner[t] == i)))
        t2i = [int(np.argsort(-(txt[t] @ img.T)).tolist().index(i)) for t in np.where(owner == i)[0]]
        naive = np.mean([i2t_rank < k for k in (1, 5, 10)] + [np.mean([r < k for r in t2i]) for k in (1, 5, 10)])
        assert res["per_image"][i] == pytest.approx(naive)
