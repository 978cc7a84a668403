"""The offline intent router: MiniLM nearest examples pick a command's intent, explicit rules read its slots.

Without an LLM, SkyScout still understands chat commands. The router embeds the utterance with a sentence
encoder (the pretrained all-MiniLM-L6-v2 by default), compares it by cosine similarity with the labelled
examples in :mod:`prompts.intents`, and scores each intent by the mean similarity of its ``k`` nearest
examples (a per-class k-NN). It accepts the best intent only when that score reaches ``threshold`` and
beats the runner-up by ``margin``; otherwise it answers ``unknown``, says what it did not understand and
suggests commands, rather than guessing. Slots (paths, ``k``, filters, the query text, negative terms,
an example image, captioner and model names, epochs, datasets) are read with explicit rules.

Two small rule layers help the embeddings where they are weak. A misspelt leading command word is
corrected ("serach" -> "search") when it is one typo from a command word and not a real word of the
MiniLM vocabulary. And a few question openings narrow the candidates, because mean pooling lets the
content words outweigh them: "why ..." may only be ``explain`` (or out of scope), "how many ..." only
``status``; the examples still decide between those and ``unknown``, and the threshold still applies.

A request may hold several commands ("ingest X, train a model and find beaches"): it is split on clause
boundaries (``;``, ``then`` before a command word, and ``,``/``and`` where both sides start with a command
verb), each clause is
routed on its own, and the result carries the plan of steps. The top-level ``intent`` and ``args`` are
those of the first step (the one to run first); ``confidence`` is the lowest step confidence; the request
counts as ``understood`` only when every step is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from prompts.intents import (
    AMBIGUOUS_TEMPLATE,
    INTENT_EXAMPLES,
    INTENTS,
    NOT_UNDERSTOOD_TEMPLATE,
    OUT_OF_SCOPE_TEMPLATE,
    PARTLY_UNDERSTOOD_TEMPLATE,
    SUGGESTED_COMMANDS,
)

#: a text encoder: a batch of texts in, one L2-normalised row per text out
TextEncoder = Callable[[list[str]], np.ndarray]

UNKNOWN = "unknown"

#: default decision rule, chosen by 5-fold cross-validation on the labelled examples (not on the test
#: corpus); the margin turns near-ties into "please rephrase" rather than a coin flip
DEFAULT_THRESHOLD = 0.30
DEFAULT_MARGIN = 0.01
DEFAULT_K = 3


class PlanStep(BaseModel):
    """One command of a (possibly multi-step) request: its intent, its slots and the clause it came from."""

    intent: str
    args: dict[str, Any] = Field(default_factory=dict)
    text: str
    confidence: float = 0.0
    understood: bool = True


class RoutedRequest(BaseModel):
    """What the router made of an utterance; ``intent``/``args`` are those of the first step of ``plan``."""

    intent: str
    confidence: float
    args: dict[str, Any] = Field(default_factory=dict)
    plan: list[PlanStep] = Field(default_factory=list)
    understood: bool
    message: str | None = None


# ----------------------------------------------------------------------------------------------------
# Lexicons and patterns for slot extraction
# ----------------------------------------------------------------------------------------------------

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".jp2"})
MANIFEST_EXTS = frozenset({".jsonl", ".csv"})
CHECKPOINT_EXTS = frozenset({".pt", ".pth", ".bin", ".safetensors", ".ckpt"})
_FILE_EXTS = "jsonl|json|csv|parquet|jpe?g|png|tiff?|webp|bmp|gif|jp2|pt|pth|bin|safetensors|ckpt"

#: the captioner names and what users call them
CAPTIONERS = ("blip2", "blip", "template", "tags")
#: known dataset names users refer to by name (anything else is given as a path or ``dataset=...``)
KNOWN_DATASETS = (
    "eurosat",
    "ucm_captions",
    "ucm",
    "rsicd",
    "rsitmd",
    "sydney_captions",
    "whu-rs19",
    "aid",
    "nwpu",
    "skyscript",
    "resisc45",
)

_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "hundred": 100,
    "once": 1,
    "twice": 2,
}
_NUM = r"(\d+|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"

#: verbs that start a command; a clause boundary at "," or "and" needs one on both sides
COMMAND_VERBS = frozenset(
    {
        "ingest", "import", "add", "load", "register", "upload", "scan",
        "caption", "recaption", "describe", "annotate",
        "train", "retrain", "fine-tune", "finetune", "fit",
        "evaluate", "eval", "benchmark", "test", "score", "measure", "assess",
        "index", "reindex", "re-index", "build", "rebuild", "refresh", "embed", "update",
        "search", "find", "look", "locate", "retrieve",
        "improve", "optimise", "optimize", "run", "start", "launch", "kick",
        "explain", "make", "create", "generate", "produce", "write", "compute",
    }
)  # fmt: skip
#: words the leading-word typo fixer may correct to (a superset of the command verbs)
_TYPO_TARGETS = sorted(
    COMMAND_VERBS | {"show", "status", "why", "what", "how", "which", "where", "list", "give", "tell"}
)
_TYPO_TARGETS_SET = frozenset(_TYPO_TARGETS)
#: fillers before the verb of a clause
_FILLER_RE = re.compile(
    r"^(?:(?:please|kindly|now|also|just|then|and|first|next|finally|afterwards|after that|"
    r"can you|could you|would you|will you|go ahead and|i want to|i'd like to|i would like to|"
    r"let's|lets|let us)[\s,]+)+",
    re.IGNORECASE,
)

_QUOTED_RE = re.compile(r"\"([^\"]+)\"|(?<!\w)'([^']+)'(?!\w)|`([^`]+)`")
_PATH_RE = re.compile(
    r"(?<![\w/.~-])(?:"
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s,;\"'()]+"  # a URL: s3://bucket/key, file:///x, https://...
    r"|[A-Za-z]:\\[^\s,;\"'()]+"  # a Windows path
    r"|(?:~|\.{1,2})?/[^\s,;\"'()]+"  # /abs, ./rel, ../rel, ~/home
    r"|[\w.-]+(?:/[\w.-]+)+/?"  # rel/dir/file
    rf"|[\w-]+(?:\.[\w-]+)*\.(?:{_FILE_EXTS})\b"  # a bare file name
    r")"
)
_MODEL_RE = re.compile(
    r"(?<![\w/.-])((?:skyscout|skyclip|remoteclip|open_?clip)-[\w.-]*[\w])(?![\w/-])", re.IGNORECASE
)
_MODEL_ID_RE = re.compile(r"(?<![\w/.-])(mv-[\w-]*\w)(?![\w/-])", re.IGNORECASE)
_ACTIVE_MODEL_RE = re.compile(
    r"\b(?:the\s+)?(?:active|current|live|production|deployed)\s+(?:model|checkpoint|version)\b",
    re.IGNORECASE,
)
_TINY_MODEL_RE = re.compile(r"\btiny\s+model\b", re.IGNORECASE)
_EPOCHS_RES = (
    re.compile(rf"\b{_NUM}\s+epochs?\b", re.IGNORECASE),
    re.compile(r"(?:--)?\bepochs?\s*[=:]?\s*(\d+)\b", re.IGNORECASE),
)
_ROUNDS_RE = re.compile(
    rf"\b{_NUM}\s+(?:more\s+)?(?:improvement\s+)?(?:rounds?|cycles?|iterations?|times|steps?)\b",
    re.IGNORECASE,
)
_ONCE_RE = re.compile(r"\b(once|twice)\b", re.IGNORECASE)
_DATASET_RES = (
    re.compile(r"\b(?:--)?dataset\s*[=:]\s*([\w./~-]+)", re.IGNORECASE),
    re.compile(r"\b(?:on|with|using|from)\s+(?:the\s+)?([\w.-]+)\s+(?:dataset|data\s?set)\b", re.IGNORECASE),
)
_SPLIT_RE = re.compile(
    r"\b(train(?:ing)?|val(?:idation)?|test|held[- ]?out|guard)\s+(?:split|set)\b", re.IGNORECASE
)
_SPLIT_NAMES = {"training": "train", "validation": "val", "heldout": "heldout", "held-out": "heldout"}

# search slots ---------------------------------------------------------------------------------------
_K_RES = (
    re.compile(r"(?<!\S)--?k(?:\s*=\s*|\s+)(\d+)\b", re.IGNORECASE),
    re.compile(r"\bk\s*=\s*(\d+)\b", re.IGNORECASE),
    re.compile(
        rf"\b(?:the\s+)?(?:top|first|best)[\s-]*{_NUM}"
        r"(?:\s+(?:results?|hits?|matches|images?|tiles?|pictures?|photos?|items?|ones))?"
        r"(?:\s+(?:for|of|with|showing))?\b",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b{_NUM}\s+(?:results?|hits?|matches|images?|tiles?|pictures?|photos?|items?)"
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
    )
)
_QUERY_SUFFIX_RE = re.compile(
    r"(?:\s+(?:please|in\s+the\s+(?:catalog|index|data(?:set)?)|for\s+me))+\s*$", re.IGNORECASE
)
_EXPLAIN_SUBJECTS = (
    ("promote", re.compile(r"promot|reject|active|chose|choose|choice|switch", re.IGNORECASE)),
    ("train", re.compile(r"retrain|train|fine[- ]?tun", re.IGNORECASE)),
    ("index", re.compile(r"index|rebuil|embed", re.IGNORECASE)),
    ("caption", re.compile(r"caption", re.IGNORECASE)),
    ("evaluate", re.compile(r"evaluat|eval\b", re.IGNORECASE)),
    ("ingest", re.compile(r"ingest|import", re.IGNORECASE)),
)


# ----------------------------------------------------------------------------------------------------
# Text helpers
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PathHit:
    start: int
    end: int
    path: str


def _find_paths(text: str) -> list[_PathHit]:
    """Return the paths in ``text``: quoted strings that look like paths, then unquoted path shapes."""
    hits: list[_PathHit] = []
    taken: list[tuple[int, int]] = []
    for m in _QUOTED_RE.finditer(text):
        inner = next(g for g in m.groups() if g is not None)
        if _looks_like_path(inner):
            hits.append(_PathHit(m.start(), m.end(), inner.strip()))
        taken.append((m.start(), m.end()))
    for m in _PATH_RE.finditer(text):
        if any(s <= m.start() < e for s, e in taken):
            continue
        path = m.group(0).rstrip(".,;:!?)")
        if (
            path in {"/", "./", "../", "~/"}
            or path.lower() in {"and/or", "either/or"}
            or _NOT_PATH.match(path)
        ):
            continue
        hits.append(_PathHit(m.start(), m.start() + len(path), path))
    return sorted(hits, key=lambda h: h.start)


#: slash-separated numbers ("recall at 1/5/10") and fractions are not paths
_NOT_PATH = re.compile(r"^[\d/.]+$")


def _looks_like_path(s: str) -> bool:
    s = s.strip()
    return bool(
        "/" in s or "\\" in s or s.startswith("~") or re.search(rf"\.(?:{_FILE_EXTS})$", s, re.IGNORECASE)
    )


def _suffix(path: str) -> str:
    m = re.search(r"(\.[A-Za-z0-9]+)$", path.rstrip("/"))
    return m.group(1).lower() if m else ""


def _path_kind(path: str) -> str:
    ext = _suffix(path)
    if ext in IMAGE_EXTS:
        return "image"
    if ext in MANIFEST_EXTS or ext == ".json":
        return "manifest"
    if ext in CHECKPOINT_EXTS:
        return "checkpoint"
    return "folder"


_PLACEHOLDERS = {
    "image": "this example image",
    "manifest": "a manifest file",
    "checkpoint": "a checkpoint file",
    "folder": "a folder",
}


def _to_number(token: str) -> int:
    return int(token) if token.isdigit() else _NUMBER_WORDS[token.lower()]


def _cut(text: str, start: int, end: int) -> str:
    return text[:start] + " " + text[end:]


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" \t,;:.!?-")


def _damerau(a: str, b: str) -> int:
    """Optimal-string-alignment edit distance (insert, delete, substitute, swap two neighbours)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


