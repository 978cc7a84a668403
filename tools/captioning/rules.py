"""Offline captioners that write sentences from labels, folder names and metadata tags (no pixels)."""

from __future__ import annotations

import hashlib

from tools.captioning.base import CaptionInput
from tools.captioning.quality import FOLDER_MODEL
from tools.captioning.text import humanize_label, join_phrases, tags_to_phrases
from tools.templates import LABEL_TEMPLATES, TAG_TEMPLATES


def _pick(image_id: str, templates: tuple[str, ...], n: int) -> list[str]:
    """``n`` distinct templates chosen by the image id: varied across images, stable across runs."""
    start = int(hashlib.sha256(image_id.encode()).hexdigest()[:8], 16)
    step = 3 if len(templates) % 3 else 1  # walk the list with a stride so neighbours differ
    return [templates[(start + k * step) % len(templates)] for k in range(min(n, len(templates)))]


def _sentence(template: str, phrase: str) -> str:
    text = template.format(phrase)
    return text[0].upper() + text[1:]


class TemplateCaptioner:
    """Captions from an image's class label in several sentence frames; from its folder's name only when
    ``from_folders`` (a folder such as "new batch b" says little, so such captions rank lowest)."""

    source = "template"
    model_id = "template-v1"
    needs_pixels = False

    def __init__(self, per_image: int = 3, *, from_folders: bool = False) -> None:
        self.per_image = per_image
        self.from_folders = from_folders

    def model_of(self, item: CaptionInput) -> str:
        """The model id recorded with this item's captions: label-based or folder-based."""
        return self.model_id if item.label else FOLDER_MODEL

    def caption(self, batch: list[CaptionInput]) -> list[list[str]]:
        out: list[list[str]] = []
        for item in batch:
            name = item.label or (item.folder if self.from_folders else None)
            if not name:
                out.append([])
                continue
            phrase = humanize_label(name, item.label_text if item.label else None)
            out.append([_sentence(t, phrase) for t in _pick(item.image_id, LABEL_TEMPLATES, self.per_image)])
        return out


class TagsCaptioner:
    """Captions from metadata tags (e.g. OpenStreetMap ``key=value`` pairs), the way SkyScript built its own."""

    source = "tags"
    model_id = "tags-v1"
    needs_pixels = False

    def __init__(self, per_image: int = 2) -> None:
        self.per_image = per_image

    def caption(self, batch: list[CaptionInput]) -> list[list[str]]:
        out: list[list[str]] = []
        for item in batch:
            phrases = tags_to_phrases(item.tags)
            if not phrases:
                out.append([])
                continue
            phrase = join_phrases(phrases)
            out.append([_sentence(t, phrase) for t in _pick(item.image_id, TAG_TEMPLATES, self.per_image)])
        return out
