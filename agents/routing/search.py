"""Slots of a search command: the example image, ``k``, metadata filters, negative terms and the query text."""

from __future__ import annotations

import re
from typing import Any

from agents.routing.paths import QUOTED_RE, find_paths, path_kind
from agents.routing.text import NUM, cut, squash, to_number

_K_RES = (
    re.compile(r"(?<!\S)--?k(?:\s*=\s*|\s+)(\d+)\b", re.IGNORECASE),
    re.compile(r"\bk\s*=\s*(\d+)\b", re.IGNORECASE),
    re.compile(
        rf"\b(?:the\s+)?(?:top|first|best)[\s-]*{NUM}"
        r"(?:\s+(?:results?|hits?|matches|images?|tiles?|pictures?|photos?|items?|ones))?"
        r"(?:\s+(?:for|of|with|showing))?\b",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b{NUM}\s+(?:results?|hits?|matches|images?|tiles?|pictures?|photos?|items?)"
        r"(?:\s+(?:for|of|with|showing))?\b",
        re.IGNORECASE,
    ),
)
_FILTER_KEYS = "label|source|split|folder|caption_source|dataset"
_FILTER_RES = (
    re.compile(rf"\b({_FILTER_KEYS})\s*[=:]\s*(\"[^\"]+\"|'[^']+'|[\w.-]+)", re.IGNORECASE),
    re.compile(
        r"\b(?:with|having|of)\s+(?:the\s+)?(label|source)\s+(\"[^\"]+\"|'[^']+'|[\w.-]+)", re.IGNORECASE
    ),
    re.compile(r"\b(?:from|in)\s+(?:the\s+)?(source)\s+(\"[^\"]+\"|'[^']+'|[\w.-]+)", re.IGNORECASE),
    re.compile(r"\b(?:labell?ed)\s+(?:as\s+)?(\"[^\"]+\"|'[^']+'|[\w.-]+)", re.IGNORECASE),
)
_NEGATION_RE = re.compile(
    r"(?:,\s*|\s+)\b(?:but\s+not|but\s+no|and\s+not|excluding|exclude|except(?:\s+for)?|without|minus|not)\b\s*",
    re.IGNORECASE,
)
_IMAGE_ID_RE = re.compile(
    r"\b(?:image|tile|picture|photo|id)\s+(?:id\s+)?(?:sha256:)?([0-9a-f]{6,64})\b", re.IGNORECASE
)
_SIMILAR_RE = re.compile(
    r"(?:\b(?:more|other)\s+)?(?:\b(?:images?|tiles?|pictures?|photos?|ones?|anything|something)\s+)?"
    r"\b(?:(?:that\s+(?:looks?|are|is)\s+)?(?:similar\s+to|like|resembling|close\s+to|near-duplicates\s+of))\s+"
    r"(?:the\s+|this\s+)?(?:(?:example\s+)?(?:image|tile|picture|photo)\s+)?(?:id\s+)?(?:at\s+)?$",
    re.IGNORECASE,
)
_QUERY_PREFIX_RES = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^(?:please|kindly|now|just|also|then|and|ok|okay|hey)\b[\s,]*",
        r"^(?:can|could|would|will)\s+you\s+(?:please\s+)?",
        r"^(?:i\s*'?\s*m|i\s+am)\s+(?:looking|searching)\s+for\s+",
        r"^(?:i\s+(?:want|need|would\s+like|'d\s+like)(?:\s+to)?(?:\s+see)?|help\s+me|let'?s)\s+",
        r"^(?:search(?:\s+(?:the\s+)?(?:index|catalog|imagery))?(?:\s+for)?|find(?:\s+me)?|show(?:\s+me)?|"
        r"look(?:ing)?\s+for|locate|retrieve|get(?:\s+me)?|give\s+me|fetch|display|return|bring\s+up|"
        r"pull\s+up|query\s*:?|search\s*:)\s*",
        r"^(?:where\s+(?:are|is|can\s+i\s+(?:see|find))|are\s+there(?:\s+any)?|is\s+there(?:\s+any)?|"
        r"do\s+we\s+have(?:\s+any)?|have\s+we\s+got(?:\s+any)?)\s+",
        r"^which\s+(?:images?|tiles?|pictures?|photos?|scenes?)\s+(?:show|contain|have|depict|include)s?\s+",
        r"^(?:any|some|all|the|a|an)\s+",
        r"^(?:(?:satellite|aerial)\s+)?(?:images?|imagery|pictures?|photos?|tiles?|scenes?)"
        r"(?:\s+(?:of|with|showing|containing|that\s+(?:show|contain)|depicting))?(?:\s+|$)",
        r"^(?:of|for|with|showing)\s+",
        # filler that says "looks like": "tiles that look like vineyards", "something resembling farmland"
        r"^(?:(?:places?|areas?|spots?|locations?|things?|ones?|something|anything|stuff)\s+)?"
        r"(?:(?:that|which)\s+)?(?:(?:look|looks|looking|seem|seems|appear|appears)\s+(?:like|to\s+be)|"
        r"resembl(?:e|es|ing)|similar\s+to)\s+",
        r"^(?:(?:places?|areas?|spots?|locations?)\s+)?(?:(?:that|which|where)\s+)?"
        r"(?:show|shows|contain|contains|have|has|depict|depicts|there\s+(?:are|is))\s+",
    )
)
_NUMBER = r"-?\d+(?:\.\d+)?"
#: an area: "in scene 3fa9c2" (an id or prefix, or a raster file), "in bbox W,S,E,N"
_SCENE_RE = re.compile(
    r"\b(?:(?:in|of|inside|within|across|over|on)\s+)?(?:the\s+)?scene\s+(?:id\s+)?"
    r"([0-9a-f]{6,64}|[\w./~-]+\.(?:tiff?|jp2|vrt|img))\b", re.IGNORECASE)
