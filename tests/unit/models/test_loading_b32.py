"""A random-weight open_clip ViT-B-32 saved exactly as SkyScript ships SkyCLIP goes through the loaders.

SkyScript's zips hold ``<NAME>/epoch_20.pt``: the dict open_clip's training ``main.py`` saves (``epoch``,
``name``, ``state_dict`` with DDP's ``module.`` prefix, ``optimizer``). The loader must give the very
outputs of the model the checkpoint came from, and refuse a checkpoint that does not fit, naming the keys.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from tools.models import CheckpointMismatchError, UnknownModelError, encode_images, encode_texts, load_model
from tools.models.download import checksum_record_path
from tools.models.infer import infer_arch

STEM = "SkyCLIP_ViT_B32_top50pct"
TEXTS = ["a satellite image of a solar farm", "vineyards on a hillside", "a beach bar"]


@dataclass
class Source:
    model: torch.nn.Module
    images: torch.Tensor
    pil: list[Image.Image]
    image_features: torch.Tensor
    text_features: torch.Tensor
    state_dict: dict[str, torch.Tensor]


def _skyscript_payload(state_dict: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, object]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-9, weight_decay=1.0)
    return {
        "epoch": 20,
        "name": STEM,
        "state_dict": {f"module.{k}": v for k, v in state_dict.items()},
        "optimizer": optimizer.state_dict(),
    }


def _write_skyscript_zip(path: Path, payload: dict[str, object]) -> None:
    # stored, not deflated: deflating 600 MB of random floats would dominate the test's run time
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        with zf.open(f"{STEM}/epoch_20.pt", "w", force_zip64=True) as member:
            torch.save(payload, member)


@pytest.fixture(scope="module")
def source() -> Source:
    torch.manual_seed(1234)
    model = open_clip.create_model("ViT-B-32").eval()
    gen = torch.Generator().manual_seed(5)
    pil = [
        Image.fromarray((torch.rand(200, 260, 3, generator=gen) * 255).to(torch.uint8).numpy())
        for _ in range(2)
    ]
    transform = open_clip.image_transform(224, is_train=False)
    images = torch.stack([transform(im) for im in pil])
    tokens = open_clip.get_tokenizer("ViT-B-32")(TEXTS)
    with torch.inference_mode():
        image_features = model.encode_image(images)
        text_features = model.encode_text(tokens)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    return Source(model, images, pil, image_features, text_features, sd)


def _unit(x: torch.Tensor) -> np.ndarray:
    return (x / x.norm(dim=-1, keepdim=True)).numpy()


def test_skyclip_preset_reproduces_the_source_model(source: Source, tmp_path: Path) -> None:
    archive = tmp_path / f"{STEM}.zip"
    _write_skyscript_zip(archive, _skyscript_payload(source.state_dict, source.model))

    loaded = load_model("skyclip-vit-b32", cache_dir=tmp_path, allow_download=False)

    assert (loaded.name, loaded.arch, loaded.embed_dim, loaded.image_size) == (
        "skyclip-vit-b32",
        "ViT-B-32",
        512,
        224,
    )
    assert not loaded.model.training
    assert loaded.meta["epoch"] == 20 and loaded.meta["name"] == STEM and "optimizer" not in loaded.meta
    extracted = tmp_path / STEM / "epoch_20.pt"
    assert Path(loaded.weights) == extracted.resolve()
    # the extracted checkpoint's hash is recorded; the hand-placed zip was checked by its members' CRCs
    assert checksum_record_path(extracted).is_file()
    with torch.inference_mode():
        model: Any = loaded.model
        img = model.encode_image(source.images)
        txt = model.encode_text(loaded.tokenizer(TEXTS))
    torch.testing.assert_close(img, source.image_features, rtol=0, atol=1e-6)
    torch.testing.assert_close(txt, source.text_features, rtol=0, atol=1e-6)
    # the helpers give the same vectors, normalised, from PIL images through preprocess_val
    np.testing.assert_allclose(
        encode_images(loaded, source.pil, batch_size=1), _unit(source.image_features), atol=1e-5
    )
    np.testing.assert_allclose(
        encode_texts(loaded, TEXTS, batch_size=2), _unit(source.text_features), atol=1e-5
    )


def test_mismatched_checkpoint_names_the_keys(source: Source, tmp_path: Path) -> None:
    bad = dict(source.state_dict)
    del bad["visual.ln_post.weight"]
    bad["visual.extra_head.weight"] = torch.zeros(3)
    bad["text_projection"] = torch.zeros(512, 256)
    raw = tmp_path / "RemoteCLIP-like.pt"
    torch.save(bad, raw)  # RemoteCLIP's layout: a raw state_dict without prefix

    with pytest.raises(CheckpointMismatchError) as info:
        load_model(f"path:{raw}#ViT-B-32", cache_dir=tmp_path)

    err = info.value
    message = str(err)
    assert f"Checkpoint {raw} does not match architecture 'ViT-B-32'" in message
    assert "1 missing key(s): visual.ln_post.weight" in message
    assert "1 unexpected key(s): visual.extra_head.weight" in message
    assert "1 shape mismatch(es): text_projection (checkpoint [512, 256] vs model [512, 512])" in message
    assert err.missing == ["visual.ln_post.weight"]
    assert err.unexpected == ["visual.extra_head.weight"]
    assert err.shape_mismatches == [("text_projection", (512, 256), (512, 512))]


def test_plain_skyscript_checkpoint_loads_without_naming_its_architecture(source: Source, tmp_path: Path) -> None:
    ckpt = tmp_path / "my_run" / "epoch_20.pt"  # not a preset's file name: the shapes alone decide
    ckpt.parent.mkdir()
    torch.save(_skyscript_payload(source.state_dict, source.model), ckpt)

    loaded = load_model(f"path:{ckpt}", cache_dir=tmp_path)

    # ViT-B-32 and ViT-B-32-quickgelu have the same tensors; both B/32 presets use plain GELU
    assert (loaded.arch, loaded.embed_dim, loaded.image_size) == ("ViT-B-32", 512, 224)
    assert loaded.meta["epoch"] == 20
    with torch.inference_mode():
        model: Any = loaded.model
        img = model.encode_image(source.images)
        txt = model.encode_text(loaded.tokenizer(TEXTS))
    torch.testing.assert_close(img, source.image_features, rtol=0, atol=1e-6)
    torch.testing.assert_close(txt, source.text_features, rtol=0, atol=1e-6)


def test_ambiguous_and_unknown_shapes_ask_for_the_architecture(source: Source, tmp_path: Path) -> None:
    # ViT-B/16 has B/32's tensors except the patch embedding and the positions: same size, other shapes
    b16 = dict(source.state_dict)
    b16["visual.conv1.weight"] = torch.zeros(768, 3, 16, 16)
    b16["visual.positional_embedding"] = torch.zeros(197, 768)
    ambiguous = tmp_path / "b16.pt"
    torch.save(b16, ambiguous)
    with pytest.raises(UnknownModelError) as info:
        load_model(f"path:{ambiguous}", cache_dir=tmp_path)
    message = str(info.value)
    assert "fit 2 open_clip architectures" in message and "QuickGELU" in message
    assert f"'path:{ambiguous}#ViT-B-16', 'path:{ambiguous}#ViT-B-16-quickgelu'" in message

    odd = dict(source.state_dict)  # a 256-d embedding: no open_clip config has it
    odd["text_projection"] = torch.zeros(512, 256)
    odd["visual.proj"] = torch.zeros(768, 256)
    unknown = tmp_path / "odd.pt"
    torch.save(odd, unknown)
    with pytest.raises(UnknownModelError, match="no open_clip architecture has exactly its tensors") as info:
        load_model(f"path:{unknown}", cache_dir=tmp_path)
    assert "embedding 256" in str(info.value) and f"'path:{unknown}#ARCH'" in str(info.value)


def _meta_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """The tensor names and shapes of ``arch`` without allocating its weights."""
    with torch.device("meta"):
        return open_clip.create_model(arch, device="meta").state_dict()


def test_presets_decide_between_architectures_that_shapes_cannot_tell_apart() -> None:
    l14 = _meta_state_dict("ViT-L-14-quickgelu")
    # SkyCLIP's published L/14 files are QuickGELU, RemoteCLIP's is not; the file name tells them apart
    for stem in ("SkyCLIP_ViT_L14_top30pct", "SkyCLIP_ViT_L14_top30pct_filtered_by_CLIP_laion_RS"):
        extracted = Path("/cache/extracted/x-1234") / stem / "epoch_20.pt"
        assert infer_arch(l14, source=extracted, spec_file="x.zip") == "ViT-L-14-quickgelu"
    assert infer_arch(l14, source=Path("/data/RemoteCLIP-ViT-L-14.pt"), spec_file="x.pt") == "ViT-L-14"
    with pytest.raises(UnknownModelError) as info:
        infer_arch(l14, source=Path("/data/finetuned.pt"), spec_file="/data/finetuned.pt")
    message = str(info.value)
    assert "ViT-L-14 (preset remoteclip-vit-l14)" in message
    assert "ViT-L-14-quickgelu (presets skyclip-vit-l14, skyclip-vit-l14-top50pct, skyclip-vit-l14-laionrs)" in message
    assert "'path:/data/finetuned.pt#ViT-L-14-quickgelu'" in message
    # the only preset with RN50 shapes uses plain RN50
    assert infer_arch(_meta_state_dict("RN50"), source=Path("/data/rn.pt"), spec_file="rn.pt") == "RN50"
    # OpenAI's own TorchScript archives were trained with QuickGELU, whatever the presets use
    b32 = _meta_state_dict("ViT-B-32")
    assert infer_arch(b32, source=Path("/data/ViT-B-32.pt"), spec_file="x", openai_archive=True) == "ViT-B-32-quickgelu"
    assert infer_arch(b32, source=Path("/data/ViT-B-32.pt"), spec_file="x") == "ViT-B-32"
