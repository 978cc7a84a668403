"""``loss="siglip"``: open_clip's sigmoid loss, whose learned bias serves the loss and is not saved with the model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from open_clip.loss import SigLipLoss

from tests.unit.training.test_training import _assert_same_weights, _run
from tests.unit.training.tiny import make_images, tiny_model
from tools.training import TrainConfig, TrainItem
from tools.training.optim import SIGLIP_INIT_BIAS, add_siglip_bias
from tools.training.state import load_train_state


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[TrainItem]:
    return [TrainItem(p, caps) for p, caps in make_images(tmp_path_factory.mktemp("images"), 12)]


def test_siglip_trains_the_bias_and_saves_the_model_without_it(items: list[TrainItem], tmp_path: Path) -> None:
    model, result = _run(items, tmp_path, max_steps=3, loss="siglip")
    assert result.completed and math.isfinite(result.final_loss)
    state = load_train_state(result.checkpoint_path)
    assert "logit_bias" in state["model"]  # a resumed run goes on with the bias it had
    assert float(state["model"]["logit_bias"]) != SIGLIP_INIT_BIAS  # the loss moved it
    assert result.final_model_path is not None
    final = torch.load(result.final_model_path, weights_only=True)["state_dict"]
    assert "logit_bias" not in final and "logit_bias" not in model.state_dict()
    fresh, *_ = tiny_model(seed=1)
    fresh.load_state_dict(final, strict=True)  # the architecture it was given, nothing added


def test_siglip_step_differs_from_clip_and_accumulates_like_one_batch(items: list[TrainItem], tmp_path: Path) -> None:
    common: dict[str, Any] = {"max_steps": 1, "freeze": "text"}
    accum, _ = _run(items, tmp_path / "a", batch_size=4, accum_steps=2, loss="siglip", **common)
    big, _ = _run(items, tmp_path / "b", batch_size=8, loss="siglip", **common)
    clip, _ = _run(items, tmp_path / "c", batch_size=8, **common)
    for key, value in big.state_dict().items():
        torch.testing.assert_close(accum.state_dict()[key], value, atol=2e-6, rtol=1e-5, msg=key)
    assert not torch.allclose(big.state_dict()["visual.proj"], clip.state_dict()["visual.proj"])


def test_siglip_resume_matches_uninterrupted(items: list[TrainItem], tmp_path: Path) -> None:
    ref, _ = _run(items, tmp_path / "ref", epochs=2, loss="siglip")
    _run(items, tmp_path / "run", epochs=2, loss="siglip", on_step=lambda info: info.step == 3)
    resumed, res = _run(items, tmp_path / "run", epochs=2, loss="siglip", resume=True)
    assert res.resumed_from_step == 3 and res.completed
    _assert_same_weights(ref, resumed)


def test_a_model_with_its_own_bias_keeps_it() -> None:
    model, *_ = tiny_model(seed=0)
    assert add_siglip_bias(model) is True and float(model.state_dict()["logit_bias"]) == SIGLIP_INIT_BIAS
    model.state_dict()["logit_bias"].fill_(-3.0)
    assert add_siglip_bias(model) is False and float(model.state_dict()["logit_bias"]) == -3.0


def test_siglip_loss_is_open_clips_and_refuses_masked_pairs() -> None:
    img = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    scale, bias = torch.tensor(10.0), torch.tensor(-10.0)
    # every pair is a negative but the diagonal: -log sigmoid(+-(scale * cos + bias)), summed, over the batch
    logits = scale * img @ img.T + bias
    labels = 2 * torch.eye(4) - 1
    expected = -torch.nn.functional.logsigmoid(labels * logits).sum() / 4
    torch.testing.assert_close(SigLipLoss()(img, img, scale, bias), expected)
    with pytest.raises(ValueError, match="no siglip form"):
        TrainConfig(loss="siglip", mask_group_pairs=True, freeze="text")