class TypoFixer:
    """Corrects a misspelt command word at the start of a clause ("serach" -> "search", "wy" -> "why").

    A word is corrected only when it is not in ``dictionary`` (real words such as "snow", "who" or "and"
    are never touched), starts with the same letter as a command word, and is one typo away from it (two
    for words of seven letters or more). With an empty dictionary nothing is corrected, since without one
    "snow" and "show" cannot be told apart.
    """

    def __init__(self, dictionary: Collection[str] = ()) -> None:
        self.dictionary = frozenset(w.lower() for w in dictionary)

    def correct(self, word: str) -> str | None:
        """The command word ``word`` is a misspelling of, or None."""
        low = word.lower()
        if not self.dictionary or low in self.dictionary or low in _TYPO_TARGETS_SET or len(low) < 2:
            return None
        best: tuple[int, str] | None = None
        for target in _TYPO_TARGETS:
            if target[0] != low[0] or low.startswith(target):
                continue
            dist = _damerau(low, target)
            if dist <= (1 if len(target) < 7 else 2) and (best is None or dist < best[0]):
                best = (dist, target)
        return best[1] if best else None

    def fix_leading(self, text: str) -> str:
        """``text`` with its first word after any fillers ("please", "can you") corrected if misspelt."""
        m = _FILLER_RE.match(text)
        start = m.end() if m else 0
        w = re.match(r"[A-Za-z][A-Za-z-]*", text[start:])
        if not w:
            return text
        fixed = self.correct(w.group(0))
        return text if fixed is None else text[:start] + fixed + text[start + len(w.group(0)) :]


