"""Slot extraction per intent: paths, captioner, model, epochs, dataset, split, rounds, the explained subject."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from agents.routing.detect import detect_args
from agents.routing.paths import MANIFEST_EXTS, find_paths, path_kind, suffix
from agents.routing.search import search_args
from agents.routing.text import MODEL_ID_RE, MODEL_RE, NUM, to_number
from tools.captioning.factory import CAPTIONER_NAMES

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

#: what users call each captioner of :mod:`tools.captioning.factory`, in the order they are tried
#: ("blip2" before "blip", whose pattern also matches "blip 2")
_CAPTIONER_RES: dict[str, re.Pattern[str]] = {
    "blip2": re.compile(r"\bblip[\s_-]?2\b"),
    "blip": re.compile(r"\bblip\b"),
    "template": re.compile(r"\btemplates?\b|\bfrom\s+(?:the\s+)?(?:labels?|folder\s+names?)\b"),
    "tags": re.compile(r"\b(?:metadata\s+)?tags?\b"),
}
#: the captioner names the router recognises: those the captioning tools offer, in matching order
CAPTIONERS = tuple(name for name in _CAPTIONER_RES if name in CAPTIONER_NAMES)
_ACTIVE_MODEL_RE = re.compile(
    r"\b(?:the\s+)?(?:active|current|live|production|deployed)\s+(?:model|checkpoint|version)\b",
    re.IGNORECASE,
)
_TINY_MODEL_RE = re.compile(r"\btiny\s+model\b", re.IGNORECASE)
_EPOCHS_RES = (
    re.compile(rf"\b{NUM}\s+epochs?\b", re.IGNORECASE),
    re.compile(r"(?:--)?\bepochs?\s*[=:]?\s*(\d+)\b", re.IGNORECASE),
)
_ROUNDS_RE = re.compile(
    rf"\b{NUM}\s+(?:more\s+)?(?:improvement\s+)?(?:rounds?|cycles?|iterations?|times|steps?)\b",
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
_EXPLAIN_SUBJECTS = (
    ("confusion", re.compile(r"confus|mix(?:es|ed|ing)?\s+up|mistak|go(?:es)?\s+wrong|get\s+wrong|wrong\s+about",
                             re.IGNORECASE)),
    ("promote", re.compile(r"promot|reject|active|chose|choose|choice|switch", re.IGNORECASE)),
    ("train", re.compile(r"retrain|train|fine[- ]?tun", re.IGNORECASE)),
    ("index", re.compile(r"index|rebuil|embed", re.IGNORECASE)),
    ("caption", re.compile(r"caption", re.IGNORECASE)),
    ("evaluate", re.compile(r"evaluat|eval\b", re.IGNORECASE)),
    ("ingest", re.compile(r"ingest|import", re.IGNORECASE)),
)


def extract_args(intent: str, clause: str) -> dict[str, Any]:
    """Read the slots of ``intent`` from one clause; returns only the slots that are present.

    A misspelt leading verb should be corrected first (:meth:`TypoFixer.fix_leading`), so that it is
    stripped from a search query like the word it stands for.
    """
    text = clause.strip()
    extractor = _EXTRACTORS.get(intent)
    return extractor(text) if extractor else {}


#: "using the folder names as labels", "label them by folder", "folders are the labels"
_FOLDER_LABELS = re.compile(r"folder(?:s|'s)?(?:\s+names?)?\s+as\s+(?:the\s+)?(?:class(?:es)?|labels?)"
                            r"|label(?:s|led|ed)?\s+(?:them\s+|it\s+)?(?:by|from|with|after)\s+(?:the\s+|their\s+)?"
                            r"folders?|folders?\s+(?:names?\s+)?(?:are|give|say)\s+(?:the\s+)?(?:labels?|class)",
                            re.IGNORECASE)
#: "caption from the folder names", "use folder names for the captions"
_FOLDER_CAPTIONS = re.compile(r"folders?(?:'s)?(?:\s+names?)?", re.IGNORECASE)


def _ingest_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    paths = find_paths(text)
    if paths:
        path = paths[0].path
        args["path"] = path
        args["manifest"] = suffix(path) in MANIFEST_EXTS
    if _FOLDER_LABELS.search(text):
        args["labels_from_folders"] = True
    return args


def _caption_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    captioner = _captioner(text)
    if captioner:
        args["captioner"] = captioner
    if _FOLDER_CAPTIONS.search(text):
        args["from_folders"] = True
    paths = find_paths(text)
    if paths:
        args["path"] = paths[0].path
    return args


def _captioner(text: str) -> str | None:
    low = text.lower()
    for name in CAPTIONERS:
        if _CAPTIONER_RES[name].search(low):
            return name
    return None


def _model(text: str) -> str | None:
    m = MODEL_RE.search(text)
    if m:
        return m.group(1).lower()
    m = MODEL_ID_RE.search(text)
    if m:
        return m.group(1)
    for hit in find_paths(text):
        if path_kind(hit.path) == "checkpoint":
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
            return to_number(m.group(1))
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
    for hit in find_paths(text):
        if path_kind(hit.path) in {"manifest", "folder"}:
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
    return {"rounds": to_number(m.group(1))} if m else {}


_DECISION_ID = re.compile(r"(?:decision\s*#?\s*|#)(\d+)\b", re.IGNORECASE)
_INDEX_NAME = re.compile(r"\b(tiles_[a-z0-9_]+)\b", re.IGNORECASE)
_LATEST = re.compile(r"\b(?:last|latest|most\s+recent|previous|that)\b", re.IGNORECASE)


def _explain_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for subject, rx in _EXPLAIN_SUBJECTS:
        if rx.search(text):
            args["subject"] = subject
            break
    model = MODEL_RE.search(text) or MODEL_ID_RE.search(text)
    if model:
        args["model"] = model.group(1)
    for key, rx in (("decision", _DECISION_ID), ("index", _INDEX_NAME)):
        found = rx.search(text)
        if found:
            args[key] = int(found.group(1)) if key == "decision" else found.group(1)
    if _LATEST.search(text):
        args["latest"] = True
    return args


_EXTRACTORS: dict[str, Callable[[str], dict[str, Any]]] = {
    "ingest": _ingest_args,
    "caption": _caption_args,
    "train": _train_args,
    "evaluate": _evaluate_args,
    "index": _index_args,
    "search": search_args,
    "detect": detect_args,
    "improve": _improve_args,
    "explain": _explain_args,
}
