"""``skyscout train`` options derived from :class:`~tools.training.TrainConfig` and the augmentation config.

:func:`add_train_options` adds one option per user-facing config field: its type comes from the field's
annotation, its help from the field's description, its choices from a ``Literal`` type (plus ``none`` where
the field may be None), and a bool becomes ``--x/--no-x``. Every option defaults to None, "the model's recipe
decides" (:func:`tools.modelops.train_config`), except those in :data:`CLI_DEFAULTS`, which the command line
has always set. :func:`train_overrides` turns the parsed options back into that function's overrides.

A config field must be an option or be listed in :data:`EXCLUDED` (a test checks it), so a new field cannot
be forgotten silently.

It reads the configs only (:mod:`tools.training.config`), so building the command line loads no torch.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from tools.training.config import AugmentConfig, TrainConfig

__all__ = [
    "AUGMENT_EXCLUDED",
    "AUGMENT_OPTIONS",
    "CLI_DEFAULTS",
    "EXCLUDED",
    "RENAMES",
    "add_train_options",
    "option_fields",
    "train_overrides",
]

#: Config fields without an option: finer optimizer constants, the fixed-step warmup (``--warmup`` sets it as a
#: fraction), gradient clipping, logging cadence and determinism keep the recipe's or the config's defaults;
#: ``augment`` is nested and has the options of :data:`AUGMENT_OPTIONS`.
EXCLUDED: frozenset[str] = frozenset({
    "beta1", "beta2", "eps", "min_lr", "warmup_steps", "grad_clip", "log_every", "deterministic", "augment",
})

#: Config fields whose option is not ``--field-name`` (the parsed value still goes to ``args.<field>``).
RENAMES: Mapping[str, str] = {"warmup_fraction": "--warmup", "source_repeats": "--source-repeat"}

#: Options with a default on the command line (as ``skyscout train`` has always had): these are always passed.
CLI_DEFAULTS: Mapping[str, Any] = {"checkpoint_every": 200, "num_workers": 2, "seed": 0}

#: The augmentation options: ``AugmentConfig`` field -> (option, help). ``--crop-scale MIN`` sets ``scale``
#: to ``(MIN, 1.0)``; the others take the field's type.
AUGMENT_OPTIONS: Mapping[str, tuple[str, str]] = {
    "scale": ("--crop-scale", "smallest random-resized-crop area, as a fraction of the image"),
    "hflip": ("--hflip", "random horizontal flips"),
    "color_jitter": ("--color-jitter", "brightness/contrast/saturation jitter strength"),
    "mix": ("--mix", "fraction of samples given a strip of another image along one edge (chips cut across "
                     "boundaries)"),
}

#: ``AugmentConfig`` fields without an option (they keep the recipe's values).
AUGMENT_EXCLUDED: frozenset[str] = frozenset({"rotate90", "color_jitter_p", "hue", "ratio", "interpolation",
                                             "mix_max"})

_NONE = "none"  # the choice that sets an optional Literal field (e.g. --freeze) to None
_RECIPE = "options left out take the model's recipe"


def option_fields() -> list[str]:
    """The ``TrainConfig`` fields that have an option, in the config's order."""
    return [name for name in TrainConfig.model_fields if name not in EXCLUDED]


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Add the training options (``--epochs``, ``--lr``, ..., ``--crop-scale``, ``--hflip``) to ``parser``."""
    group = parser.add_argument_group("training options", _RECIPE)
    for name in option_fields():
        info = TrainConfig.model_fields[name]
        default = CLI_DEFAULTS.get(name)
        text = _escape(info.description or name.replace("_", " "))
        text += f" (default: {default})" if default is not None else ""
        group.add_argument(RENAMES.get(name, "--" + name.replace("_", "-")), dest=name, default=default,
                           help=text, **_kind(name, info.annotation))
    augment = parser.add_argument_group("augmentation options", _RECIPE)
    hints = get_type_hints(AugmentConfig)
    for name, (flag, text) in AUGMENT_OPTIONS.items():
        if name == "scale":
            augment.add_argument(flag, dest="crop_scale", type=float, metavar="MIN", default=None, help=text)
        else:
            augment.add_argument(flag, dest=name, default=None, help=text, **_kind(name, hints[name]))


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (or with a CLI default), as ``train_config`` overrides.

    ``--freeze none`` becomes ``freeze=None``; the augmentation options go under ``"augment"`` (present only
    when one is given), ``--crop-scale MIN`` as ``scale=(MIN, 1.0)``.
    """
    overrides: dict[str, Any] = {}
    for name in option_fields():
        value = getattr(args, name, None)
        if isinstance(value, list):  # NAME=N pairs of an appended option
            overrides[name] = dict(value)
        elif value is not None:
            overrides[name] = None if value == _NONE and _has_none_choice(name) else value
    augment: dict[str, Any] = {}
    for name in AUGMENT_OPTIONS:
        value = getattr(args, "crop_scale" if name == "scale" else name, None)
        if value is not None:
            augment[name] = (value, 1.0) if name == "scale" else value
    if augment:
        overrides["augment"] = augment
    return overrides


def _kind(name: str, annotation: Any) -> dict[str, Any]:
    """``add_argument`` keywords for a field of type ``annotation``: type, choices, or a boolean action."""
    base = _without_none(annotation)
    if get_origin(base) is Literal:
        choices = tuple(get_args(base)) + ((_NONE,) if _allows_none(annotation) else ())
        return {"type": type(choices[0]), "choices": choices}
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if base in (int, float, str):
        return {"type": base}
    if get_origin(base) is dict and get_args(base) == (str, int):
        return {"action": "append", "type": _name_count, "metavar": "NAME=N"}
    raise TypeError(f"config field {name!r} has type {annotation!r}, which has no command-line form; "
                    "give it a case here or list it in EXCLUDED")


def _name_count(text: str) -> tuple[str, int]:
    """``NAME=N`` (e.g. ``ucm_captions=7``) as ``(name, n)``."""
    name, sep, count = text.rpartition("=")
    if not sep or not name or not count.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=N with a whole number N, got {text!r}")
    return name.strip(), int(count)


def _has_none_choice(name: str) -> bool:
    """Whether the option of config field ``name`` has the choice ``none`` (an optional ``Literal``)."""
    annotation = TrainConfig.model_fields[name].annotation
    return _allows_none(annotation) and get_origin(_without_none(annotation)) is Literal


def _allows_none(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation)


def _without_none(annotation: Any) -> Any:
    if not _allows_none(annotation):
        return annotation
    rest = [a for a in get_args(annotation) if a is not type(None)]
    return rest[0] if len(rest) == 1 else annotation  # a wider union has no command-line form


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse %-formats help texts
