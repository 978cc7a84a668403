"""What the HTTP API shows of the server's files: paths relative to their data root, never the roots or the home.

Hits, chat outcomes and error messages are made by code that knows absolute paths (the CLI shows them to
the user who owns them). Over HTTP a caller sees ``ucm_sample/images/beach/beach01.jpg`` rather than
``/srv/data/ucm_sample/images/...``, and ``<data root>`` / ``<home>`` where a message named them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Redactor:
    """Rewrites strings (and the strings inside lists and dicts) for an HTTP caller."""

    def __init__(self, roots: list[Path] | tuple[Path, ...], home: Path) -> None:
        # longest first, so that a root inside another one (or the home inside a root) is replaced as a whole
        self._roots = sorted((str(r) for r in roots if str(r) not in ("", "/")), key=len, reverse=True)
        self._home = str(home.resolve())

    def path(self, uri: str | None) -> str | None:
        """A catalogued file as a path relative to the data root holding it (as is when none does)."""
        if uri is None:
            return None
        for root in self._roots:
            if uri.startswith(root + "/"):
                return uri[len(root) + 1:]
        return self.text(uri)

    def text(self, text: str) -> str:
        out = text.replace(self._home, "<home>")
        for root in self._roots:
            out = out.replace(root + "/", "").replace(root, "<data root>")
        return out

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


__all__ = ["Redactor"]
