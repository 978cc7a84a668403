"""Label-free transductive zero-shot classification (tools/transductive.py) on synthetic embeddings whose
classes form clusters while the prompts point only roughly at them: refining over the collection must beat
scoring each image alone, without any label and whatever the order of the images."""

from __future__ import annotations

import numpy as np
import pytest

from tools.evaluation import l2_normalize, zero_shot_accuracy
from tools.transductive import neighbour_graph, transductive_probabilities


def _collection(seed: int = 0, classes: int = 6, per_class: int = 40, dim: int = 48) -> tuple[np.ndarray, ...]:
    """Clustered images (noise of norm about 0.6 around their class centre) and prompts that point at their
    class only roughly (noise of norm about 2.5): zero-shot top-1 between 0.7 and 0.95."""
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.normal(size=(classes, dim)))
    labels = np.repeat(np.arange(classes), per_class)
    images = l2_normalize(centres[labels] + 0.6 * rng.normal(size=(len(labels), dim)) / np.sqrt(dim))
    prompts = l2_normalize(centres + 2.5 * rng.normal(size=(classes, dim)) / np.sqrt(dim))
    return images, labels, prompts


def test_refining_over_the_collection_beats_zero_shot_without_labels() -> None:
    gains = []
    for seed in range(3):
        images, labels, prompts = _collection(seed)
        plain = zero_shot_accuracy(images, labels, prompts)["top1"]
        refined = transductive_probabilities(images, prompts)
        trans = zero_shot_accuracy(images, labels, prompts, scores=refined)["top1"]
        gains.append(trans - plain)
        assert np.allclose(refined.sum(axis=1), 1.0, atol=1e-5)
    assert min(gains) > 0 and np.mean(gains) > 0.05, gains


def test_no_iterations_is_zero_shot_and_the_order_of_images_does_not_matter() -> None:
    images, labels, prompts = _collection(1)
    zero = transductive_probabilities(images, prompts, iterations=0)
    assert (zero.argmax(axis=1) == (images @ prompts.T).argmax(axis=1)).all()
    assert zero_shot_accuracy(images, labels, prompts, scores=images @ prompts.T) == zero_shot_accuracy(
        images, labels, prompts)
    order = np.random.default_rng(5).permutation(len(images))
    shuffled = transductive_probabilities(images[order], prompts)
    assert np.allclose(shuffled, transductive_probabilities(images, prompts)[order], atol=1e-5)


def test_neighbours_exclude_the_image_itself_and_weights_sum_to_one() -> None:
    images, _, _ = _collection(2, per_class=5)
    idx, w = neighbour_graph(images, 4, chunk=7)  # chunks that do not divide n
    assert idx.shape == (30, 4) and not (idx == np.arange(30)[:, None]).any()
    assert np.allclose(w.sum(axis=1), 1.0)
    exact = np.argsort(-(images @ images.T - 10 * np.eye(30)), axis=1)[:, :4]
    assert all(set(a) == set(b) for a, b in zip(idx, exact, strict=True))


def test_small_and_wrong_inputs() -> None:
    images, _, prompts = _collection(3)
    assert transductive_probabilities(images[:1], prompts).shape == (1, 6)  # one image: no neighbours
    assert transductive_probabilities(images[:0], prompts).shape == (0, 6)
    with pytest.raises(ValueError, match="must be"):
        transductive_probabilities(images[:, :10], prompts)
    with pytest.raises(ValueError, match="smoothing"):
        transductive_probabilities(images, prompts, smoothing=1.0)
    with pytest.raises(ValueError, match="scores"):
        zero_shot_accuracy(images, np.zeros(len(images), dtype=int), prompts, scores=np.zeros((2, 6)))
