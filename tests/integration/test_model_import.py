"""`skyscout models import FILE`: a model file trained elsewhere becomes a model version, once, after it loads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.models import load_model, save_checkpoint

    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, load_model("skyscout-tiny", cache_dir=path.parent / "cache"))
    return path


def test_a_model_file_is_imported_once_and_promoted_on_request(model_file: Path,
                                                               run_cli: Callable[..., tuple[int, Any]]) -> None:
    code, first = run_cli("models", "import", str(model_file))
    assert code == 0 and first["created"] and first["model_version"].startswith("mv-")
    assert first["checkpoint"] == str(model_file.resolve()) and first["active"] is None
    code, again = run_cli("models", "import", str(model_file), "--promote")
    assert code == 0 and not again["created"] and again["model_version"] == first["model_version"]
    assert again["active"] == first["model_version"]
    code, listed = run_cli("models", "list")
    assert [v["id"] for v in listed["versions"]] == [first["model_version"]]
    assert listed["versions"][0]["arch"] == again["arch"]
    code, status = run_cli("status")
    assert any(d["action"] == "promote" and d["actor"] == "user" for d in status["recent_decisions"])


def test_a_file_that_does_not_load_or_is_missing_is_refused_and_nothing_is_recorded(
        tmp_path: Path, run_cli: Callable[..., tuple[int, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    from service.cli import main

    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint at all" * 10)
    assert main(["models", "import", str(bad)]) != 0
    assert "is not a model file SkyScout can load" in capsys.readouterr().err
    assert main(["models", "import", str(tmp_path / "nowhere.pt")]) != 0
    assert "no model file at" in capsys.readouterr().err
    code, listed = run_cli("models", "list")
    assert code == 0 and listed["versions"] == []
