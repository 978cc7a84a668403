"""Per-source repeats (``skyscout train --source-repeat SOURCE=N``): a small source keeps its share of every epoch."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from service.commands.train_options import add_train_options, train_overrides
from tools.catalog import Catalog, ImageRecord
from tools.datasets import create_dataset
from tools.modelops import train_config, training_items
from tools.training import TrainConfig


def _img(i: int, source: str) -> ImageRecord:
    return ImageRecord(id=f"{i:064x}", uri=f"/x/{source}{i}.jpg", width=8, height=8, bands=3, format="JPEG",
                       mode="RGB", source=source, status="ok", labels=["a"], metadata={"split": "train"})


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    c = Catalog(tmp_path / "c.db")
    c.add_images([_img(i, "small" if i < 3 else "large") for i in range(12)])
    c.add_captions([(f"{i:064x}", f"caption {i}", "human", None) for i in range(12)])
    return c


def test_a_repeated_source_appears_that_many_times_per_epoch(cat: Catalog) -> None:
    ds = create_dataset(cat, val_frac=0.0, test_frac=0.0)
    plain = training_items(cat, ds["id"])
    items = training_items(cat, ds["id"], source_repeats={"small": 4})
    assert len(plain) == 12 and len(items) == 12 + 3 * 3
    counts = {it.image_path: sum(j.image_path == it.image_path for j in items) for it in plain}
    assert {p: n for p, n in counts.items() if "small" in p} == {f"/x/small{i}.jpg": 4 for i in range(3)}
    assert all(n == 1 for p, n in counts.items() if "large" in p)
    assert items[:12] == plain  # the copies come after the originals; captions are kept
    assert training_items(cat, ds["id"], source_repeats={"small": 1, "large": 1}) == plain


def test_an_unknown_source_is_an_error_naming_the_known_ones(cat: Catalog) -> None:
    ds = create_dataset(cat, val_frac=0.0, test_frac=0.0)
    with pytest.raises(ValueError, match=r"\['smal'\].*\['large', 'small'\]"):
        training_items(cat, ds["id"], source_repeats={"smal": 2})


def test_the_option_parses_name_count_pairs_and_refuses_others(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_train_options(parser)
    args = parser.parse_args(["--source-repeat", "ucm_captions=7", "--source-repeat", "eurosat=1"])
    assert train_overrides(args)["source_repeats"] == {"ucm_captions": 7, "eurosat": 1}
    assert "source_repeats" not in train_overrides(parser.parse_args([]))
    for bad in ("ucm_captions", "ucm=x", "=3", "ucm=1.5"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--source-repeat", bad])
        assert "NAME=N" in capsys.readouterr().err


def test_a_repeat_below_one_is_refused_and_the_config_keeps_the_repeats() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TrainConfig(source_repeats={"a": 0})
    config = train_config(None, {"source_repeats": {"ucm_captions": 7}})
    assert config.source_repeats == {"ucm_captions": 7}
    assert config.model_dump(mode="json")["source_repeats"] == {"ucm_captions": 7}
