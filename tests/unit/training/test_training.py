"""The fine-tuning loop on a tiny real open_clip model and tiny real image files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.unit.training.tiny import make_images, tiny_model
from tools.augment import AugmentConfig, train_transform_like
from tools.training import (
    StepInfo,
    TrainConfig,
    TrainItem,
    TrainResult,
    build_optimizer,
    load_train_state,
    sample_seed,
    train,
    wise_ft,
)

BASE: dict[str, Any] = {"batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "num_workers": 0, "log_every": 1}


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[TrainItem]:
    folder = tmp_path_factory.mktemp("images")
    return [TrainItem(p, caps) for p, caps in make_images(folder, 12)]


def _run(
    items: list[TrainItem], out: Path, *, resume: bool = False, on_step: Any = None, **overrides: Any
) -> tuple[torch.nn.Module, TrainResult]:
    config = TrainConfig(**{**BASE, **overrides})
    model, _, pre_val, tokenizer = tiny_model(seed=0)
    transform = train_transform_like(pre_val, config.augment)
    result = train(
        model,
        tokenizer,
        transform,
        items,
        config,
        out_dir=out,
        resume=resume,
        progress=False,
        on_step=on_step,
    )
    return model, result


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:5]}"


def test_trains_logs_and_checkpoints(items: list[TrainItem], tmp_path: Path) -> None:
    seen: list[StepInfo] = []
    model, res = _run(items, tmp_path, epochs=2, checkpoint_every=4, on_step=seen.append)
    assert (res.steps, res.total_steps, res.epochs, res.samples_seen) == (6, 6, 2, 24)
    assert res.completed and res.resumed_from_step is None
    assert res.samples_per_s > 0 and res.final_loss == pytest.approx(seen[-1].loss)
    assert [s.step for s in seen] == [1, 2, 3, 4, 5, 6]
    assert [s.checkpoint is not None for s in seen] == [False, False, False, True, False, True]
    assert [s.epoch for s in seen] == [0, 0, 0, 1, 1, 1]
    assert seen[0].lr == seen[1].lr == pytest.approx(1e-3)  # one warmup step, then the top of the cosine
    assert all(a.lr > b.lr for a, b in zip(seen[1:], seen[2:], strict=False))
    assert 0 < res.logit_scale <= 100

    records = [json.loads(line) for line in res.log_path.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert set(records[0]) >= {"step", "epoch", "loss", "lr", "samples_per_s", "logit_scale", "time"}

    state = load_train_state(res.checkpoint_path)
    assert (state["step"], state["epoch"], state["step_in_epoch"]) == (6, 2, 0)
    assert res.final_model_path is not None and res.checkpoints == [res.checkpoint_path, res.final_model_path]
    fresh, *_ = tiny_model(seed=1)
    fresh.load_state_dict(torch.load(res.final_model_path, weights_only=True)["state_dict"], strict=True)
    _assert_same_weights(fresh, model)
    assert not model.training


def test_loss_goes_down(items: list[TrainItem], tmp_path: Path) -> None:
    one_caption = [TrainItem(it.image_path, it.captions[:1]) for it in items]
    seen: list[StepInfo] = []
    no_aug = AugmentConfig(rotate90=False, color_jitter=0.0, scale=(1.0, 1.0))
    _run(
        one_caption,
        tmp_path,
        epochs=8,
        batch_size=6,
        checkpoint_every=None,
        augment=no_aug,
        on_step=seen.append,
    )
    first, last = sum(s.loss for s in seen[:3]) / 3, sum(s.loss for s in seen[-3:]) / 3
    assert last < 0.8 * first, (first, last)


def test_result_does_not_depend_on_num_workers(items: list[TrainItem], tmp_path: Path) -> None:
    a, _ = _run(items, tmp_path / "w0", epochs=2, num_workers=0)
    b, _ = _run(items, tmp_path / "w2", epochs=2, num_workers=2)
    _assert_same_weights(a, b)


def test_same_seed_same_weights_other_seed_other_weights(items: list[TrainItem], tmp_path: Path) -> None:
    a, _ = _run(items, tmp_path / "a", max_steps=2)
    b, _ = _run(items, tmp_path / "b", max_steps=2)
    c, _ = _run(items, tmp_path / "c", max_steps=2, seed=1)
    _assert_same_weights(a, b)
    assert not torch.equal(a.state_dict()["visual.proj"], c.state_dict()["visual.proj"])


def test_accumulation_equals_one_big_batch(items: list[TrainItem], tmp_path: Path) -> None:
    # The same 8 samples per step (order and augmentation depend only on seed, epoch, index), and cached
    # features keep all 8 as negatives: the same gradients, up to float summation order.
    accum, _ = _run(items, tmp_path / "accum", batch_size=4, accum_steps=2, max_steps=1)
    big, _ = _run(items, tmp_path / "big", batch_size=8, accum_steps=1, max_steps=1)
    start, *_ = tiny_model(seed=0)
    for key, value in big.state_dict().items():
        torch.testing.assert_close(accum.state_dict()[key], value, atol=2e-6, rtol=1e-5, msg=key)
    moved = (big.state_dict()["visual.proj"] - start.state_dict()["visual.proj"]).abs().max()
    assert moved > 1e-4  # the step did something to compare


def test_stop_and_resume_matches_uninterrupted(items: list[TrainItem], tmp_path: Path) -> None:
    ref, _ = _run(items, tmp_path / "ref", epochs=2, wise_alpha=0.3, ema_decay=0.8)
    _, stopped = _run(
        items,
        tmp_path / "run",
        epochs=2,
        wise_alpha=0.3,
        ema_decay=0.8,
        checkpoint_every=10,
        on_step=lambda info: info.step == 4,
    )
    assert not stopped.completed and stopped.steps == 4 and stopped.final_model_path is None
    assert load_train_state(stopped.checkpoint_path)["step"] == 4  # written on stop
    resumed, res = _run(items, tmp_path / "run", epochs=2, wise_alpha=0.3, ema_decay=0.8, num_workers=2,
                        resume=True)
    assert res.completed and res.resumed_from_step == 4 and res.steps == 6
    _assert_same_weights(ref, resumed)
    # Resuming a finished run changes nothing (WiSE-FT is applied to the checkpoint, not twice).
    again, res2 = _run(items, tmp_path / "run", epochs=2, wise_alpha=0.3, ema_decay=0.8, resume=True)
    assert res2.resumed_from_step == 6
    _assert_same_weights(ref, again)


def test_resume_without_checkpoint_starts_afresh(items: list[TrainItem], tmp_path: Path) -> None:
    torn = tmp_path / ".checkpoint-latest.pt.tmp-12345"  # as left by a run killed mid-write
    torn.write_bytes(b"half a checkpoint")
    _, res = _run(items, tmp_path, max_steps=1, resume=True)
    assert res.resumed_from_step is None and res.steps == 1
    assert not torn.exists()


def test_resume_refuses_changed_config_or_items(items: list[TrainItem], tmp_path: Path) -> None:
    _run(items, tmp_path, max_steps=2)
    with pytest.raises(ValueError, match=r"config changed \(lr: 0.001 -> 0.002\)"):
        _run(items, tmp_path, max_steps=2, lr=2e-3, resume=True)
    with pytest.raises(ValueError, match="training items differ"):
        _run(items[::-1], tmp_path, max_steps=2, resume=True)
    _, res = _run(items, tmp_path, max_steps=2, num_workers=1, log_every=5, resume=True)  # harmless changes
    assert res.resumed_from_step == 2


@pytest.mark.parametrize("tower", ["text", "image"])
def test_frozen_tower_stays_put_in_eval_mode(items: list[TrainItem], tmp_path: Path, tower: str) -> None:
    start, *_ = tiny_model(seed=0)
    modes: list[tuple[bool, bool]] = []
    holder: dict[str, Any] = {}

    config = TrainConfig(**{**BASE, "max_steps": 2, "freeze": tower})
    model, _, pre_val, tokenizer = tiny_model(seed=0)
    holder["m"] = model
    train(
        model,
        tokenizer,
        None,
        items,
        config,
        out_dir=tmp_path,
        progress=False,
        on_step=lambda _: modes.append((holder["m"].visual.training, holder["m"].transformer.training)),
    )
    before, after = start.state_dict(), model.state_dict()
    for key in after:
        is_image = key.startswith("visual.")
        frozen = (tower == "image") == is_image and key != "logit_scale"
        assert torch.equal(before[key], after[key]) == frozen, key
    expected = (False, True) if tower == "image" else (True, False)
    assert modes == [expected, expected]
    assert all(
        not p.requires_grad
        for n, p in model.named_parameters()
        if n.startswith("visual.") == (tower == "image") and n != "logit_scale"
    )


def test_optimizer_skips_decay_on_gains_biases_and_temperature() -> None:
    model, *_ = tiny_model()
    opt = build_optimizer(model, TrainConfig(weight_decay=0.1))
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    assert {
        "logit_scale",
        "visual.class_embedding",
        "ln_final.weight",
        "ln_final.bias",
        "visual.conv1.weight",
    } - {"visual.conv1.weight"} <= no_decay
    assert {"visual.conv1.weight", "token_embedding.weight", "text_projection", "visual.proj"} <= decay
    assert not any("bias" in n or ".ln" in n for n in decay)
    assert no_decay | decay == set(names.values()) and not no_decay & decay


def test_wise_ft_interpolates() -> None:
    start = {"w": torch.zeros(3), "b": torch.full((2,), 4.0, dtype=torch.float64), "n": torch.tensor(1)}
    ft = {"w": torch.ones(3), "b": torch.zeros(2, dtype=torch.float64), "n": torch.tensor(7)}
    mid = wise_ft(start, ft, 0.25)
    torch.testing.assert_close(mid["w"], torch.full((3,), 0.25))
    torch.testing.assert_close(mid["b"], torch.full((2,), 3.0, dtype=torch.float64))
    assert mid["n"].item() == 7  # non-float: taken from the finetuned weights
    assert all(torch.equal(wise_ft(start, ft, 0.0)[k], start[k]) for k in ("w", "b"))
    assert all(torch.equal(wise_ft(start, ft, 1.0)[k], ft[k]) for k in start)
    with pytest.raises(ValueError, match="only in finetuned"):
        wise_ft(start, {**ft, "extra": torch.ones(1)}, 0.5)
    with pytest.raises(ValueError, match="shape mismatch"):
        wise_ft(start, {**ft, "w": torch.ones(4)}, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        wise_ft(start, ft, 1.5)


def test_wise_alpha_zero_returns_the_start_weights(items: list[TrainItem], tmp_path: Path) -> None:
    start, *_ = tiny_model(seed=0)
    model, res = _run(items, tmp_path, max_steps=2, wise_alpha=0.0)
    _assert_same_weights(start, model)
    trained = load_train_state(res.checkpoint_path)["model"]
    assert not torch.equal(trained["visual.proj"], start.state_dict()["visual.proj"])


def test_weight_average(items: list[TrainItem], tmp_path: Path) -> None:
    plain, _ = _run(items, tmp_path / "plain", epochs=2)
    decay_zero, _ = _run(items, tmp_path / "zero", epochs=2, ema_decay=0.0)  # the average is the last weights
    _assert_same_weights(plain, decay_zero)
    averaged, _ = _run(items, tmp_path / "avg", epochs=2, ema_decay=0.9)
    start, _, _, _ = tiny_model(seed=0)
    key = "visual.proj"
    p, a, s0 = plain.state_dict()[key], averaged.state_dict()[key], start.state_dict()[key]
    assert not torch.equal(p, a)
    assert (a - s0).abs().max() < (p - s0).abs().max()  # the average lags behind the moving weights


def test_batch_order_changes_the_trajectory_not_the_coverage(items: list[TrainItem], tmp_path: Path) -> None:
    models = {}
    for order in ("spread_captions", "random"):
        models[order], res = _run(items, tmp_path / order, epochs=1, batch_order=order)
        assert res.completed and res.steps == 3 and res.samples_seen == 12
    assert not torch.equal(models["spread_captions"].state_dict()["visual.proj"],
                           models["random"].state_dict()["visual.proj"])
    # the clusters a run starts from are part of its checkpoint (resuming must not recompute them)
    groups = load_train_state(tmp_path / "spread_captions" / "checkpoint-latest.pt")["caption_groups"]
    assert groups is not None and groups.shape == (12,)
    assert load_train_state(tmp_path / "random" / "checkpoint-latest.pt")["caption_groups"] is None


def test_sample_seed_is_a_pure_function() -> None:
    assert sample_seed(0, 1, 2) == sample_seed(0, 1, 2)
    seeds = {sample_seed(s, e, i) for s in range(3) for e in range(3) for i in range(50)}
    assert len(seeds) == 450


def test_input_validation(items: list[TrainItem], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a CUDA device"):
        _run(items, tmp_path, precision="bf16")
    with pytest.raises(ValueError, match="less than one optimizer step"):
        _run(items[:7], tmp_path, batch_size=4, accum_steps=2)
    with pytest.raises(ValueError, match="no caption"):
        _run([*items[:4], TrainItem(items[4].image_path, [])], tmp_path)
    with pytest.raises(RuntimeError, match="cannot read training image"):
        _run([*items[:3], TrainItem(str(tmp_path / "missing.png"), ["x"])], tmp_path)
    with pytest.raises(ValueError):
        TrainConfig(precision="fp8")  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="AMP runs on CUDA only")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_amp_on_cuda(items: list[TrainItem], tmp_path: Path, precision: str) -> None:
    config = TrainConfig(**{**BASE, "epochs": 2, "precision": precision, "accum_steps": 1})
    model, _, pre_val, tokenizer = tiny_model(seed=0)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    res = train(
        model,
        tokenizer,
        train_transform_like(pre_val),
        items,
        config,
        out_dir=tmp_path,
        device="cuda",
        progress=False,
    )
    assert res.steps == 6 and torch.isfinite(torch.tensor(res.final_loss))
    assert next(model.parameters()).device.type == "cuda"
    assert not torch.equal(model.state_dict()["visual.proj"].cpu(), start["visual.proj"])
    state = load_train_state(res.checkpoint_path)
    assert (state["scaler"] is not None) == (precision == "fp16")
