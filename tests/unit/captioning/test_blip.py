"""BLIP and BLIP-2 captioners, run for real on tiny random checkpoints built in a temporary directory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tools.captioning.base import Captioner, CaptionInput
from tools.captioning.blip import Blip2Captioner, BlipCaptioner, CaptionerUnavailableError
from tools.captioning.tiny_models import build_tiny_blip, build_tiny_blip2

UCM_IMAGES = Path(__file__).resolve().parents[4] / "shared" / "data" / "ucm_captions" / "images"
REAL_FILES = ("beach/beach00.jpg", "airplane/airplane00.jpg", "harbor/harbor00.jpg")
PROMPT = "a satellite image of"
MAX_NEW_TOKENS = 12

CaptionerClass = type[BlipCaptioner] | type[Blip2Captioner]
BACKENDS = [pytest.param(BlipCaptioner, id="blip"), pytest.param(Blip2Captioner, id="blip2")]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy machine their spin-waits cost 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_blip")
    return {"blip": build_tiny_blip(root / "blip"), "blip2": build_tiny_blip2(root / "blip2")}


def synthetic_image() -> Image.Image:
    """A grayscale gradient with a bright square, not RGB, to exercise the colour conversion."""
    y, x = np.mgrid[0:80, 0:120]
    pixels = ((x + 2 * y) % 256).astype(np.uint8)
    pixels[20:50, 40:80] = 255
    return Image.fromarray(pixels, mode="L")


@pytest.fixture(scope="module")
def batch() -> list[CaptionInput]:
    """Three real UC Merced tiles and one synthetic image."""
    if not UCM_IMAGES.is_dir():
        pytest.skip(f"real images not found at {UCM_IMAGES}")
    items = []
    for rel in REAL_FILES:
        path = UCM_IMAGES / rel
        with Image.open(path) as img:
            items.append(CaptionInput(image_id=rel, uri=str(path), image=img.convert("RGB")))
    items.append(CaptionInput(image_id="synthetic", uri="memory://synthetic", image=synthetic_image()))
    return items


def make(cls: CaptionerClass, tiny_dirs: dict[str, Path], **kwargs: object) -> BlipCaptioner | Blip2Captioner:
    kwargs.setdefault("max_new_tokens", MAX_NEW_TOKENS)
    return cls(tiny_dirs[cls.source], device="cpu", **kwargs)  # type: ignore[arg-type]


@pytest.mark.shared_data
@pytest.mark.parametrize("cls", BACKENDS)
def test_one_caption_per_image_deterministic_and_batch_independent(
    cls: CaptionerClass, tiny_dirs: dict[str, Path], batch: list[CaptionInput]
) -> None:
    captioner = make(cls, tiny_dirs, batch_size=16)
    assert isinstance(captioner, Captioner)
    assert captioner.source == cls.source
    assert captioner.model_id == str(tiny_dirs[cls.source])
    assert captioner.needs_pixels

    first = captioner.caption(batch)
    assert len(first) == len(batch)
    for captions in first:
        assert len(captions) == 1
        assert isinstance(captions[0], str) and captions[0] == captions[0].strip() and captions[0]

    # greedy decoding: a second, freshly loaded captioner says exactly the same
    assert make(cls, tiny_dirs, batch_size=16).caption(batch) == first
    # batched generation matches one image at a time, and batches of a size that splits the input
    one_by_one = make(cls, tiny_dirs, batch_size=1)
    assert [one_by_one.caption([item])[0] for item in batch] == first
    assert make(cls, tiny_dirs, batch_size=3).caption(batch) == first
    # the captions look at the pixels: not every image gets the same words
    assert len({captions[0] for captions in first}) > 1


@pytest.mark.shared_data
@pytest.mark.parametrize("cls", BACKENDS)
def test_prompt_is_continued_and_removed(
    cls: CaptionerClass, tiny_dirs: dict[str, Path], batch: list[CaptionInput]
) -> None:
    plain = make(cls, tiny_dirs).caption(batch)
    prompted_captioner = make(cls, tiny_dirs, prompt=PROMPT, batch_size=2)
    prompted = prompted_captioner.caption(batch)
    assert all(len(c) == 1 and c[0] for c in prompted)
    assert prompted != plain  # the prompt conditions the continuation
    assert not any(c[0].lower().startswith(PROMPT) for c in prompted)
    assert [prompted_captioner.caption([item])[0] for item in batch] == prompted
    # beam search goes through the same path
    beams = make(cls, tiny_dirs, num_beams=3, prompt=PROMPT).caption(batch)
    assert all(len(c) == 1 and c[0] for c in beams)


@pytest.mark.parametrize("cls", BACKENDS)
def test_loads_lazily_and_only_once(cls: CaptionerClass, tiny_dirs: dict[str, Path]) -> None:
    captioner = make(cls, tiny_dirs)
    assert not captioner.loaded
    assert captioner.caption([]) == []
    assert not captioner.loaded
    captioner.load()
    assert captioner.loaded
    model = captioner._model
    captions = captioner.caption([CaptionInput(image_id="s", uri="memory://s", image=synthetic_image())])
    assert captioner._model is model
    assert len(captions) == 1 and len(captions[0]) == 1 and captions[0][0]


@pytest.mark.parametrize("cls", BACKENDS)
def test_input_without_pixels_is_an_error(cls: CaptionerClass, tiny_dirs: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="no-pixels"):
        make(cls, tiny_dirs).caption([CaptionInput(image_id="no-pixels", uri="file:///x.jpg")])


def test_constructor_defaults_and_validation() -> None:
    blip, blip2 = BlipCaptioner(), Blip2Captioner()
    assert (blip.source, blip.model_id) == ("blip", "Salesforce/blip-image-captioning-base")
    assert (blip2.source, blip2.model_id) == ("blip2", "Salesforce/blip2-opt-2.7b")
    assert (blip.batch_size, blip.max_new_tokens, blip.num_beams, blip.prompt) == (16, 30, 1, None)
    assert not blip.loaded and not blip2.loaded
    with pytest.raises(ValueError, match="batch_size"):
        BlipCaptioner(batch_size=0)


@pytest.mark.parametrize("cls", BACKENDS)
def test_hub_id_missing_offline_says_how_to_get_weights(
    cls: CaptionerClass, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    repo_id = f"skyscout-tests/no-such-{cls.source}-model"
    captioner = cls(repo_id, device="cpu")
    with pytest.raises(CaptionerUnavailableError) as info:
        captioner.caption([CaptionInput(image_id="s", uri="memory://s", image=synthetic_image())])
    message = str(info.value)
    assert repo_id in message
    assert "HF_HUB_OFFLINE" in message
    assert f"huggingface-cli download {repo_id}" in message and f"hf download {repo_id}" in message
    assert f"--captioner {cls.source} --captioner-model /path/to/dir" in message
    assert not captioner.loaded


def test_local_files_only_flag_without_offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    captioner = BlipCaptioner("skyscout-tests/no-such-blip-model", local_files_only=True, device="cpu")
    with pytest.raises(CaptionerUnavailableError, match="local_files_only=True"):
        captioner.load()


def test_missing_or_incomplete_local_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "blip"
    with pytest.raises(CaptionerUnavailableError, match="does not exist") as info:
        BlipCaptioner(missing, device="cpu").load()
    assert str(missing) in str(info.value)
    assert "hf download Salesforce/blip-image-captioning-base --local-dir" in str(info.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CaptionerUnavailableError, match=str(empty)):
        Blip2Captioner(empty, device="cpu").load()


def test_cached_hub_id_loads_from_cache_without_network(
    tiny_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Hub id found in the HF cache is loaded local-only, even when offline mode is not switched on."""
    from huggingface_hub import constants

    repo_id = "skyscout-tests/tiny-blip"
    revision = "0" * 40
    repo_dir = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    shutil.copytree(tiny_dirs["blip"], repo_dir / "snapshots" / revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    captioner = BlipCaptioner(repo_id, device="cpu", max_new_tokens=4)
    assert captioner._load_kwargs() == {"pretrained_model_name_or_path": repo_id, "local_files_only": True}
    captions = captioner.caption([CaptionInput(image_id="s", uri="memory://s", image=synthetic_image())])
    assert captioner.model_id == repo_id and captions[0][0]
