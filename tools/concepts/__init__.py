"""Ranking for concepts (search-time learning): the query alone, a Rocchio-refined vector, a linear classifier.

A concept is a saved search that a user marks: relevant / not relevant. Its ranking uses what is known:

- ``text``: no marks yet, the query vector alone (texts and example images, minus negatives; see
  :func:`tools.search.query_vector`);
- ``rocchio``: a few marks, :func:`~tools.concepts.rocchio.rocchio` moves the query towards the mean of the
  relevant images and away from the not relevant ones (GeoVibes: 2 mean(positives) - mean(negatives));
- ``classifier``: enough marks of both kinds, :func:`~tools.concepts.classifier.fit_classifier` fits a
  class-balanced logistic regression (scikit-learn) on the stored embeddings, with background negatives
  sampled from the index. Being linear, its ranking of the whole index is that of one query vector, its weight
  direction, so the store's nearest-neighbour search finds its best candidates; the classifier then scores them.

:func:`~tools.concepts.active.ask` picks the unlabelled images the classifier is least sure about, spread over
the embedding space (active learning). Everything here is numpy (scikit-learn inside the fit): no store, no
catalog, no torch.
"""

from tools.concepts.active import ask, spread
from tools.concepts.classifier import ConceptClassifier, fit_classifier, sample_background
from tools.concepts.rocchio import (
    MIN_CLASSIFIER_NEGATIVES,
    MIN_CLASSIFIER_POSITIVES,
    Stage,
    choose_stage,
    rocchio,
    stage_reason,
)

__all__ = ["MIN_CLASSIFIER_NEGATIVES", "MIN_CLASSIFIER_POSITIVES", "ConceptClassifier", "Stage", "ask",
           "choose_stage", "fit_classifier", "rocchio", "sample_background", "spread", "stage_reason"]