_BBOX_RE = re.compile(
    rf"\b(?:(?:in(?:side)?|within)\s+)?(?:the\s+)?(?:bbox|bounding\s+box|box|area)\s*[=:]?\s*\(?\s*"
    rf"({_NUMBER}(?:\s*,\s*{_NUMBER}){{3}})\s*\)?", re.IGNORECASE)
_QUERY_SUFFIX_RE = re.compile(
    r"(?:\s+(?:please|in\s+the\s+(?:catalog|index|data(?:set)?)|for\s+me))+\s*$", re.IGNORECASE
)


def search_args(text: str) -> dict[str, Any]:
    """Slots of a search: ``scene``, ``bbox``, ``image``, ``k``, ``filters``, ``negative`` and what is left,
    the ``query``.

    Each slot is cut out of the text as it is read, in this order, so that what remains is the query.
    """
    args: dict[str, Any] = {}
    s = _take_area(text, args)
    s = _take_image(s, args)
    s = _take_k(s, args)
    s = _take_filters(s, args)
    s = _take_negative(s, args)
    # What is left once the command words are stripped; a bare count opening it ("show me 15 marinas")
    # is how many results to return.
    query = _strip_query(s)
    if "k" not in args and (m := re.match(r"(\d+)\s+(?=\S)", query)):
        args["k"] = int(m.group(1))
        query = query[m.end() :]
    if query:
        args["query"] = query
    return args


def _take_area(s: str, args: dict[str, Any]) -> str:
    """Where to look: a scene ("in scene 3fa9c2") and/or a box ("in bbox -122.5,37.7,-122.3,37.9")."""
    if m := _BBOX_RE.search(s):
        args["bbox"] = [float(v) for v in m.group(1).replace(" ", "").split(",")]
        s = cut(s, m.start(), m.end())
    if m := _SCENE_RE.search(s):
        args["scene"] = m.group(1)
        s = cut(s, m.start(), m.end())
    return s


def _take_image(s: str, args: dict[str, Any]) -> str:
    """An example image (a path to an image file, or "image <hex id>") with its "similar to" phrase."""
    image_span: tuple[int, int] | None = None
    for hit in find_paths(s):
        if path_kind(hit.path) == "image":
            args["image"] = hit.path
            image_span = (hit.start, hit.end)
            break
    if image_span is None and (m := _IMAGE_ID_RE.search(s)):
        args["image"] = m.group(1)
        image_span = (m.start(), m.end())
    if image_span is None:
        return s
    sim = _SIMILAR_RE.search(s[: image_span[0]])
    start = sim.start() if sim else image_span[0]
    return cut(s, start, image_span[1])


def _take_k(s: str, args: dict[str, Any]) -> str:
    """How many results: ``k=20``, ``--k 20``, "top 5", "ten images"."""
    for rx in _K_RES:
        m = rx.search(s)
        if m:
            args["k"] = to_number(m.group(1))
            return cut(s, m.start(), m.end())
    return s


def _take_filters(s: str, args: dict[str, Any]) -> str:
    """Metadata filters: ``label=beach``, "with label beach", "from source ucm", "labelled harbor"."""
    filters: dict[str, str] = {}
    for rx in _FILTER_RES:
        while m := rx.search(s):
            key, value = ("label", m.group(1)) if m.lastindex == 1 else (m.group(1).lower(), m.group(2))
            filters.setdefault(key, value.strip("\"'"))
            s = cut(s, m.start(), m.end())
    if filters:
        args["filters"] = filters
    return s


def _take_negative(s: str, args: dict[str, Any]) -> str:
    """Negative terms: everything after the first negation ("but not", "without", "except"), split on or/and."""
    m = _NEGATION_RE.search(s)
    if not m:
        return s
    tail = s[m.end() :]
    terms = [
        squash(re.sub(r"^(?:any|the|a|an)\s+", "", t.strip(), flags=re.IGNORECASE))
        for t in re.split(r",|\bor\b|\band\b|\bnor\b", tail, flags=re.IGNORECASE)
    ]
    negative = [t for t in terms if t]
    if negative:
        args["negative"] = negative
    return s[: m.start()]


def _strip_query(s: str) -> str:
    """The query text: quotes unwrapped, leading command words and trailing politeness stripped."""
    s = squash(s)
    s = QUOTED_RE.sub(lambda m: next(g for g in m.groups() if g is not None), s)
    changed = True
    while changed and s:
        changed = False
        for rx in _QUERY_PREFIX_RES:
            new = rx.sub("", s, count=1)
            if new != s:
                s, changed = squash(new), True
    return squash(_QUERY_SUFFIX_RE.sub("", s))