_NO_FIXES = TypoFixer()


def _leading_word(clause: str) -> str | None:
    """The first word of a clause after any fillers, lower-cased."""
    m = re.match(r"[A-Za-z][A-Za-z-]*", _FILLER_RE.sub("", clause.strip()))
    return m.group(0).lower() if m else None


#: question openings whose intent the content words would otherwise drown out ("why did you re-index?"
#: is about a reason, not about indexing): they narrow the candidates; the examples still decide
#: between those and out-of-scope, and the threshold still applies
QUESTION_CUES: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = (
    (
        re.compile(
            r"^(?:(?:can|could|would)\s+you\s+)?(?:tell\s+me\s+|explain\s+)?"
            r"(?:why\b|how\s+come\b|what\s+(?:made|caused|led|prompted|triggered)\b"
            r"|what(?:'s|\s+is|\s+was)\s+the\s+reason\b|for\s+what\s+reason\b|justify\b)",
            re.IGNORECASE,
        ),
        frozenset({"explain"}),
    ),
    (re.compile(r"^how\s+many\b", re.IGNORECASE), frozenset({"status"})),
)


def question_cue(clause: str) -> frozenset[str] | None:
    """The intents a clause's opening restricts it to (besides ``unknown``), or None."""
    text = clause.strip()
    for rx, intents in QUESTION_CUES:
        if rx.match(text):
            return intents
    return None


