"""Slots of a detect command: the scene, a box, the output file, merge, a threshold, and the query (as search).

"where are the airports in scene 3fa9c2", "map every harbor in bbox -122.5,37.7,-122.3,37.9", "export the
vineyards as GeoJSON to ./out/vineyards.geojson", "outline parking lots with probability above 0.7".
Whether a clause is a detect command at all is decided by :data:`DETECT_CUE` (see ``text.question_cue``).
"""

from __future__ import annotations

import re
from typing import Any

from agents.routing.search import search_args
from agents.routing.text import DETECT_CUE, cut, squash

_OUT_RE = re.compile(r"(?:\b(?:to|into|in|at)\s+)?((?:[\w.~-]*/)*[\w.-]+\.(?:geojson|json))\b", re.IGNORECASE)
_FORMAT_RE = re.compile(r"\b(?:as|in|to)\s+(?:a\s+)?geo\s?json(?:\s+file)?\b|\bgeo\s?json\b", re.IGNORECASE)
_MERGE_RE = re.compile(
    r"(?:\b(?:and|then)\s+)?\b(?:merged?|merging|dissolved?)\b(?:\s+(?:them|it|the\s+chips|touching\s+chips)"
    r"(?:\s+into\s+polygons)?)?|\bas\s+polygons\b|\boutlines?\b|\bregions\b", re.IGNORECASE)
_THRESHOLD_RE = re.compile(
    r"\b(?:with\s+)?(?:a\s+)?(?:probability|threshold|confidence|p)\s*(?:of|above|over|>=?|at\s+least|=)?\s*"
    r"(0?\.\d+|1(?:\.0+)?)\b", re.IGNORECASE)
_VERB_RE = re.compile(
    r"^(?:(?:please|now|then|and|can\s+you|could\s+you|i\s+(?:need|want|would\s+like|'d\s+like)"
    r"(?:\s+to\s+(?:see|get|have))?)\s+)*(?:(?:detect|map|export|outline|mark|locate|show|list|draw|give|get)"
    r"\s+(?:me\s+)?)?", re.IGNORECASE)
_WHAT_RE = re.compile(
    r"^(?:(?:polygons?|outlines?|locations?|coordinates|positions?|detections?)\s+(?:of|for)\s+)?"
    r"(?:(?:every|all|each)\s+(?:of\s+)?)?(?:the\s+)?", re.IGNORECASE)
_LEFTOVER_RE = re.compile(r"\b(?:in|on|within)\s+(?:this|the)\s+(?:area|region|scene|map)\b|\bon\s+a\s+map\b",
                          re.IGNORECASE)


def detect_args(text: str) -> dict[str, Any]:
    """Slots of a detect command: ``scene``, ``bbox``, ``out``, ``merge``, ``threshold``, ``top_k``, ``query``,
    ``negative``."""
    args: dict[str, Any] = {}
    s = text
    if m := _OUT_RE.search(s):
        args["out"] = m.group(1)
        s = cut(s, m.start(), m.end())
    s = _FORMAT_RE.sub(" ", s)
    if m := _THRESHOLD_RE.search(s):
        args["threshold"] = float(m.group(1))
        s = cut(s, m.start(), m.end())
    if _MERGE_RE.search(s):
        args["merge"] = True
        s = _MERGE_RE.sub(" ", s)
    s = _LEFTOVER_RE.sub(" ", s)
    s = _WHAT_RE.sub("", _VERB_RE.sub("", squash(s)))
    found = search_args(s)
    if "k" in found:
        args["top_k"] = found["k"]
    for key in ("query", "negative", "scene", "bbox"):
        if key in found:
            args[key] = found[key]
    return args


__all__ = ["DETECT_CUE", "detect_args"]
