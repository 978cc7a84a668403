"""The MiniLM sentence encoder (sentence-transformers) equals the plain mean pooling it replaced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from tools.text_encoder import MINILM_DIM, MiniLMEncoder, load_text_encoder, minilm_model_dir

TEXTS = [
    "find beaches",
    "a harbour with many boats",
    "x",
    "",
    "why did you retrain the model yesterday?",
    "Straße über 42 Brücken",
    " ".join(["vineyard"] * 400),  # longer than 256 tokens: truncated the same way
]


def _mean_pooled_reference(texts: list[str]) -> np.ndarray:
    """The former implementation: transformers' BertModel, attention-masked mean, L2-normalised."""
    folder = str(minilm_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    bert = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = bert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


def test_sentence_transformers_equals_the_mean_pooled_reference() -> None:
    got = load_text_encoder()(TEXTS)
    assert got.shape == (len(TEXTS), MINILM_DIM) and got.dtype == np.float32
    np.testing.assert_allclose(got, _mean_pooled_reference(TEXTS), rtol=0, atol=1e-5)


def test_encoder_contract() -> None:
    encoder = MiniLMEncoder(minilm_model_dir(), batch_size=2)
    assert encoder.dim == MINILM_DIM and encoder.model.max_seq_length == 256
    np.testing.assert_allclose(encoder(TEXTS), load_text_encoder()(TEXTS), rtol=0, atol=1e-5)
    assert encoder([]).shape == (0, MINILM_DIM)
    with pytest.raises(TypeError):
        encoder("one string")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MiniLMEncoder(minilm_model_dir(), batch_size=0)