_BOUNDARY_RE = re.compile(
    r"\s*;\s*(?:and\s+)?(?:then\s+)?"
    r"|\s*,\s*(?:and\s+)?then\s+|\s+and\s+then\s+|\s+then\s+"
    r"|\s*,\s*(?:and\s+)?|\s+and\s+",
    re.IGNORECASE,
)


def split_clauses(text: str, fixer: TypoFixer | None = None) -> list[str]:
    """Split a request into its commands.

    ``;`` always ends a command; ``then`` ends one when a command word follows ("... then status");
    ``,`` and ``and`` only when the text on both sides starts with a command verb, so "forests, rivers
    and lakes" and "why did you retrain and re-index?" stay whole. Quoted strings are never split.
    ``fixer`` corrects misspelt verbs before that check.
    """
    fixer = fixer or _NO_FIXES
    text = text.strip()
    # Protect quoted strings (they may hold commas or "and") behind placeholders.
    quoted: list[str] = []

    def _protect(m: re.Match[str]) -> str:
        quoted.append(m.group(0))
        return f"\x00{len(quoted) - 1}\x00"

    protected = _QUOTED_RE.sub(_protect, text)
    pieces = _BOUNDARY_RE.split(protected)
    seps = _BOUNDARY_RE.findall(protected)
    clauses: list[str] = [pieces[0]]
    for sep, piece in zip(seps, pieces[1:], strict=True):
        head = _leading_word(fixer.fix_leading(piece))
        if ";" in sep:
            split = True
        elif "then" in sep.lower():
            split = head in _TYPO_TARGETS_SET  # "... then status", but not "forest then turns into farmland"
        else:
            split = head in COMMAND_VERBS and _leading_word(fixer.fix_leading(clauses[-1])) in COMMAND_VERBS
        if split and piece.strip() and clauses[-1].strip():
            clauses.append(piece)
        else:
            clauses[-1] = clauses[-1] + sep + piece

    def _restore(s: str) -> str:
        return re.sub(r"\x00(\d+)\x00", lambda m: quoted[int(m.group(1))], s)

    out = [_restore(c).strip() for c in clauses]
    return [c for c in out if c] or [text]


