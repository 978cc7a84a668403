"""BLIP and BLIP-2 captioners: batched greedy (or beam) caption generation through transformers.

Both backends load a checkpoint with the same ``from_pretrained(name_or_path)`` call, from a Hub id
(``Salesforce/blip-image-captioning-base``, ``Salesforce/blip2-opt-2.7b``) or from a local directory
holding the files of such a repository (``tools.captioning.tiny_models`` writes tiny random ones for
tests). Loading is lazy: the first ``caption`` call, or an explicit ``load()``, never the import.

Offline machines: a Hub id that is not in the local Hugging Face cache cannot be loaded without the
network, and ``CaptionerUnavailableError`` says how to provide the weights. When the id *is* cached it
is loaded from the cache without touching the network (unless ``local_files_only=False`` is passed),
because with the network down every HTTP probe is retried with back-off and loading a cached model
would take minutes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from tools.captioning.base import CaptionInput

__all__ = ["BlipCaptioner", "Blip2Captioner", "CaptionerUnavailableError"]

#: a Hub repository id: ``name`` or ``namespace/name``; anything else is treated as a local path
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_TRUE = {"1", "true", "yes", "on"}


class CaptionerUnavailableError(RuntimeError):
    """A captioning model cannot be loaded here (weights absent, no network); the message says what to do."""


def _offline_from_env() -> bool:
    # read at call time: huggingface_hub reads HF_HUB_OFFLINE once, at import
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _is_cached(repo_id: str) -> bool:
    """Whether ``config.json`` of ``repo_id`` is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub library rejects is simply not cached
        return False
    return isinstance(hit, str)


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _strip_text_prefix(caption: str, prompt: str) -> str:
    prompt = prompt.strip()
    if caption.lower().startswith(prompt.lower()):
        return caption[len(prompt) :].strip()
    return caption


class _TransformersCaptioner:
    """Shared loading and batched generation for the BLIP-family captioners."""

    source: ClassVar[str]
    default_model: ClassVar[str]
    needs_pixels: bool = True

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "auto",
        batch_size: int = 16,
        max_new_tokens: int = 30,
        num_beams: int = 1,
        prompt: str | None = None,
        local_files_only: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {num_beams}")
        name = self.default_model if model_name_or_path is None else os.fspath(model_name_or_path)
        self.model_id: str = name
        self.device_spec = device
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.prompt = prompt or None
        self.local_files_only = local_files_only
        self._model: Any = None
        self._processor: Any = None
        self._device: torch.device | None = None
        self._dtype: torch.dtype | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model_id={self.model_id!r}, device={self.device_spec!r}, "
            f"batch_size={self.batch_size}, max_new_tokens={self.max_new_tokens}, "
            f"num_beams={self.num_beams}, prompt={self.prompt!r})"
        )

    # -- loading -------------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def device(self) -> torch.device:
        """The device the model runs on (resolved from ``device="auto"`` without loading anything)."""
        if self._device is None:
            self._device = _resolve_device(self.device_spec)
        return self._device

    def _classes(self) -> tuple[Any, Any]:
        """Return (model class, processor class); imported here so that importing this module stays light."""
        raise NotImplementedError

    def _after_load(self) -> None:
        """Check the loaded model and processor fit together (hook for subclasses)."""

    def _unavailable(self, reason: str) -> CaptionerUnavailableError:
        repo = self.model_id if _REPO_ID.match(self.model_id) else self.default_model
        cli = f"--captioner {self.source} --captioner-model /path/to/dir"
        return CaptionerUnavailableError(
            f"{self.source} captioner: cannot load {self.model_id!r}: {reason.rstrip('.')}.\n"
            f"To provide the weights on a machine without internet, on a connected machine either\n"
            f"  - run `hf download {repo}` (huggingface_hub >= 1.0; older versions: "
            f"`huggingface-cli download {repo}`) and copy its Hugging Face cache (~/.cache/huggingface/hub, "
            f"or $HF_HOME/hub) to the same place here, or\n"
            f"  - run `hf download {repo} --local-dir /path/to/dir`, copy that directory here (config.json, "
            f"model weights, tokenizer and processor files) and pass it: `{cli}`.\n"
            f"Without pretrained weights, use an offline captioner: "
            f"`--captioner template` or `--captioner tags`."
        )

    def _load_kwargs(self) -> dict[str, Any]:
        """Decide where the files come from: a local directory, the cache only, or the Hub."""
        path = Path(self.model_id).expanduser()
        if path.is_dir():
            return {"pretrained_model_name_or_path": str(path)}
        if not _REPO_ID.match(self.model_id) or path.is_absolute() or self.model_id.startswith((".", "~")):
            raise self._unavailable(f"directory {str(path.absolute())!r} does not exist")
        local_only = self.local_files_only
        if local_only is None:
            local_only = _offline_from_env() or _is_cached(self.model_id)
        if local_only and not _is_cached(self.model_id):
            why = "offline mode (HF_HUB_OFFLINE=1)" if _offline_from_env() else "local_files_only=True"
            raise self._unavailable(
                f"it is not in the local Hugging Face cache, and {why} forbids downloading"
            )
        return {"pretrained_model_name_or_path": self.model_id, "local_files_only": local_only}

    def load(self) -> None:
        """Load the model and processor now (idempotent); ``CaptionerUnavailableError`` if impossible."""
        if self._model is not None:
            return
        model_cls, processor_cls = self._classes()
        kwargs = self._load_kwargs()
        device = self.device
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        try:
            # the model first: when the Hub is unreachable it fails after one file's retries, whereas the
            # processor probes a dozen optional files, each retried with back-off
            model = model_cls.from_pretrained(**kwargs, dtype=dtype)
            processor = processor_cls.from_pretrained(**kwargs)
        except OSError as exc:  # transformers reports missing files and failed downloads as OSError
            raise self._unavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        model.to(device)
        model.eval()
        self._model, self._processor, self._dtype = model, processor, dtype
        try:
            self._after_load()
        except Exception:
            self._model = self._processor = None
            raise

    # -- captioning ----------------------------------------------------------------------------------

    def _prefix_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The token ids ``generate`` echoes before the new tokens, for ``input_ids`` from the processor."""
        return input_ids

    def caption(self, batch: list[CaptionInput]) -> list[list[str]]:
        """Caption each input's image: ``[[caption]]`` per input, or ``[]`` when the model said nothing."""
        missing = [item.image_id for item in batch if item.image is None]
        if missing:
            raise ValueError(
                f"{self.source} captioner needs pixels, but these inputs have no image loaded: {missing[:5]}"
            )
        if not batch:
            return []
        self.load()
        results: list[list[str]] = []
        for start in range(0, len(batch), self.batch_size):
            images = [item.image for item in batch[start : start + self.batch_size] if item.image is not None]
            results.extend([text] if text else [] for text in self.generate(images))
        return results

    def generate(self, images: list[Image.Image]) -> list[str]:
        """Generate one caption per image, in one forward batch (``caption`` splits into batches)."""
        self.load()
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        # The same text for every image keeps the batch unpadded, so batched and one-by-one generation
        # agree; an empty text yields just the start tokens the model would use by default.
        text = [self.prompt or ""] * len(rgb)
        inputs = self._processor(images=rgb, text=text, return_tensors="pt")
        input_ids = inputs["input_ids"].to(self.device)
        attention_mask = inputs["attention_mask"].to(self.device)
        pixel_values = inputs["pixel_values"].to(self.device, dtype=self._dtype)
        prefix = self._prefix_ids(input_ids.clone())
        with torch.inference_mode():
            output = self._model.generate(
                pixel_values=pixel_values,
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=self.max_new_tokens,
                num_beams=self.num_beams,
                do_sample=False,
            )
        n = prefix.shape[1]
        echoed = output.shape[1] >= n and torch.equal(output[:, :n], prefix)
        if echoed:
            output = output[:, n:]
        captions = [c.strip() for c in self._processor.batch_decode(output, skip_special_tokens=True)]
        if not echoed and self.prompt:
            # the model did not echo the input token for token (e.g. an encoder-decoder language model,
            # or a generate that re-tokenizes); remove the prompt as text if it is there
            captions = [_strip_text_prefix(c, self.prompt) for c in captions]
        return captions


