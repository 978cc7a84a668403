"""Turning labels and map tags into readable phrases (shared by captioners and zero-shot prompts)."""

from __future__ import annotations

import re
from typing import Any

from tools.templates import CLASS_PHRASES

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def humanize_label(label: str, label_text: str | None = None) -> str:
    """A class label as a phrase: "AnnualCrop" -> "annual crop land", "parkinglot" -> "a parking lot"."""
    key = re.sub(r"[^a-z]", "", label.lower())
    if key in CLASS_PHRASES:
        return CLASS_PHRASES[key]
    if label_text:
        return label_text.strip().lower()
    return _CAMEL.sub(" ", label).replace("_", " ").replace("-", " ").strip().lower()


def tags_to_phrases(tags: Any) -> list[str]:
    """Map tags (a dict like {"landuse": "vineyard", "building": "yes"} or a list) as noun phrases."""
    phrases: list[str] = []
    if isinstance(tags, dict):
        for key, value in tags.items():
            val = str(value).strip()
            word = key if val.lower() in ("yes", "true", "1", "") else val
            phrases.append(word.replace("_", " ").replace(":", " ").lower())
    elif isinstance(tags, list | tuple):
        phrases = [str(t).replace("_", " ").lower() for t in tags if str(t).strip()]
    elif isinstance(tags, str) and tags.strip():
        phrases = [t.strip().replace("_", " ").lower() for t in re.split(r"[,;|]", tags) if t.strip()]
    return list(dict.fromkeys(phrases))  # drop repeats, keep the first occurrence's order


def join_phrases(phrases: list[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]
