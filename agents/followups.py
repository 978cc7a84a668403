"""Follow-ups in a conversation: a request that refines the thread's last search instead of starting anew.

The thread remembers its last search (query, example image, negatives, filters, k, query id and the hits,
by id). Requests such as "now only the ones from source eurosat_tiles", "without forests", "more like the
first one", "the third one is wrong" or "export these" are read against it, deterministically, before any
routing, and become commands on those results: a refined search, a mark on one hit, an export.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agents.concepts import read_concept_request
from agents.records import StepResult

ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
            "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "last": -1}
_NTH = (r"(?:the\s+)?(?:(?P<word>first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|\d+(?:st|nd|"
        r"rd|th))(?:\s+(?:one|result|hit|image|tile|chip|match))?|(?:number|no\.?|#)\s*(?P<num>\d+))")
_MORE_LIKE = re.compile(rf"^(?:show\s+me\s+|find\s+|search\s+)?(?:more|others?|images?|tiles?|ones?)?\s*"
                        rf"(?:like|similar\s+to|resembling)\s+{_NTH}\s*$", re.IGNORECASE)
_MARK = re.compile(rf"^{_NTH}\s+(?:is|was|looks)\s+(?:(?P<neg>wrong|not\s+(?:relevant|right|it|a\s+match)|"
                   rf"irrelevant|bad|incorrect|off)|(?P<pos>right|relevant|correct|good|spot\s+on|a\s+match|"
                   rf"what\s+i\s+(?:want|wanted|meant)))\b", re.IGNORECASE)
_EXPORT = re.compile(r"^(?:please\s+)?(?:export|save|download|write\s+out)\s+(?:these|them|those|the\s+(?:results|hits|"
                     r"images|tiles|chips)|this|it|that)(?:\s+(?:as|to)\s+(?P<fmt>geojson|json))?\b", re.IGNORECASE)
_SOURCE = re.compile(r"^(?:now\s+|and\s+|but\s+)?(?:only|just)\s+(?:the\s+ones?\s+|those\s+|results?\s+)?"
                     r"(?:from|in)\s+(?:the\s+)?source\s+[\"']?(?P<source>[\w.-]+)[\"']?\s*$", re.IGNORECASE)
_LABEL = re.compile(r"^(?:now\s+|and\s+|but\s+)?(?:only|just)\s+(?:the\s+ones?\s+|those\s+|the\s+)?"
                    r"(?:labell?ed\s+(?:as\s+)?)?[\"']?(?P<label>[\w -]+?)[\"']?\s*$", re.IGNORECASE)
_WITHOUT = re.compile(r"^(?:now\s+|and\s+|but\s+)?(?:without|except|excluding|exclude|no\s+more|minus|but\s+not|"
                      r"and\s+not)\s+(?:the\s+|any\s+)?(?P<neg>.+?)\s*$", re.IGNORECASE)


def _nth(m: re.Match[str], hits: list[dict[str, Any]]) -> dict[str, Any]:
    word = (m.group("word") or "").lower()
    n = int(m.group("num")) if m.group("num") else ORDINALS.get(word) or int(re.sub(r"\D", "", word) or 0)
    index = len(hits) - 1 if n == -1 else n - 1
    if not 0 <= index < len(hits):
        raise LookupError(f"the last search showed {len(hits)} results; there is no result number {n}")
    return hits[index]


def _search(last: dict[str, Any], text: str, **changes: Any) -> dict[str, Any]:
    args = {k: last.get(k) for k in ("query", "image", "negative", "filters", "k")}
    args.update(changes)
    return {"intent": "search", "args": {k: v for k, v in args.items() if v not in (None, [], {})}, "text": text}


def read_followup(request: str, last: dict[str, Any] | None, labels: list[str] | None = None
                  ) -> list[dict[str, Any]] | None:
    """The commands a follow-up asks for against ``last`` (the thread's last search), or None when the
    request is not a follow-up. ``labels`` are the catalog's labels ("now only beaches" needs one). Concept
    requests (:func:`agents.concepts.read_concept_request`) are read first, with or without a last search."""
    concept = read_concept_request(request, last)
    if concept is not None:
        return concept
    if not last:
        return None
    text = request.strip().rstrip(".!?")
    hits = list(last.get("hits") or [])
    if m := _MORE_LIKE.match(text):
        return [_search(last, text, image=_nth(m, hits)["image_id"], query=None, filters=last.get("filters"))]
    if m := _MARK.match(text):
        hit = _nth(m, hits)
        return [{"intent": "feedback", "text": text, "args": {
            "image_id": hit["image_id"], "relevant": m.group("pos") is not None, "query": last.get("query"),
            "query_id": last.get("query_id")}}]
    if m := _EXPORT.match(text):
        return [{"intent": "export", "text": text, "args": {"hits": hits, "query": last.get("query"),
                                                             "query_id": last.get("query_id"),
                                                             "format": (m.group("fmt") or "geojson").lower()}}]
    return _refinement(text, last, labels or [])


def _refinement(text: str, last: dict[str, Any], labels: list[str]) -> list[dict[str, Any]] | None:
    filters = dict(last.get("filters") or {})
    if m := _SOURCE.match(text):
        return [_search(last, text, filters={**filters, "source": m.group("source")})]
    if (m := _LABEL.match(text)) and (label := _known_label(m.group("label"), labels)):
        return [_search(last, text, filters={**filters, "label": label})]
    if m := _WITHOUT.match(text):
        terms = [t.strip() for t in re.split(r",|\bor\b|\band\b|\bnor\b", m.group("neg")) if t.strip()]
        return [_search(last, text, negative=[*(last.get("negative") or []), *terms])]
    return None


def _known_label(words: str, labels: list[str]) -> str | None:
    """A catalog label named by ``words``: equal without case, or its plural ("beaches" -> beach)."""
    low = words.strip().lower()
    for label in labels:
        name = label.lower()
        if low in (name, name + "s", name + "es") or low.replace(" ", "") == name:
            return label
    return None


def remember_search(results: Sequence[StepResult]) -> dict[str, Any] | None:
    """The last successful search of a run, as the thread keeps it (ids, scores, labels: no vectors)."""
    found = next((r for r in reversed(results) if r["action"] == "search_images" and r["status"] == "ok"), None)
    if found is None:
        return None
    data = found["data"]
    return {k: data.get(k) for k in ("query", "image", "negative", "filters", "k", "query_id", "index")} | {
        "hits": [{"image_id": h["image_id"], "score": h["score"], "label": h.get("label")} for h in data["hits"]]}


__all__ = ["read_followup", "remember_search"]
