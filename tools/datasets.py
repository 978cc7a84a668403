"""Dataset versions: deterministic, stratified train/val/test splits recorded in the catalog, and exports.

Held-out data stays held out: an image's split, once assigned, never changes across dataset versions.
Each version keeps the split an image already had in an earlier version (an image that was ever in a
train split stays in train, so no model is ever judged on an image it may have trained on), honours the
split a manifest gave it, and places only new images, by a hash of (seed, image id) within their stratum
(their label). The same inputs always give the same split and the same dataset id. Users' marks on train
images are part of a version (:func:`tools.judgments.training_feedback`): new marks make a new version.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tools.captioning.quality import best_captions
from tools.catalog import Catalog

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "dev": "val", "test": "test", "testing": "test"}


class DatasetError(ValueError):
    """A dataset version that cannot be made or found; the message says what to do."""


@dataclass(frozen=True)
class PairItem:
    """One image of a dataset split with everything training and evaluation need."""

    image_id: str
    uri: str
    captions: list[str]
    labels: list[str]
    source: str | None = None


def _rank(seed: int, image_id: str) -> str:
    return hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest()


def plan_split(
    strata: dict[str, list[str]], *, val_frac: float, test_frac: float, seed: int,
    fixed: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """Assign every id to a split, stratum by stratum; ``fixed`` ids keep the split they were given."""
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise DatasetError(f"val ({val_frac}) and test ({test_frac}) fractions must be in [0, 1) and sum below 1")
    fixed = fixed or {}
    items: list[tuple[str, str]] = []
    for stratum in sorted(strata):
        ids = sorted(set(strata[stratum]), key=lambda i: _rank(seed, i))
        free = [i for i in ids if i not in fixed]
        n_test = round(len(free) * test_frac)
        n_val = round(len(free) * val_frac)
        for pos, image_id in enumerate(free):
            split = "test" if pos < n_test else "val" if pos < n_test + n_val else "train"
            items.append((image_id, split))
        items.extend((i, fixed[i]) for i in ids if i in fixed)
    return sorted(items)


def placed_splits(catalog: Catalog) -> dict[str, str]:
    """The split each image already has: ``train`` if any version put it there, else its first placement."""
    placed: dict[str, str] = {}
    rows = catalog.query("SELECT di.image_id, di.split FROM dataset_items di JOIN datasets d ON d.id = di.dataset_id "
                         "ORDER BY d.created_at, d.id")
    for r in rows:
        if r["split"] == "train" or r["image_id"] not in placed:
            placed[r["image_id"]] = r["split"]
    return placed


def held_out_ids(catalog: Catalog) -> set[str]:
    """Images in a val or test split, or headed there (not placed yet, their manifest says val or test): marks on
    them are held back, to judge models, never to train them."""
    placed = placed_splits(catalog)
    out = {i for i, split in placed.items() if split != "train"}
    for r in catalog.query("SELECT id, json_extract(metadata, '$.split') AS split FROM images WHERE status = 'ok' "
                           "AND json_extract(metadata, '$.split') IS NOT NULL"):
        if r["id"] not in placed and _SPLIT_ALIASES.get(str(r["split"]).lower()) in ("val", "test"):
            out.add(r["id"])
    return out


def create_dataset(
    catalog: Catalog, *, name: str | None = None, sources: Sequence[str] | None = None,
    val_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0, require_captions: bool = False,
) -> dict[str, Any]:
    """Make (or find, if identical) a dataset version from accepted catalog images.

    Images keep the split they had in earlier versions, then the split a manifest gave them (its ``split``
    field: train, val or test); the fractions and the seed place the others. ``require_captions`` leaves
    out images without any caption.
    """
    strata: dict[str, list[str]] = defaultdict(list)
    before = placed_splits(catalog)
    fixed: dict[str, str] = {}
    wanted_sources = set(sources) if sources else None
    captioned = _captioned_ids(catalog) if require_captions else None
    for img in catalog.iter_images(status="ok"):
        if wanted_sources is not None and img.source not in wanted_sources:
            continue
        if captioned is not None and img.id not in captioned:
            continue
        strata[img.labels[0] if img.labels else ""].append(img.id)
        hint = _SPLIT_ALIASES.get(str(img.metadata.get("split", "")).lower())
        split = before.get(img.id) or hint
        if split:
            fixed[img.id] = split
    if not strata:
        what = f" from sources {sorted(wanted_sources)}" if wanted_sources else ""
        raise DatasetError(f"no accepted images{what} to make a dataset from; run `skyscout ingest` first")
    items = plan_split(strata, val_frac=val_frac, test_frac=test_frac, seed=seed, fixed=fixed)
    params: dict[str, Any] = {
        "sources": sorted(wanted_sources) if wanted_sources else None, "val_frac": val_frac,
        "test_frac": test_frac, "seed": seed,
        "require_captions": require_captions, "stratified_by": "label",
    }
    feedback = _feedback(catalog, {i for i, split in items if split == "train"})
    if feedback is not None:
        params["feedback"] = feedback
    digest = hashlib.sha256(json.dumps([params, items], sort_keys=True).encode()).hexdigest()[:12]
    dataset_id = f"ds-{digest}"
    label = name or ("+".join(sorted(wanted_sources)) if wanted_sources else "all")
    created = catalog.create_dataset(dataset_id, label, params, items)
    info = catalog.get_dataset(dataset_id)
    assert info is not None
    info["created"] = created
    return info


def _feedback(catalog: Catalog, train_ids: set[str]) -> dict[str, Any] | None:
    """Users' marks on train images as this version's pairs and hard negatives (None: there are none); the
    ``feedback`` captions of the train images are brought in line with them first (:mod:`tools.judgments`).
    Marks on val and test images are held back: they judge models and never train them."""
    from tools.judgments import read_judgments, sync_feedback_captions, training_feedback

    found = training_feedback(read_judgments(catalog), train_ids)
    sync_feedback_captions(catalog, found.pairs, train_ids)
    return found.to_params() if found.marks else None


def _captioned_ids(catalog: Catalog) -> set[str]:
    return {r["image_id"] for r in catalog.query("SELECT DISTINCT image_id FROM captions")}


def resolve_dataset(catalog: Catalog, dataset: str | None) -> dict[str, Any]:
    """A dataset version by id, or the newest one for ``None`` / ``latest``."""
    if dataset in (None, "", "latest"):
        info = catalog.latest_dataset()
        if info is None:
            raise DatasetError("no dataset version exists yet; run `skyscout dataset create` first")
        return info
    info = catalog.get_dataset(dataset)
    if info is None:
        known = ", ".join(d["id"] for d in catalog.list_datasets()) or "none"
        raise DatasetError(f"unknown dataset version {dataset!r}; known: {known}")
    return info


def split_items(
    catalog: Catalog, dataset_id: str, split: str, *, caption_sources: Sequence[str] | None = None
) -> list[PairItem]:
    """The images of one split with their captions and labels.

    Each image is known by its best captions (human over model over rules, see
    :mod:`tools.captioning.quality`), unless ``caption_sources`` names the sources to use.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    ids = catalog.dataset_split(dataset_id, split)
    if caption_sources:
        captions = catalog.captions_for(ids, caption_sources)
    else:
        captions = {i: best_captions(rows) for i, rows in catalog.caption_rows_for(ids).items()}
    out = []
    for img in catalog.iter_images(status=None, ids=ids):
        out.append(PairItem(image_id=img.id, uri=img.uri, captions=captions.get(img.id, []),
                            labels=img.labels, source=img.source))
    return out


def to_hf_dataset(
    catalog: Catalog, dataset_id: str, split: str = "train", *, caption_sources: Sequence[str] | None = None
) -> Any:
    """Export one split as a Hugging Face ``datasets.Dataset`` of (image, text) pairs, one row per caption."""
    import datasets  # heavy import, only when exporting

    rows: dict[str, list[Any]] = {"image": [], "text": [], "image_id": [], "label": []}
    for item in split_items(catalog, dataset_id, split, caption_sources=caption_sources):
        for text in item.captions:
            rows["image"].append(item.uri)
            rows["text"].append(text)
            rows["image_id"].append(item.image_id)
            rows["label"].append(item.labels[0] if item.labels else None)
    ds = datasets.Dataset.from_dict(rows)
    return ds.cast_column("image", datasets.Image())
