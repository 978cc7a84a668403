"""Prompt templates for zero-shot classification of remote-sensing imagery (``{}`` is the class name).

Used to build zero-shot classifiers (``tools.evaluation.zero_shot_classifier``): each class is embedded
with every template and the normalised embeddings are averaged, as in CLIP's prompt ensembling.
"""

from __future__ import annotations

REMOTE_SENSING_TEMPLATES: tuple[str, ...] = (
    "a satellite photo of {}.",
    "an aerial photo of {}.",
    "a satellite image of {}.",
    "{} seen from above.",
    "an overhead view of {}.",
    "a remote sensing image of {}.",
    "an aerial image showing {}.",
    "a top-down view of {}.",
)
"""The default ensemble for satellite and aerial tiles."""

SIMPLE_TEMPLATES: tuple[str, ...] = ("a satellite photo of {}.",)
"""A single template: cheaper, and the usual baseline when reporting prompt-ensemble gains."""