def embedding_text(clause: str) -> str:
    """The text the encoder sees: paths replaced by a word for their kind, model names by "the model".

    Long paths would otherwise dominate the embedding with meaningless word pieces.
    """
    text = clause.strip()
    for hit in reversed(_find_paths(text)):
        text = text[: hit.start] + _PLACEHOLDERS[_path_kind(hit.path)] + text[hit.end :]
    # Model names and ids say which model, not what to do with it.
    text = _MODEL_RE.sub("the model", text)
    text = _MODEL_ID_RE.sub("the model version", text)
    return re.sub(r"\s+", " ", text).strip() or clause


# ----------------------------------------------------------------------------------------------------
# Slot extraction
# ----------------------------------------------------------------------------------------------------


def extract_args(intent: str, clause: str) -> dict[str, Any]:
    """Read the slots of ``intent`` from one clause; returns only the slots that are present.

    A misspelt leading verb should be corrected first (:meth:`TypoFixer.fix_leading`), so that it is
    stripped from a search query like the word it stands for.
    """
    text = clause.strip()
    extractor = _EXTRACTORS.get(intent)
    return extractor(text) if extractor else {}


def _ingest_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    paths = _find_paths(text)
    if paths:
        path = paths[0].path
        args["path"] = path
        args["manifest"] = _suffix(path) in MANIFEST_EXTS
    return args


def _caption_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    captioner = _captioner(text)
    if captioner:
        args["captioner"] = captioner
    paths = _find_paths(text)
    if paths:
        args["path"] = paths[0].path
    return args


def _captioner(text: str) -> str | None:
    low = text.lower()
    if re.search(r"\bblip[\s_-]?2\b", low):
        return "blip2"
    if re.search(r"\bblip\b", low):
        return "blip"
    if re.search(r"\btemplates?\b|\bfrom\s+(?:the\s+)?(?:labels?|folder\s+names?)\b", low):
        return "template"
    if re.search(r"\b(?:metadata\s+)?tags?\b", low):
        return "tags"
    return None


def _model(text: str) -> str | None:
    m = _MODEL_RE.search(text)
    if m:
        return m.group(1).lower()
    m = _MODEL_ID_RE.search(text)
    if m:
        return m.group(1)
    for hit in _find_paths(text):
        if _path_kind(hit.path) == "checkpoint":
            return hit.path
    if _ACTIVE_MODEL_RE.search(text):
        return "active"
    if _TINY_MODEL_RE.search(text):
        return "skyscout-tiny"
    return None


def _epochs(text: str) -> int | None:
    for rx in _EPOCHS_RES:
        m = rx.search(text)
        if m:
            return _to_number(m.group(1))
    return None


def _dataset(text: str) -> str | None:
    for rx in _DATASET_RES:
        m = rx.search(text)
        if m:
            return m.group(1)
    low = text.lower()
    for name in KNOWN_DATASETS:
        if re.search(rf"(?<![\w/.-]){re.escape(name)}(?![\w/-])", low):
            return name
    for hit in _find_paths(text):
        if _path_kind(hit.path) in {"manifest", "folder"}:
            return hit.path
    return None


def _model_args(text: str, *, epochs: bool, dataset: bool, split: bool) -> dict[str, Any]:
    args: dict[str, Any] = {}
    model = _model(text)
    if model:
        args["model"] = model
    if epochs and (n := _epochs(text)) is not None:
        args["epochs"] = n
    if dataset and (d := _dataset(text)):
        args["dataset"] = d
    if split and (m := _SPLIT_RE.search(text)):
        name = m.group(1).lower().replace(" ", "-")
        args["split"] = _SPLIT_NAMES.get(name, name)
    return args


def _train_args(text: str) -> dict[str, Any]:
    return _model_args(text, epochs=True, dataset=True, split=False)


