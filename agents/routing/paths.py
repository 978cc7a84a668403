"""Paths in a command: find them (quoted or bare), and tell an image, a manifest, a checkpoint or a folder."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tools.imageio import IMAGE_SUFFIXES

#: what users point at as an image: the files ingest decodes, plus formats they name anyway
IMAGE_EXTS = IMAGE_SUFFIXES | {".bmp", ".gif", ".jp2"}
MANIFEST_EXTS = frozenset({".jsonl", ".csv"})
CHECKPOINT_EXTS = frozenset({".pt", ".pth", ".bin", ".safetensors", ".ckpt"})
#: every extension that makes a bare word a file name ("tiles.jsonl", "beach.png"), longest first
FILE_EXTS = "|".join(
    re.escape(ext[1:])
    for ext in sorted(
        IMAGE_EXTS | MANIFEST_EXTS | CHECKPOINT_EXTS | {".json", ".parquet"}, key=lambda e: (-len(e), e)
    )
)

QUOTED_RE = re.compile(r"\"([^\"]+)\"|(?<!\w)'([^']+)'(?!\w)|`([^`]+)`")
_PATH_RE = re.compile(
    r"(?<![\w/.~-])(?:"
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s,;\"'()]+"  # a URL: s3://bucket/key, file:///x, https://...
    r"|[A-Za-z]:\\[^\s,;\"'()]+"  # a Windows path
    r"|(?:~|\.{1,2})?/[^\s,;\"'()]+"  # /abs, ./rel, ../rel, ~/home
    r"|[\w.-]+(?:/[\w.-]+)+/?"  # rel/dir/file
    rf"|[\w-]+(?:\.[\w-]+)*\.(?:{FILE_EXTS})\b"  # a bare file name
    r")"
)
#: slash-separated numbers ("recall at 1/5/10") and fractions are not paths
_NOT_PATH = re.compile(r"^[\d/.]+$")
_NOT_PATHS = frozenset({"/", "./", "../", "~/"})
_NOT_PATHS_LOWER = frozenset({"and/or", "either/or"})

#: the words a path is replaced by in the text the encoder sees
PLACEHOLDERS = {
    "image": "this example image",
    "manifest": "a manifest file",
    "checkpoint": "a checkpoint file",
    "folder": "a folder",
}


@dataclass(frozen=True)
class PathHit:
    """One path found in a text, with its span."""

    start: int
    end: int
    path: str


def find_paths(text: str) -> list[PathHit]:
    """Return the paths in ``text``: quoted strings that look like paths, then unquoted path shapes."""
    hits: list[PathHit] = []
    taken: list[tuple[int, int]] = []
    for m in QUOTED_RE.finditer(text):
        inner = next(g for g in m.groups() if g is not None)
        if looks_like_path(inner):
            hits.append(PathHit(m.start(), m.end(), inner.strip()))
        taken.append((m.start(), m.end()))
    for m in _PATH_RE.finditer(text):
        if any(s <= m.start() < e for s, e in taken):
            continue
        path = m.group(0).rstrip(".,;:!?)")
        if path in _NOT_PATHS or path.lower() in _NOT_PATHS_LOWER or _NOT_PATH.match(path):
            continue
        hits.append(PathHit(m.start(), m.start() + len(path), path))
    return sorted(hits, key=lambda h: h.start)


def looks_like_path(s: str) -> bool:
    """Whether a quoted string is a path: it has a separator, starts with ``~`` or ends in a file extension."""
    s = s.strip()
    return bool(
        "/" in s or "\\" in s or s.startswith("~") or re.search(rf"\.(?:{FILE_EXTS})$", s, re.IGNORECASE)
    )


def suffix(path: str) -> str:
    """The lower-cased extension of ``path`` (``""`` when it has none)."""
    m = re.search(r"(\.[A-Za-z0-9]+)$", path.rstrip("/"))
    return m.group(1).lower() if m else ""


def path_kind(path: str) -> str:
    """``image``, ``manifest``, ``checkpoint`` or ``folder``, by the extension."""
    ext = suffix(path)
    if ext in IMAGE_EXTS:
        return "image"
    if ext in MANIFEST_EXTS or ext == ".json":
        return "manifest"
    if ext in CHECKPOINT_EXTS:
        return "checkpoint"
    return "folder"
