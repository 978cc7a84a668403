"""Choose a captioning backend by name; heavy backends are imported only when asked for."""

from __future__ import annotations

from typing import Literal, get_args

from tools.captioning.base import Captioner

CaptionerName = Literal["template", "tags", "blip", "blip2"]
CAPTIONER_NAMES: tuple[str, ...] = get_args(CaptionerName)
DEFAULT_MODELS = {
    "blip": "Salesforce/blip-image-captioning-base",
    "blip2": "Salesforce/blip2-opt-2.7b",
}


def create_captioner(
    name: str, *, model: str | None = None, device: str = "auto", batch_size: int = 16, from_folders: bool = False
) -> Captioner:
    """Build the captioner called ``name``; ``model`` overrides a neural backend's Hub id or directory;
    ``from_folders`` lets the template captioner use folder names for images without a label."""
    match name:
        case "template":
            from tools.captioning.rules import TemplateCaptioner

            return TemplateCaptioner(from_folders=from_folders)
        case "tags":
            from tools.captioning.rules import TagsCaptioner

            return TagsCaptioner()
        case "blip":
            from tools.captioning.blip import BlipCaptioner

            return BlipCaptioner(model or DEFAULT_MODELS["blip"], device=device, batch_size=batch_size)
        case "blip2":
            from tools.captioning.blip import Blip2Captioner

            return Blip2Captioner(model or DEFAULT_MODELS["blip2"], device=device, batch_size=batch_size)
        case _:
            raise ValueError(f"unknown captioner {name!r}; valid: {', '.join(CAPTIONER_NAMES)}")