def _evaluate_args(text: str) -> dict[str, Any]:
    return _model_args(text, epochs=False, dataset=True, split=True)


def _index_args(text: str) -> dict[str, Any]:
    return _model_args(text, epochs=False, dataset=False, split=False)


def _improve_args(text: str) -> dict[str, Any]:
    m = _ROUNDS_RE.search(text) or _ONCE_RE.search(text)
    return {"rounds": _to_number(m.group(1))} if m else {}


def _explain_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for subject, rx in _EXPLAIN_SUBJECTS:
        if rx.search(text):
            args["subject"] = subject
            break
    model = _MODEL_RE.search(text) or _MODEL_ID_RE.search(text)
    if model:
        args["model"] = model.group(1)
    return args


def _search_args(text: str) -> dict[str, Any]:
    """Slots of a search: ``image``, ``k``, ``filters``, ``negative`` and what is left, the ``query``."""
    args: dict[str, Any] = {}
    s = text

    # 1. an example image: a path to an image file, or "image <hex id>", with its "similar to" phrase
    image_span: tuple[int, int] | None = None
    for hit in _find_paths(s):
        if _path_kind(hit.path) == "image":
            args["image"] = hit.path
            image_span = (hit.start, hit.end)
            break
    if image_span is None and (m := _IMAGE_ID_RE.search(s)):
        args["image"] = m.group(1)
        image_span = (m.start(), m.end())
    if image_span is not None:
        head = s[: image_span[0]]
        sim = _SIMILAR_RE.search(head)
        start = sim.start() if sim else image_span[0]
        s = _cut(s, start, image_span[1])

    # 2. how many results
    for rx in _K_RES:
        m = rx.search(s)
        if m:
            args["k"] = _to_number(m.group(1))
            s = _cut(s, m.start(), m.end())
            break

    # 3. metadata filters
    filters: dict[str, str] = {}
    for rx in _FILTER_RES:
        while m := rx.search(s):
            key, value = ("label", m.group(1)) if m.lastindex == 1 else (m.group(1).lower(), m.group(2))
            filters.setdefault(key, value.strip("\"'"))
            s = _cut(s, m.start(), m.end())
    if filters:
        args["filters"] = filters

    # 4. negative terms: everything after the first negation
    m = _NEGATION_RE.search(s)
    if m:
        tail = s[m.end() :]
        s = s[: m.start()]
        terms = [
            _squash(re.sub(r"^(?:any|the|a|an)\s+", "", t.strip(), flags=re.IGNORECASE))
            for t in re.split(r",|\bor\b|\band\b|\bnor\b", tail, flags=re.IGNORECASE)
        ]
        negative = [t for t in terms if t]
        if negative:
            args["negative"] = negative

    # 5. the query: what is left once the command words are stripped; a bare count opening it
    #    ("show me 15 marinas") is how many results to return
    query = _strip_query(s)
    if "k" not in args and (m := re.match(r"(\d+)\s+(?=\S)", query)):
        args["k"] = int(m.group(1))
        query = query[m.end() :]
    if query:
        args["query"] = query
    return args


def _strip_query(s: str) -> str:
    s = _squash(s)
    s = _QUOTED_RE.sub(lambda m: next(g for g in m.groups() if g is not None), s)
    changed = True
    while changed and s:
        changed = False
        for rx in _QUERY_PREFIX_RES:
            new = rx.sub("", s, count=1)
            if new != s:
                s, changed = _squash(new), True
    s = _squash(_QUERY_SUFFIX_RE.sub("", s))
    return s


_EXTRACTORS: dict[str, Callable[[str], dict[str, Any]]] = {
    "ingest": _ingest_args,
    "caption": _caption_args,
    "train": _train_args,
    "evaluate": _evaluate_args,
    "index": _index_args,
    "search": _search_args,
    "improve": _improve_args,
    "explain": _explain_args,
}


# ----------------------------------------------------------------------------------------------------
# The router
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntentScores:
    """Per-intent scores of one clause, best first (only the candidates a question cue allows)."""

    ranked: list[tuple[str, float]]
    cue: frozenset[str] | None = None

    @property
    def best(self) -> tuple[str, float]:
        return self.ranked[0]

    @property
    def runner_up(self) -> tuple[str, float]:
        return self.ranked[1] if len(self.ranked) > 1 else (UNKNOWN, 0.0)


