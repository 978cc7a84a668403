"""Shared fixtures: a fresh SkyScout home per test, the shared real data, and a CLI runner."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Tests never touch the network: model hubs must resolve from local files only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The suite's fixtures train and index skyscout-tiny (64 px, about twice as fast as the default skyscout-small);
# tests/integration/test_default_model.py runs the real default end to end without this.
os.environ.setdefault("SKYSCOUT_BASE_MODEL", "skyscout-tiny")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real UC Merced / EuroSAT data beside the project; tests that need it skip without it."""
    if not (SHARED_DATA / "ucm_captions" / "train.jsonl").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty SKYSCOUT_HOME; data roots are the tmp dir and the shared data."""
    h = tmp_path / "home"
    monkeypatch.setenv("SKYSCOUT_HOME", str(h))
    monkeypatch.setenv("SKYSCOUT_DATA_ROOTS", f"{tmp_path}:{SHARED_DATA}")
    monkeypatch.delenv("SKYSCOUT_SETTINGS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    return h


@pytest.fixture
def run_cli(home: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, Any]]:
    """Run ``skyscout ARGS... --json`` in-process; returns (exit code, parsed JSON document)."""
    from service.cli import main

    def run(*args: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = main([*args, "--json", "--no-progress"])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else None

    return run
