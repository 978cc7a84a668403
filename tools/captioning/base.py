"""The Captioner interface shared by every captioning backend, and the input each one receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image


@dataclass
class CaptionInput:
    """What a captioner may look at for one image.

    ``image`` is only loaded when the captioner says it ``needs_pixels``; the template and tags
    captioners work from ``label``, ``folder`` and ``tags`` alone.
    """

    image_id: str
    uri: str
    label: str | None = None
    label_text: str | None = None
    folder: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    image: Image.Image | None = None


@runtime_checkable
class Captioner(Protocol):
    """Turns a batch of images into captions. One backend per caption ``source``."""

    @property
    def source(self) -> str:
        """Caption source recorded in the catalog: one of human, template, tags, blip, blip2."""
        ...

    @property
    def model_id(self) -> str:
        """Model identifier recorded with each caption (a Hub id, a local path, or a rule-set version)."""
        ...

    @property
    def needs_pixels(self) -> bool:
        """Whether ``CaptionInput.image`` must be filled (decoded RGB) before ``caption`` is called."""
        ...

    def caption(self, batch: list[CaptionInput]) -> list[list[str]]:
        """Return, for each input, one or more captions (an empty list when it has nothing to say)."""
        ...