class IntentRouter:
    """Routes chat commands to intents by the nearest labelled examples, and extracts their slots.

    ``encoder`` maps a list of texts to L2-normalised rows (``tools.text_encoder.load_text_encoder()``
    when omitted, loaded on first use). An intent's score for an utterance is the mean cosine similarity
    of its ``k`` most similar examples; the best intent is accepted when its score is at least
    ``threshold`` and exceeds the runner-up's by at least ``margin``. ``examples`` maps intent -> example
    utterances (default: :data:`prompts.intents.INTENT_EXAMPLES`). The example embeddings are computed
    once per router, on first use.

    ``dictionary`` is the word list the typo fixer trusts (see :class:`TypoFixer`); by default the MiniLM
    vocabulary when its package is installed, else none, and then no typo is corrected.
    """

    def __init__(
        self,
        encoder: TextEncoder | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
        k: int = DEFAULT_K,
        examples: Mapping[str, Sequence[str]] | None = None,
        dictionary: Collection[str] | None = None,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        examples = INTENT_EXAMPLES if examples is None else examples
        unknown_intents = sorted(set(examples) - set(INTENTS))
        if unknown_intents:
            raise ValueError(f"examples name intents {unknown_intents}; valid intents are {list(INTENTS)}")
        empty = [name for name, texts in examples.items() if not texts]
        if empty or not examples:
            raise ValueError(f"every intent in examples needs at least one example; empty: {empty}")
        self._encoder = encoder
        self.threshold = threshold
        self.margin = margin
        self.k = k
        self.examples: dict[str, tuple[str, ...]] = {name: tuple(texts) for name, texts in examples.items()}
        self._labels = [name for name, texts in self.examples.items() for _ in texts]
        self._example_matrix: np.ndarray | None = None
        self.fixer = TypoFixer(_default_dictionary() if dictionary is None else dictionary)

    # -- encoding -------------------------------------------------------------------------------------

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            from tools.text_encoder import load_text_encoder

            self._encoder = load_text_encoder()
        return self._encoder

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.encoder(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(
                f"the encoder returned shape {vectors.shape} for {len(texts)} texts; expected (n, dim)"
            )
        # Normalise again: cheap, and it makes an encoder that forgot to normalise harmless.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.clip(norms, 1e-12, None)

    @property
    def example_matrix(self) -> np.ndarray:
        """The embeddings of all examples (rows in the order of ``self._labels``), computed once."""
        if self._example_matrix is None:
            texts = [embedding_text(t) for texts in self.examples.values() for t in texts]
            self._example_matrix = self._encode(texts)
        return self._example_matrix

    # -- scoring ----------------------------------------------------------------------------------------

    def _score_rows(self, sims: np.ndarray, cues: Sequence[frozenset[str] | None]) -> list[IntentScores]:
        """Per-class k-NN: an intent scores the mean similarity of its k nearest examples."""
        out: list[IntentScores] = []
        labels = np.asarray(self._labels)
        names = list(self.examples)
        for row, cue in zip(sims, cues, strict=True):
            scores: list[tuple[str, float]] = []
            allowed = [n for n in names if n in cue or n == UNKNOWN] if cue else names
            for name in allowed or names:
                col = row[labels == name]
                k = min(self.k, col.size)
                top = np.partition(col, col.size - k)[col.size - k :]
                scores.append((name, float(top.mean())))
            scores.sort(key=lambda t: t[1], reverse=True)
            out.append(IntentScores(scores, cue))
        return out

    def score(self, texts: Sequence[str]) -> list[IntentScores]:
        """Intent scores for each text taken as one clause (no splitting); for diagnostics and tuning."""
        fixed = [self.fixer.fix_leading(t.strip()) for t in texts]
        return self._score_fixed(fixed)

    def _score_fixed(self, clauses: list[str]) -> list[IntentScores]:
        queries = self._encode([embedding_text(c) for c in clauses])
        return self._score_rows(queries @ self.example_matrix.T, [question_cue(c) for c in clauses])

    # -- routing ------------------------------------------------------------------------------------------

    def route(self, text: str) -> RoutedRequest:
        """Route one utterance (possibly several commands) to a :class:`RoutedRequest`."""
        return self.route_many([text])[0]

    def route_many(self, texts: Sequence[str]) -> list[RoutedRequest]:
        """Route many utterances, encoding all their clauses in one batch."""
        if isinstance(texts, str):
            raise TypeError("route_many() takes a sequence of utterances; use route() for a single one")
        clauses_per_text = [split_clauses(t, self.fixer) if t.strip() else [] for t in texts]
        flat = [c for clauses in clauses_per_text for c in clauses]
        fixed = [self.fixer.fix_leading(c) for c in flat]
        scores = self._score_fixed(fixed) if flat else []
        results: list[RoutedRequest] = []
        i = 0
        for text, clauses in zip(texts, clauses_per_text, strict=True):
            span = range(i, i + len(clauses))
            decided = [self._step(flat[j], fixed[j], scores[j]) for j in span]
            i += len(clauses)
            results.append(self._request(text, decided))
        return results

    def _step(self, clause: str, fixed: str, scores: IntentScores) -> tuple[PlanStep, str | None]:
        """Decide one clause: the accepted intent and its slots, or ``unknown`` and why."""
        (best, score), (runner, runner_score) = scores.best, scores.runner_up
        suggestions = "; ".join(SUGGESTED_COMMANDS)
        message: str | None = None
        if score < self.threshold:
            message = NOT_UNDERSTOOD_TEMPLATE.format(
                text=clause, best=best, score=score, suggestions=suggestions
            )
        elif best == UNKNOWN:
            message = OUT_OF_SCOPE_TEMPLATE.format(text=clause, suggestions=suggestions)
        elif score - runner_score < self.margin:
            message = AMBIGUOUS_TEMPLATE.format(
                text=clause,
                first=best,
                second=runner,
                score=score,
                runner_up=runner_score,
                suggestions=suggestions,
            )
        if message is not None:
            # How sure we are that it is *not* a command we know: the out-of-scope score, or nothing.
            confidence = score if best == UNKNOWN and score >= self.threshold else 0.0
            step = PlanStep(intent=UNKNOWN, text=clause, confidence=round(confidence, 4), understood=False)
            return step, message
        step = PlanStep(
            intent=best,
            args=extract_args(best, fixed),
            text=clause,
            confidence=round(min(max(score, 0.0), 1.0), 4),
        )
        return step, None

    def _request(self, text: str, decided: list[tuple[PlanStep, str | None]]) -> RoutedRequest:
        if not decided:
            suggestions = "; ".join(SUGGESTED_COMMANDS)
            empty = NOT_UNDERSTOOD_TEMPLATE.format(
                text=text, best="nothing", score=0.0, suggestions=suggestions
            )
            return RoutedRequest(intent=UNKNOWN, confidence=0.0, understood=False, message=empty)
        steps = [step for step, _ in decided]
        misses = [(step, msg) for step, msg in decided if msg is not None]
        message: str | None = None
        if misses and len(steps) > 1:
            message = PARTLY_UNDERSTOOD_TEMPLATE.format(steps=", ".join(repr(s.text) for s, _ in misses))
            message += " " + " ".join(msg for _, msg in misses if msg)
        elif misses:
            message = misses[0][1]
        first = steps[0]
        return RoutedRequest(
            intent=first.intent,
            confidence=min(s.confidence for s in steps),
            args=dict(first.args),
            plan=steps,
            understood=not misses,
            message=message,
        )


def _default_dictionary() -> frozenset[str]:
    from tools.text_encoder import TextEncoderUnavailableError, minilm_vocabulary

    try:
        return minilm_vocabulary()
    except TextEncoderUnavailableError:
        return frozenset()


def default_router(*, threshold: float = DEFAULT_THRESHOLD, margin: float = DEFAULT_MARGIN) -> IntentRouter:
    """An :class:`IntentRouter` over the pretrained MiniLM encoder and the examples in ``prompts.intents``."""
    from tools.text_encoder import load_text_encoder

    return IntentRouter(load_text_encoder(), threshold=threshold, margin=margin)


__all__ = [
    "IntentRouter",
    "IntentScores",
    "PlanStep",
    "QUESTION_CUES",
    "TypoFixer",
    "RoutedRequest",
    "default_router",
    "embedding_text",
    "extract_args",
    "question_cue",
    "split_clauses",
]