class BlipCaptioner(_TransformersCaptioner):
    """BLIP captioning (``BlipForConditionalGeneration`` + ``BlipProcessor``), e.g. BLIP base or large.

    ``prompt`` is an optional caption start (``"a satellite image of"``) that the decoder continues;
    it is removed from the returned caption.
    """

    source: ClassVar[str] = "blip"
    default_model: ClassVar[str] = "Salesforce/blip-image-captioning-base"

    def _classes(self) -> tuple[Any, Any]:
        from transformers import BlipForConditionalGeneration, BlipProcessor

        return BlipForConditionalGeneration, BlipProcessor

    def _prefix_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        # BlipForConditionalGeneration.generate swaps [CLS] for the decoder's bos ([DEC]) and drops the
        # trailing [SEP] before continuing the text; the output starts with exactly that prefix
        input_ids[:, 0] = self._model.config.text_config.bos_token_id
        return input_ids[:, :-1]


class Blip2Captioner(_TransformersCaptioner):
    """BLIP-2 captioning (``Blip2ForConditionalGeneration`` + ``Blip2Processor``), e.g. BLIP-2 OPT or Flan-T5.

    ``prompt`` is optional text after the image (for OPT checkpoints e.g. ``"a satellite image of"``,
    or ``"Question: what is in this image? Answer:"``); it is removed from the returned caption.
    """

    source: ClassVar[str] = "blip2"
    default_model: ClassVar[str] = "Salesforce/blip2-opt-2.7b"

    def _classes(self) -> tuple[Any, Any]:
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        return Blip2ForConditionalGeneration, Blip2Processor

    def _after_load(self) -> None:
        config = self._model.config
        # transformers 5 places the Q-Former outputs at <image> placeholder tokens; a checkpoint saved
        # before that convention has no image token, and its captions would ignore the image
        if config.image_token_index is None:
            raise self._unavailable(
                "its config has no image_token_index (a checkpoint saved before transformers 4.47); "
                "download the current revision of the repository"
            )
        if getattr(self._processor, "num_query_tokens", None) is None:
            self._processor.num_query_tokens = config.num_query_tokens

    def _prefix_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        # decoder-only language models echo the whole input (image placeholders, bos, prompt);
        # encoder-decoder ones (Flan-T5) return only new tokens, and the prefix check in generate fails
        return input_ids
