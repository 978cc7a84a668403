"""SkyScript-style augmentations: output shape and normalisation, rotations, seeding, mode conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.unit.training.tiny import tiny_model
from tools.augment import (
    AugmentConfig,
    RandomRotate90,
    build_train_transform,
    normalization_of,
    train_transform_like,
)

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _image(mode: str = "RGB", size: tuple[int, int] = (48, 40)) -> Image.Image:
    arr = np.random.default_rng(0).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def test_output_shape_dtype_and_normalisation() -> None:
    plain = build_train_transform(24, MEAN, STD, rotate90=False, color_jitter=0.0, scale=(1.0, 1.0), ratio=(1, 1))
    img = _image(size=(24, 24))
    out = plain(img)
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    expected = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255 - torch.tensor(MEAN)[:, None, None]
    expected /= torch.tensor(STD)[:, None, None]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_any_mode_becomes_three_channels(mode: str) -> None:
    img = _image("L").convert(mode) if mode == "I;16" else _image(mode)
    assert build_train_transform(16, MEAN, STD)(img).shape == (3, 16, 16)


def test_rotate90_takes_all_four_orientations() -> None:
    img = torch.arange(16.0).reshape(1, 4, 4)
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        seen.add(tuple(RandomRotate90()(img).flatten().tolist()))
    assert len(seen) == 4
    pil = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    sizes = set()
    for seed in range(40):
        torch.manual_seed(seed)
        sizes.add(RandomRotate90()(pil).size)
    assert sizes == {(4, 3), (3, 4)}


def test_seeded_calls_repeat_and_seeds_differ() -> None:
    t = build_train_transform(20, MEAN, STD, hflip=True)
    img = _image()
    outs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        outs.append(t(img))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_train_transform_like_reads_the_models_preprocess() -> None:
    _, _, pre_val, _ = tiny_model()
    size, mean, std = normalization_of(pre_val)
    assert size == (32, 32) and len(mean) == 3 and len(std) == 3
    t = train_transform_like(pre_val, AugmentConfig(rotate90=False, scale=(0.8, 1.0)))
    assert t(_image()).shape == (3, 32, 32)
    assert not any(isinstance(s, RandomRotate90) for s in t.transforms)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="build_train_transform"):
        normalization_of(lambda im: im)


def test_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="scale"):
        build_train_transform(16, MEAN, STD, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="color_jitter"):
        build_train_transform(16, MEAN, STD, color_jitter_p=1.5)


def test_paste_strip_replaces_one_edge_with_the_other_image() -> None:
    from tools.training.data import paste_strip

    a, b = torch.zeros(3, 10, 20), torch.ones(3, 10, 20)
    left = paste_strip(a, b, 0.25, 0)
    assert left[:, :, :5].eq(1).all() and left[:, :, 5:].eq(0).all()
    right = paste_strip(a, b, 0.25, 1)
    assert right[:, :, -5:].eq(1).all() and right[:, :, :-5].eq(0).all()
    top = paste_strip(a, b, 0.3, 2)
    assert top[:, :3].eq(1).all() and top[:, 3:].eq(0).all()
    bottom = paste_strip(a, b, 0.3, 3)
    assert bottom[:, -3:].eq(1).all() and bottom[:, :-3].eq(0).all()
    assert a.eq(0).all()  # the input is not changed


def test_mixed_samples_keep_their_caption_repeat_with_the_seed_and_take_at_most_mix_max(tmp_path) -> None:
    from tools.training import TrainItem
    from tools.training.data import CaptionedImages

    items = []
    for i, value in enumerate((0, 255)):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((16, 16, 3), value, dtype=np.uint8)).save(path)
        items.append(TrainItem(image_path=str(path), captions=[f"caption {i}"]))
    plain = build_train_transform(16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), rotate90=False, color_jitter=0.0,
                                  scale=(1.0, 1.0), ratio=(1, 1))
    never = CaptionedImages(items, plain, seed=0)
    always = CaptionedImages(items, plain, seed=0, mix=1.0, mix_max=0.4)
    for epoch in range(4):
        x, caption = always[(epoch, 0)]
        assert caption == "caption 0" and never[(epoch, 0)][0].eq(0).all()
        share = float(x.mean())  # the strip of the white image
        assert 0.0 < share <= 0.4 + 1 / 16
        torch.testing.assert_close(x, always[(epoch, 0)][0])  # the same sample every time
    with pytest.raises(ValueError, match="mix"):
        CaptionedImages(items, plain, seed=0, mix=1.5)
