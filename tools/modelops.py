"""Model operations over the catalog: resolve model specs, fine-tune a candidate, evaluate, read metrics.

This module joins the catalog (dataset versions, model versions, evaluations) to the model loader
(:mod:`tools.models`), the training loop (:mod:`tools.training`) and the metrics
(:mod:`tools.evaluation`). Model specs accepted everywhere: a preset name, ``openclip:ARCH/TAG``,
``path:FILE``, a model version id (``mv-...``), or ``active`` (the promoted model, or
``skyscout-tiny`` before any promotion).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tools.augment import AugmentConfig
from tools.captioning.text import humanize_label
from tools.catalog import Catalog
from tools.datasets import PairItem, resolve_dataset, split_items
from tools.evaluation import (
    class_aware_retrieval_metrics,
    encode_image_files,
    retrieval_metrics,
    text_encoder,
    zero_shot_accuracy,
    zero_shot_classifier,
)
from tools.judgments import TrainingFeedback, text_key
from tools.modelref import ModelRef, resolve_model
from tools.models import SMALL_ARCH, TINY_ARCH, LoadedModel, load_model, save_checkpoint
from tools.templates import REMOTE_SENSING_TEMPLATES
from tools.training import TrainConfig, TrainItem, TrainResult, train
from tools.training.config import CHECKPOINT_NAME, FINAL_MODEL_NAME, WISE_START_NAME


class DeviceError(ValueError):
    """The configured torch device does not exist here (the message says which ones do)."""


def pick_device(device: str) -> str:
    """``auto`` means the first CUDA device when there is one, else the CPU; others are checked to exist."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise DeviceError(f"SKYSCOUT_DEVICE={device!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"SKYSCOUT_DEVICE={device!r}, but no CUDA device is available here; use auto or cpu")
        if (parsed.index or 0) >= count:
            raise DeviceError(f"SKYSCOUT_DEVICE={device!r}, but this machine has {count} CUDA device(s): "
                              f"{', '.join(f'cuda:{i}' for i in range(count))}")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"SKYSCOUT_DEVICE={device!r}, but MPS is not available here; use auto or cpu")
    return device


# -- fine-tuning ------------------------------------------------------------------------------------

#: Fine-tuning defaults for ``skyscout-tiny`` (and versions trained from it): its ResNet-18 image tower
#: learns from scratch against the frozen MiniLM text tower. Small batches with repeated captions spread
#: apart (one image per scene type where the data allows), strong augmentation against over-fitting
#: 1,300 images, and 40 epochs: UC Merced zero-shot top-1 0.03 -> 0.71 in about 6 minutes on two CPU
#: cores (README, "Measured here"). Explicit options override each value.
TINY_RECIPE: dict[str, Any] = {
    "epochs": 40, "sample_budget": 60_000, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.05, "warmup_fraction": 0.05,
    "freeze": "text", "batch_order": "spread_captions",
    "augment": {"scale": (0.35, 1.0), "hflip": True, "color_jitter": 0.3, "color_jitter_p": 1.0},
}
#: Fine-tuning defaults for ``skyscout-small`` (and versions trained from it): its EfficientNet-Lite0 image
#: tower starts from ImageNet weights, so it needs a quarter of the passes and a lower rate than tiny's
#: from-scratch tower; batches and augmentation as tiny's. Chosen on a block holdout of UC Merced train, val
#: unread (docs/models.md, "skyscout-small"). The sample budget keeps EuroSAT-sized datasets to one pass.
SMALL_RECIPE: dict[str, Any] = {**TINY_RECIPE, "epochs": 10, "sample_budget": 15_000, "lr": 3e-4}
#: Defaults for pretrained CLIP models (SkyCLIP, RemoteCLIP, open_clip tags): a short, gentle fine-tune
#: with SkyScript's augmentations (:class:`tools.augment.AugmentConfig`'s defaults).
PRETRAINED_RECIPE: dict[str, Any] = {
    "epochs": 5, "batch_size": 64, "lr": 5e-4, "weight_decay": 0.1, "warmup_fraction": 0.1,
    "batch_order": "spread_captions",
}


#: a run that starts from a fine-tuned model version (a planner round, `skyscout train --model mv-...`) goes on
#: from weights the recipe already shaped: its learning rate is the recipe's times this, unless one is given.
#: At the full rate a 300-step round on UC Merced plus 60 users' marks moved the 0.713 model to 0.643 on val.
CONTINUE_LR_FACTOR = 0.1


