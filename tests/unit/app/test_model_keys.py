"""One rule names a model in the catalog: ``skyscout eval`` before any promotion writes its metrics under the
key the planner reads (``skyscout-tiny``, not the word ``active``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.policy import read_signals
from service.cli import main
from service.context import Services
from tests.unit.graph.support import write_tiles
from tools.captioning.rules import TemplateCaptioner
from tools.captioning.run import caption_images
from tools.datasets import create_dataset
from tools.ingest import ingest_directory
from tools.modelref import DEFAULT_BASE_MODEL, base_model, resolve_model


def test_active_resolves_to_the_base_model_key_before_any_promotion(tmp_path: Path) -> None:
    from tools.catalog import Catalog

    catalog = Catalog(tmp_path / "catalog.db")
    ref = resolve_model(catalog, "active")
    assert (ref.spec, ref.key, ref.load_spec) == ("active", base_model(), base_model())
    mv = catalog.add_model_version(arch="skyscout-tiny", base=base_model(), dataset_id=None, params={},
                                   checkpoint=str(tmp_path / "m.pt"))
    catalog.promote_model(mv)
    assert resolve_model(catalog, "active").key == mv == resolve_model(catalog, mv).key


def test_eval_before_promotion_and_the_planner_share_the_metric_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_tiles(tmp_path / "tiles", {"beach": 6, "forest": 6, "river": 6})
    monkeypatch.setenv("SKYSCOUT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SKYSCOUT_DATA_ROOTS", str(tmp_path))
    monkeypatch.setenv("SKYSCOUT_DEVICE", "cpu")
    catalog = Services().app.catalog
    ingest_directory(catalog, tmp_path / "tiles", allowed_roots=[tmp_path.resolve()], labels_from_folders=True,
                     progress=False)
    caption_images(catalog, TemplateCaptioner(), progress=False)
    dataset = create_dataset(catalog, val_frac=0.34, test_frac=0.0)["id"]
    capsys.readouterr()

    assert main(["eval", "--json"]) == 0  # the model is "active": nothing has been promoted yet

    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == base_model()
    assert {e["model"] for e in catalog.evaluations()} == {base_model()}
    signals = read_signals(catalog)
    assert signals.active_model == base_model() and signals.active_metrics_dataset == dataset
    assert signals.active_metrics is not None and signals.active_metrics["top1"] == doc["zeroshot"]["top1"]


def test_the_base_model_is_skyscout_small_unless_the_environment_names_another(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKYSCOUT_BASE_MODEL", raising=False)
    assert base_model() == DEFAULT_BASE_MODEL == "skyscout-small"
    monkeypatch.setenv("SKYSCOUT_BASE_MODEL", " skyscout-tiny ")
    assert base_model() == "skyscout-tiny"
