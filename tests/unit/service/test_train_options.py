"""The ``skyscout train`` options derived from TrainConfig, and the overrides they give."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import pytest

from service.commands.train_options import (
    AUGMENT_EXCLUDED,
    AUGMENT_OPTIONS,
    CLI_DEFAULTS,
    EXCLUDED,
    add_train_options,
    option_fields,
    train_overrides,
)
from tools.augment import AugmentConfig
from tools.modelops import train_config
from tools.training import TrainConfig

# The options `skyscout train` has always had; none may disappear or change its spelling.
KNOWN_OPTIONS = {
    "--epochs", "--batch-size", "--accum-steps", "--lr", "--weight-decay", "--warmup", "--precision", "--freeze",
    "--batch-order", "--crop-scale", "--hflip", "--no-hflip", "--color-jitter", "--mix", "--ema-decay", "--wise-alpha",
    "--max-steps", "--checkpoint-every", "--num-workers", "--seed", "--source-repeat", "--caption-groups",
    "--mask-group-pairs", "--no-mask-group-pairs", "--loss",
}
ALWAYS = {"checkpoint_every": 200, "num_workers": 2, "seed": 0}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyscout train")
    add_train_options(parser)
    return parser


def _overrides(argv: str) -> dict[str, Any]:
    return train_overrides(_parser().parse_args(argv.split()))


def test_no_options_gives_only_the_command_line_defaults() -> None:
    assert _overrides("") == ALWAYS
    assert dict(CLI_DEFAULTS) == ALWAYS


def test_options_become_overrides() -> None:
    got = _overrides(
        "--epochs 3 --batch-size 8 --accum-steps 2 --lr 1e-3 --weight-decay 0.05 --warmup 0.1 --precision bf16 "
        "--freeze text --batch-order random --ema-decay 0.998 --wise-alpha 0.5 --max-steps 7 "
        "--checkpoint-every 5 --num-workers 0 --seed 3"
    )
    assert got == {
        "epochs": 3, "batch_size": 8, "accum_steps": 2, "lr": 1e-3, "weight_decay": 0.05, "warmup_fraction": 0.1,
        "precision": "bf16", "freeze": "text", "batch_order": "random", "ema_decay": 0.998, "wise_alpha": 0.5,
        "max_steps": 7, "checkpoint_every": 5, "num_workers": 0, "seed": 3,
    }
    assert type(got["epochs"]) is int and type(got["lr"]) is float


def test_freeze_none_and_augmentation_options() -> None:
    assert _overrides("--freeze none") == {**ALWAYS, "freeze": None}
    assert _overrides("--crop-scale 0.3 --no-hflip --color-jitter 0.2") == {
        **ALWAYS, "augment": {"scale": (0.3, 1.0), "hflip": False, "color_jitter": 0.2},
    }
    assert _overrides("--hflip") == {**ALWAYS, "augment": {"hflip": True}}


@pytest.mark.parametrize("argv", ["--freeze both", "--precision fp64", "--batch-order sorted", "--epochs 1.5"])
def test_bad_values_are_refused_by_the_parser(argv: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(argv.split())
    assert "invalid" in capsys.readouterr().err


def test_the_option_names_are_kept() -> None:
    flags = {s for action in _parser()._actions for s in action.option_strings} - {"-h", "--help"}
    assert flags == KNOWN_OPTIONS


def test_every_config_field_is_an_option_or_excluded() -> None:
    fields = set(TrainConfig.model_fields)
    assert EXCLUDED <= fields, f"stale exclusions: {sorted(EXCLUDED - fields)}"
    assert set(option_fields()) == fields - EXCLUDED
    assert "augment" in EXCLUDED  # nested: covered by the augmentation options below
    augment_fields = {f.name for f in dataclasses.fields(AugmentConfig)}
    assert AUGMENT_EXCLUDED <= augment_fields and set(AUGMENT_OPTIONS) <= augment_fields
    assert set(AUGMENT_OPTIONS) | AUGMENT_EXCLUDED == augment_fields
    assert not set(AUGMENT_OPTIONS) & AUGMENT_EXCLUDED


def test_help_comes_from_the_field_descriptions() -> None:
    text = _parser().format_help()
    for name in option_fields():
        description = TrainConfig.model_fields[name].description
        assert description, f"TrainConfig.{name} has an option but no description"
        assert " ".join(description.split()[:3]) in " ".join(text.split())


def test_overrides_build_the_config_on_top_of_the_recipe() -> None:
    config = train_config(None, _overrides("--epochs 2 --freeze none --crop-scale 0.4 --no-hflip --lr 1e-4"))
    assert (config.epochs, config.freeze, config.lr, config.checkpoint_every, config.num_workers) == (
        2, None, 1e-4, 200, 2,
    )
    assert config.augment.scale == (0.4, 1.0) and config.augment.hflip is False
    assert config.augment.color_jitter == AugmentConfig().color_jitter  # not given: the recipe's


def test_a_run_from_a_fine_tuned_version_starts_at_a_tenth_of_the_recipes_rate_unless_one_is_given() -> None:
    from tools.modelops import CONTINUE_LR_FACTOR, TINY_RECIPE
    from tools.models import TINY_ARCH

    fresh = train_config(TINY_ARCH, {})
    continued = train_config(TINY_ARCH, {}, continued=True)
    assert fresh.lr == TINY_RECIPE["lr"]
    assert continued.lr == pytest.approx(TINY_RECIPE["lr"] * CONTINUE_LR_FACTOR) and continued.lr < fresh.lr
    assert train_config(TINY_ARCH, {"lr": 5e-4}, continued=True).lr == 5e-4  # an explicit rate wins


def test_each_built_model_gets_its_own_recipe_and_sample_budget() -> None:
    from tools.models import SMALL_ARCH, TINY_ARCH

    small, tiny = train_config(SMALL_ARCH, {}, n_items=1_282), train_config(TINY_ARCH, {}, n_items=1_282)
    assert (small.epochs, small.lr, tiny.epochs, tiny.lr) == (10, 3e-4, 40, 1e-3)  # UC Merced train
    assert small.augment == tiny.augment and small.batch_size == tiny.batch_size == 16
    assert train_config(SMALL_ARCH, {}, n_items=10_000).epochs == 1  # EuroSAT train: one pass
    assert train_config(TINY_ARCH, {}, n_items=10_000).epochs == 6
