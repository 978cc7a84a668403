"""Sentence frames used by the domain code: caption templates for labels and tags, class phrases, and the
prompt templates for zero-shot classification and text search (``{}`` is the class name or query).

They live in ``tools/`` rather than ``prompts/`` because the domain library uses them and must not import the
agent-facing packages.
"""

from __future__ import annotations

#: Sentence frames for a scene whose content is a short noun phrase ({}), e.g. "tennis court".
LABEL_TEMPLATES: tuple[str, ...] = (
    "a satellite image of {}.",
    "an aerial photograph of {}.",
    "{} seen from above.",
    "an overhead view showing {}.",
    "a remote sensing image of {}.",
    "a top-down view of {}.",
    "this aerial scene shows {}.",
    "a high-resolution aerial image of {}.",
)

#: Frames for a list of map tags joined into one phrase ("vineyard and a river"), as SkyScript did with
#: OpenStreetMap tags.
TAG_TEMPLATES: tuple[str, ...] = (
    "an aerial image of {}.",
    "a satellite view with {}.",
    "an overhead image containing {}.",
    "a remote sensing scene of {}.",
)

#: Glued or abbreviated class names found in common remote-sensing datasets, spelled out as phrases.
CLASS_PHRASES: dict[str, str] = {
    "agricultural": "agricultural land",
    "baseballdiamond": "a baseball diamond",
    "buildings": "buildings",
    "denseresidential": "a dense residential area",
    "freeway": "a freeway",
    "golfcourse": "a golf course",
    "harbor": "a harbor",
    "intersection": "a road intersection",
    "mediumresidential": "a medium residential area",
    "mobilehomepark": "a mobile home park",
    "overpass": "an overpass",
    "parkinglot": "a parking lot",
    "sparseresidential": "a sparse residential area",
    "storagetanks": "storage tanks",
    "tenniscourt": "a tennis court",
    "chaparral": "chaparral shrubland",
    "annualcrop": "annual crop land",
    "herbaceousvegetation": "herbaceous vegetation",
    "permanentcrop": "permanent crop land",
    "sealake": "a sea or lake",
}

#: Zero-shot classification and text-search prompt ensemble (CLIP-style prompt averaging).
REMOTE_SENSING_TEMPLATES: tuple[str, ...] = (
    "a satellite photo of {}.",
    "an aerial photo of {}.",
    "a satellite image of {}.",
    "{} seen from above.",
    "an overhead view of {}.",
    "a remote sensing image of {}.",
    "an aerial image showing {}.",
    "a top-down view of {}.",
)
"""The default ensemble for satellite and aerial tiles."""

SIMPLE_TEMPLATES: tuple[str, ...] = ("a satellite photo of {}.",)
"""A single template: cheaper, and the usual baseline when reporting prompt-ensemble gains."""
