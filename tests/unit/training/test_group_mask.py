"""False negatives left out of the loss: with ``mask_group_pairs``, two samples whose captions belong to one
caption cluster are not pushed apart (label templates give EuroSAT ten kinds of caption for a batch of 16)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from open_clip.loss import ClipLoss

from tests.unit.training.test_training import _run
from tests.unit.training.tiny import make_images
from tools.training import TrainConfig, TrainItem
from tools.training.optim import group_masked_clip_loss
from tools.training.run import row_groups


def _features(n: int, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(n, d, generator=gen), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(n, d, generator=gen), dim=-1)
    return img, txt


def test_distinct_groups_give_clip_loss() -> None:
    img, txt = _features(6)
    scale = torch.tensor(14.0)
    expected = ClipLoss()(img, txt, scale)
    torch.testing.assert_close(group_masked_clip_loss(img, txt, scale, torch.arange(6)), expected)


def test_same_group_pairs_leave_both_softmaxes() -> None:
    img, txt = _features(4, seed=1)
    scale = torch.tensor(10.0)
    groups = torch.tensor([0, 0, 1, 2])  # samples 0 and 1 share a group
    logits = (scale * img @ txt.T).tolist()

    def ce(row: list[float], keep: list[int], target: int) -> float:
        vals = torch.tensor([row[j] for j in keep])
        return float(-(vals[keep.index(target)] - torch.logsumexp(vals, 0)))

    cols = [[logits[i][j] for i in range(4)] for j in range(4)]
    keep = {0: [0, 2, 3], 1: [1, 2, 3], 2: [0, 1, 2, 3], 3: [0, 1, 2, 3]}
    by_image = sum(ce(logits[i], keep[i], i) for i in range(4)) / 4
    by_text = sum(ce(cols[j], keep[j], j) for j in range(4)) / 4
    got = float(group_masked_clip_loss(img, txt, scale, groups))
    assert got == pytest.approx((by_image + by_text) / 2, rel=1e-5)


def test_a_caption_takes_the_cluster_of_most_images_carrying_it() -> None:
    items = [TrainItem("a", ["x", "y"]), TrainItem("b", ["x"]), TrainItem("c", ["x", "z"]), TrainItem("d", ["z"])]
    rows = {"x": 0, "y": 1, "z": 2}
    got = row_groups(items, rows, np.array([1, 1, 0, 0])).tolist()
    assert got[0] == 1 and got[1] == 1 and got[2] == 0


def test_masking_needs_clusters_and_a_frozen_text_tower() -> None:
    with pytest.raises(ValueError, match="mask_group_pairs needs"):
        TrainConfig(mask_group_pairs=True, freeze=None)
    with pytest.raises(ValueError, match="mask_group_pairs needs"):
        TrainConfig(mask_group_pairs=True, freeze="text", batch_order="random")


def test_masked_training_changes_the_step_and_accumulates_like_one_batch(tmp_path: Path) -> None:
    # Two caption kinds for 8 images per batch: most pairs in a batch share a cluster, so masking them must
    # change the gradient; accumulated micro-batches must mask the same pairs as one big batch.
    items = [TrainItem(p, [f"kind {i % 2}"]) for i, (p, _) in enumerate(make_images(tmp_path / "img", 12))]
    common = {"freeze": "text", "caption_groups": 2, "max_steps": 1}
    masked_accum, _ = _run(items, tmp_path / "a", batch_size=4, accum_steps=2, mask_group_pairs=True, **common)
    masked_big, _ = _run(items, tmp_path / "b", batch_size=8, mask_group_pairs=True, **common)
    plain, _ = _run(items, tmp_path / "c", batch_size=8, **common)
    for key, value in masked_big.state_dict().items():
        torch.testing.assert_close(masked_accum.state_dict()[key], value, atol=2e-6, rtol=1e-5, msg=key)
    assert not torch.allclose(masked_big.state_dict()["visual.proj"], plain.state_dict()["visual.proj"])
