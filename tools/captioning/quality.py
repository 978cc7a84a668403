"""How much a caption can be trusted, by where it came from: human > model > rules from a label or tags >
rules from a folder name. Training and evaluation read an image's best captions only; rule captioners
leave images that have better ones alone unless asked. ``feedback`` captions (the query a person marked an
image relevant for) are a person's word, level human, but short: they are added to an image's best
captions rather than replacing them, and they never stop a captioner from describing the image."""

from __future__ import annotations

#: the model id recorded with template captions made from a folder name (no label)
FOLDER_MODEL = "template-folder-v1"
#: quality level of each caption source (higher is better); folder captions are level 0
SOURCE_QUALITY: dict[str, int] = {"human": 3, "feedback": 3, "blip": 2, "blip2": 2, "tags": 1, "template": 1}
QUALITY_NAMES: dict[int, str] = {3: "human", 2: "model", 1: "rule", 0: "folder"}
#: sources whose captions join an image's best captions instead of competing with them
ADDITIVE_SOURCES: tuple[str, ...] = ("feedback",)


def caption_quality(source: str, model: str | None) -> int:
    """The quality level of one caption."""
    return 0 if model == FOLDER_MODEL else SOURCE_QUALITY.get(source, 0)


def best_captions(rows: list[tuple[str, str, str | None]]) -> list[str]:
    """Of (text, source, model) rows, the texts of the highest quality level present, then the feedback
    captions (:data:`ADDITIVE_SOURCES`) not already among them."""
    ranked = [(t, s, m) for t, s, m in rows if s not in ADDITIVE_SOURCES]
    best: list[str] = []
    if ranked:
        top = max(caption_quality(s, m) for _, s, m in ranked)
        best = [t for t, s, m in ranked if caption_quality(s, m) == top]
    return best + [t for t, s, _ in rows if s in ADDITIVE_SOURCES and t not in best]


def better_sources(source: str) -> list[str]:
    """Caption sources of a higher quality than ``source``'s."""
    level = SOURCE_QUALITY.get(source, 0)
    return [s for s, q in SOURCE_QUALITY.items() if q > level and s not in ADDITIVE_SOURCES]


__all__ = ["ADDITIVE_SOURCES", "FOLDER_MODEL", "QUALITY_NAMES", "SOURCE_QUALITY", "best_captions", "better_sources",
           "caption_quality"]