def recipe_for(arch: str | None) -> dict[str, Any]:
    """The fine-tuning defaults for a model architecture (see :data:`TINY_RECIPE`, :data:`SMALL_RECIPE`)."""
    return dict({TINY_ARCH: TINY_RECIPE, SMALL_ARCH: SMALL_RECIPE}.get(arch or "", PRETRAINED_RECIPE))


def train_config(arch: str | None, overrides: Mapping[str, Any] | None = None, n_items: int | None = None, *,
                 continued: bool = False) -> TrainConfig:
    """A :class:`TrainConfig`: the architecture's recipe with ``overrides`` applied on top.

    ``overrides["augment"]`` may name single augmentation options; the others keep the recipe's values.
    A recipe's ``sample_budget`` (with ``n_items``, the training set's size) lowers its epoch count on large
    datasets, so that the default run stays about as long as on UC Merced (skyscout-tiny: 40 epochs of
    1,282 images; 6 of EuroSAT's 10,000); an explicit ``epochs`` wins. ``continued`` (the base is a fine-tuned
    model version) scales the recipe's learning rate by :data:`CONTINUE_LR_FACTOR`; an explicit ``lr`` wins.
    """
    values = recipe_for(arch)
    if continued:
        values["lr"] = float(values["lr"]) * CONTINUE_LR_FACTOR
    budget = values.pop("sample_budget", None)
    if budget is not None and n_items:
        values["epochs"] = max(1, min(int(values["epochs"]), int(budget) // n_items))
    extra = dict(overrides or {})
    augment = {**AugmentConfig().as_kwargs(), **values.pop("augment", {}), **extra.pop("augment", {})}
    return TrainConfig(**{**values, **extra}, augment=AugmentConfig(**augment))


def training_items(catalog: Catalog, dataset_id: str, *, caption_sources: Sequence[str] | None = None,
                   source_repeats: Mapping[str, int] | None = None) -> list[TrainItem]:
    """The train split's (image, captions) pairs; images without captions are left out.

    The dataset version's feedback (:mod:`tools.judgments`) adds one item per relevant mark (the image with the
    mark's text as its only caption) and batches each not relevant image with one of those items of the same
    text (``TrainItem.batch_with``): the text's positive and its hard negative meet in one contrastive batch.
    ``source_repeats`` (``TrainConfig.source_repeats``) adds copies of a source's images (:func:`repeat_sources`).
    """
    split = [it for it in split_items(catalog, dataset_id, "train", caption_sources=caption_sources) if it.captions]
    items = [TrainItem(image_path=it.uri, captions=it.captions) for it in split]
    if not caption_sources or "feedback" in caption_sources:
        items = with_feedback(items, [it.image_id for it in split], _dataset_feedback(catalog, dataset_id),
                              {it.image_id: it.uri for it in split})
    return repeat_sources(items, [it.source for it in split], source_repeats or {})


def repeat_sources(items: list[TrainItem], sources: Sequence[str | None], repeats: Mapping[str, int]
                   ) -> list[TrainItem]:
    """``items`` plus ``repeats[source] - 1`` more copies of each of the first ``len(sources)`` items whose
    source is given (the copies are shuffled into every epoch like the rest; each draws its own caption and
    augmentation). A name that is none of ``sources`` is an error, not silently a no-op."""
    unknown = sorted(set(repeats) - set(sources))
    if unknown:
        known = sorted({s for s in sources if s})
        raise ValueError(f"source repeats name {unknown}, which has no captioned training image in this dataset; "
                         f"its sources: {known}")
    extra = [dataclasses.replace(items[i], batch_with=None)
             for i, source in enumerate(sources) for _ in range(repeats.get(source or "", 1) - 1)]
    return items + extra


def _dataset_feedback(catalog: Catalog, dataset_id: str) -> TrainingFeedback:
    info = catalog.get_dataset(dataset_id) or {}
    return TrainingFeedback.from_params((info.get("params") or {}).get("feedback"))


def with_feedback(items: list[TrainItem], image_ids: Sequence[str], feedback: TrainingFeedback,
                  uris: Mapping[str, str]) -> list[TrainItem]:
    """``items`` (one per image id of ``image_ids``) plus the feedback's pair items, with each hard negative's
    item batched with a pair item of its text (in turn, when a text has several)."""
    if not feedback.pairs and not feedback.hard_negatives:
        return items
    out = list(items)
    pair_items: dict[str, list[int]] = {}
    for image_id, text in feedback.pairs:
        if image_id in uris:
            pair_items.setdefault(text_key(text), []).append(len(out))
            out.append(TrainItem(image_path=uris[image_id], captions=[text]))
    position = {image_id: i for i, image_id in enumerate(image_ids)}
    turn: dict[str, int] = {}
    for image_id, text in feedback.hard_negatives:
        partners, at = pair_items.get(text_key(text)), position.get(image_id)
        if not partners or at is None or out[at].batch_with is not None:
            continue  # no positive of that text to meet in a batch, or the image is already paired
        n = turn.get(text_key(text), 0)
        turn[text_key(text)] = n + 1
        out[at] = dataclasses.replace(out[at], batch_with=partners[n % len(partners)])
    return out


@dataclass
class TrainingPlan:
    """A fine-tuning run ready to start: the base model (a fresh copy), the data and the configuration."""

    ref: ModelRef
    loaded: LoadedModel
    dataset_id: str
    items: list[TrainItem]
    config: TrainConfig
    caption_sources: list[str]
    feedback_marks: list[int] = dataclasses.field(default_factory=list)  # the marks behind its feedback items

    def params(self, run_dir: Path) -> dict[str, Any]:
        """The job parameters: what identifies the run (an interrupted one is found again by these)."""
        return {"base": self.ref.key, "dataset": self.dataset_id, "run_dir": str(run_dir),
                "config": self.config.model_dump(mode="json"), "caption_sources": self.caption_sources}


def prepare_training(
    catalog: Catalog, *, model: str | None, dataset: str | None, config: TrainConfig | Mapping[str, Any] | None,
    cache_dir: Path, device: str = "cpu", caption_sources: Sequence[str] | None = None,
) -> TrainingPlan:
    """Load a fresh copy of the base model and gather the train split's pairs.

    ``config`` is a complete :class:`TrainConfig`, or options (a mapping, possibly empty) that override
    the model's recipe (:func:`train_config`).
    """
    ds = resolve_dataset(catalog, dataset)
    ref = resolve_model(catalog, model)
    loaded = load_model(ref.load_spec, cache_dir=cache_dir, device=device)  # a fresh copy: training changes it
    repeats = (config.source_repeats if isinstance(config, TrainConfig)
               else dict((config or {}).get("source_repeats") or {}))
    items = training_items(catalog, ds["id"], caption_sources=caption_sources, source_repeats=repeats)
    if not isinstance(config, TrainConfig):
        config = train_config(loaded.arch, config, n_items=len(items), continued=ref.version_id is not None)
    if len(items) < config.effective_batch_size:
        raise ValueError(
            f"dataset {ds['id']} has {len(items)} captioned training images, fewer than one batch "
            f"({config.effective_batch_size}); caption more images (`skyscout caption`) or lower --batch-size"
        )
    marks = [] if caption_sources and "feedback" not in caption_sources else _dataset_feedback(catalog, ds["id"]).marks
    return TrainingPlan(ref, loaded, ds["id"], items, config, list(caption_sources or []), marks)


#: what a finished run no longer needs (its weights are in ``model.pt``): the resumable state, the final
#: weights before saving, WiSE-FT's starting weights. Together about 2.5x the model (~360 MB for skyscout-tiny).
RUN_STATE_FILES = (CHECKPOINT_NAME, FINAL_MODEL_NAME, WISE_START_NAME)


def delete_run_state(run_dir: Path) -> int:
    """Delete a finished run's checkpoints (:data:`RUN_STATE_FILES`); returns the bytes freed."""
    freed = 0
    for name in RUN_STATE_FILES:
        path = run_dir / name
        if path.is_file():
            freed += path.stat().st_size
            path.unlink()
    return freed


def finetune(
    catalog: Catalog, plan: TrainingPlan, *, models_dir: Path, device: str = "cpu", resume_dir: Path | None = None,
    progress: bool = True, on_step: Callable[[Any], bool | None] | None = None, keep_checkpoints: bool = False,
) -> dict[str, Any]:
    """Run a prepared fine-tuning; the result is a *candidate* model version with its lineage.

    Checkpoints go to ``models_dir/runs/<run>``; ``resume_dir`` continues such a run exactly. A cancel
    request (``skyscout jobs cancel``) or ``on_step`` returning True stops the run after a checkpoint
    (resumable). A finished run keeps only ``model.pt`` and its log unless ``keep_checkpoints``.
    """
    from tools.training.distributed import from_env

    run_dir = resume_dir or models_dir / "runs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    loaded, ref = plan.loaded, plan.ref
    dist = from_env(device)  # under torchrun: one rank of a data-parallel run; rank 0 keeps the records
    if dist is not None:
        run_dir, device = dist.broadcast(run_dir), str(dist.device(device))
        if not dist.is_main:
            done = train(loaded.model, loaded.tokenizer, None, plan.items, plan.config, out_dir=run_dir,
                         resume=resume_dir is not None, device=device, progress=False, dist=dist)
            return {"completed": done.completed, "rank": dist.rank, "run_dir": str(run_dir), "steps": done.steps}
    params = plan.params(run_dir)
    with catalog.job("train", params, total=None) as job:
        why: list[str] = []

        def report(info: Any) -> bool | None:
            if catalog.cancel_requested(job.id):
                why.append("cancelled on request")
                return True
            catalog.update_job(job.id, done=info.step, total=info.total_steps)
            return on_step(info) if on_step else None

        result: TrainResult = train(
            loaded.model, loaded.tokenizer, None, plan.items, plan.config, out_dir=run_dir,
            resume=resume_dir is not None, device=device, progress=progress, on_step=report, dist=dist,
        )
        if not result.completed:
            reason = why[0] if why else "stopped before the end"
            catalog.update_job(job.id, state="cancelled", error=f"{reason} at step {result.steps}/"
                               f"{result.total_steps}; resume to finish (`skyscout train --resume`)")
            return {"completed": False, "run_dir": str(run_dir), "steps": result.steps, "job_id": job.id,
                    "stopped": reason}
        weights = run_dir / "model.pt"
        save_checkpoint(weights, loaded, arch=loaded.arch, extra={"base": ref.key, "dataset": plan.dataset_id})
        if not keep_checkpoints:
            delete_run_state(run_dir)
        summary = {
            "steps": result.steps, "epochs": result.epochs, "samples_seen": result.samples_seen,
            "final_loss": result.final_loss, "samples_per_s": result.samples_per_s,
            "elapsed_s": result.elapsed_s, "log": str(result.log_path), "train_images": len(plan.items),
        }
        model_id = catalog.add_model_version(
            arch=loaded.arch, base=ref.key, parent=ref.version_id, dataset_id=plan.dataset_id,
            checkpoint=str(weights), params={**params, "result": summary},
        )
        if plan.feedback_marks:
            catalog.set_feedback_used(plan.feedback_marks, model_id)
            summary["feedback_marks"] = len(plan.feedback_marks)
        catalog.update_job(job.id, result={"model_version": model_id, **summary})
        return {"completed": True, "model_version": model_id, "run_dir": str(run_dir), "job_id": job.id,
                "dataset": plan.dataset_id, "base": ref.key, "config": plan.config.model_dump(mode="json"),
                **summary}


# -- evaluation -------------------------------------------------------------------------------------


def _class_names(items: Sequence[PairItem]) -> list[str]:
    return sorted({it.labels[0] for it in items if it.labels})


def class_vectors(encode_texts: Callable[[list[str]], np.ndarray], classes: Sequence[str],
                  label_texts: dict[str, str] | None = None,
                  templates: Sequence[str] = REMOTE_SENSING_TEMPLATES) -> np.ndarray:
    """The zero-shot classifier of ``classes`` as evaluation builds it: each label's phrase (from the manifest's
    ``label_text`` where one was given, :func:`label_texts_of`) in every template, averaged per class."""
    phrases = [humanize_label(c, (label_texts or {}).get(c)) for c in classes]
    return zero_shot_classifier(encode_texts, phrases, list(templates))


def evaluate_items(
    loaded: LoadedModel, items: Sequence[PairItem], *, device: str = "cpu",
    templates: Sequence[str] = REMOTE_SENSING_TEMPLATES, batch_size: int = 64,
    label_texts: dict[str, str] | None = None, transductive: bool = False,
) -> dict[str, Any]:
    """Zero-shot classification (labelled items) and retrieval (captioned items) metrics; with
    ``transductive`` also ``zeroshot_transductive``: the classes refined over the split's own embeddings
    (:mod:`tools.transductive`, no labels used), beside the plain figures."""
    if not items:
        raise ValueError("nothing to evaluate: the split is empty")
    model = loaded.model.to(device)
    feats = encode_image_files(model, loaded.preprocess_val, [it.uri for it in items], device=device,
                               batch_size=batch_size)
    encode_texts = text_encoder(model, loaded.tokenizer, device=device)
    out: dict[str, Any] = {"n_images": len(items)}
    labelled = [i for i, it in enumerate(items) if it.labels]
    classes = _class_names(items)
    if labelled and len(classes) >= 2:
        classifier = class_vectors(encode_texts, classes, label_texts, templates)
        labels = np.array([classes.index(items[i].labels[0]) for i in labelled])
        zs = zero_shot_accuracy(feats[labelled], labels, classifier, classnames=classes)
        out["zeroshot"] = {**zs, "image_ids": [items[i].image_id for i in labelled]}
        if transductive:
            from tools.transductive import transductive_probabilities

            refined = transductive_probabilities(feats[labelled], classifier)
            out["zeroshot_transductive"] = {
                **zero_shot_accuracy(feats[labelled], labels, classifier, classnames=classes, scores=refined),
                "image_ids": out["zeroshot"]["image_ids"]}
    captioned = [i for i, it in enumerate(items) if it.captions]
    if captioned:
        texts, owner = [], []
        for pos, i in enumerate(captioned):
            texts += items[i].captions
            owner += [pos] * len(items[i].captions)
        text_feats = encode_texts(texts)
        img = feats[captioned]
        ids = [items[i].image_id for i in captioned]
        out["retrieval"] = {**retrieval_metrics(img, text_feats, owner), "image_ids": ids}
        if all(items[i].labels for i in captioned):
            img_labels = [items[i].labels[0] for i in captioned]
            out["retrieval_class_aware"] = {**class_aware_retrieval_metrics(
                img, text_feats, img_labels, [img_labels[o] for o in owner], text_to_image=owner), "image_ids": ids}
    return out


#: evaluation kinds stored per (model, dataset, split): the keys of :func:`evaluate_items`' result
EVAL_KINDS = ("zeroshot", "retrieval", "retrieval_class_aware")


def evaluate(
    catalog: Catalog, *, ref: ModelRef, loaded: LoadedModel, dataset: str | None, split: str = "val",
    device: str = "cpu", batch_size: int = 64, caption_sources: Sequence[str] | None = None, store: bool = True,
    transductive: bool = False,
) -> dict[str, Any]:
    """Evaluate a loaded model on a dataset version's split; the metrics are recorded under ``ref.key`` (the
    transductive figures are not: promotion compares plain zero-shot and retrieval)."""
    ds = resolve_dataset(catalog, dataset)
    items = split_items(catalog, ds["id"], split, caption_sources=caption_sources)
    if not items:
        raise ValueError(
            f"the {split} split of {ds['id']} is empty; create a dataset version with a larger held-out "
            "fraction or ingest more images"
        )
    metrics = evaluate_items(loaded, items, device=device, label_texts=label_texts_of(catalog, items),
                             batch_size=batch_size, transductive=transductive)
    if store:
        for kind in EVAL_KINDS:
            if kind in metrics:
                catalog.add_evaluation(model=ref.key, dataset=ds["id"], split=split, kind=kind,
                                       metrics=metrics[kind])
    return {"model": ref.key, "dataset": ds["id"], "split": split, **metrics}


def label_texts_of(catalog: Catalog, items: Sequence[PairItem]) -> dict[str, str]:
    """The ``label_text`` a manifest gave each label of ``items`` (EuroSAT: "Annual Crop Land"); the class
    phrases of zero-shot evaluation are built from it where it exists."""
    texts: dict[str, str] = {}
    for img in catalog.iter_images(status=None, ids=[it.image_id for it in items]):
        if img.labels and "label_text" in img.metadata:
            texts.setdefault(img.labels[0], str(img.metadata["label_text"]))
    return texts


def evaluate_manifest(
    manifest: Path, *, model_loader: Callable[[], LoadedModel], device: str = "cpu", transductive: bool = False,
) -> dict[str, Any]:
    """Evaluate labelled/captioned data that is not in the catalog (a manifest read in place)."""
    from tools.ingest import read_manifest

    rejected: list[dict[str, str]] = []
    rows = read_manifest(manifest, rejected)
    items = [PairItem(image_id=str(r.path), uri=str(r.path), captions=r.captions, labels=r.labels)
             for r in rows if r.path.is_file()]
    label_texts = {r.labels[0]: str(r.metadata["label_text"]) for r in rows
                   if r.labels and "label_text" in r.metadata}
    metrics = evaluate_items(model_loader(), items, device=pick_device(device), label_texts=label_texts,
                             transductive=transductive)
    return {"manifest": str(manifest), "skipped": len(rows) - len(items) + len(rejected), **metrics}
