"""Ingest the real shared data through the CLI: 12,440 files, a second run adds nothing, template captions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.shared_data


def test_ingest_ucm_and_eurosat_then_caption(shared_data: Path, run_cli: Callable[..., tuple[int, Any]]) -> None:
    manifests = [shared_data / "ucm_captions" / "train.jsonl", shared_data / "ucm_captions" / "val.jsonl",
                 shared_data / "eurosat" / "train.jsonl", shared_data / "eurosat" / "val.jsonl"]
    first = [run_cli("ingest", "--manifest", str(m))[1] for m in manifests]
    assert sum(r["scanned"] for r in first) == 12_440
    assert all(r["rejected"] == [] for r in first)
    # UC Merced ships one byte-identical pair (airplane01/airplane02): stored once, reported as a duplicate.
    assert sum(r["added"] for r in first) + sum(r["duplicates"] for r in first) == 12_440
    assert sum(r["duplicates"] for r in first) == 1
    assert first[0]["captions_added"] > 5 * 1000

    second = [run_cli("ingest", "--manifest", str(m))[1] for m in manifests]
    assert sum(r["added"] for r in second) == 0
    assert sum(r["captions_added"] for r in second) == 0

    code, status = run_cli("status")
    assert code == 0 and status["images"] == 12_439 and status["sources"] == {"eurosat": 11_000,
                                                                              "ucm_captions": 1_439}
    code, cap = run_cli("caption", "--captioner", "template")
    # UC Merced's 1,439 tiles carry human captions, better than a template: only EuroSAT's are captioned
    assert code == 0 and cap["captioned"] == 11_000 and cap["nothing_to_say"] == 0
    code, status = run_cli("status")
    assert status["uncaptioned"] == 0

    code, ds = run_cli("dataset", "create", "--source", "eurosat", "--val", "0",
                       "--test", "0")
    assert code == 0 and ds["splits"] == {"train": 10_000, "val": 1_000, "test": 0}


def test_cli_errors_are_clear(run_cli: Callable[..., tuple[int, Any]], tmp_path: Path) -> None:
    code, doc = run_cli("ingest", "/etc")
    assert code == 2 and "outside the allowed data roots" in doc["error"]
    code, doc = run_cli("ingest", "--manifest", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "does not exist" in doc["error"]
    code, doc = run_cli("dataset", "export", "ds-unknown", "--out", str(tmp_path / "x"))
    assert code == 2 and "unknown dataset version" in doc["error"]
