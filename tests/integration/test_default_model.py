"""The default base model, end to end: with ``SKYSCOUT_BASE_MODEL`` unset, ``active`` is ``skyscout-small``.

The rest of the suite names ``skyscout-tiny`` as its base model (tests/conftest.py) because it trains and embeds
faster; this test runs what a new user gets. The real CLI in process, the bundled UC Merced sample, real
LanceDB; nothing is faked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tools.catalog import Catalog

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT / "data" / "ucm_sample"


def test_a_new_user_trains_indexes_and_searches_with_skyscout_small(
        home: Path, run_cli: Callable[..., tuple[int, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKYSCOUT_BASE_MODEL", raising=False)
    monkeypatch.setenv("SKYSCOUT_DATA_ROOTS", str(PROJECT / "data"))
    code, doc = run_cli("ingest", "--manifest", str(SAMPLE / "train.jsonl"))
    assert code == 0 and doc["added"] == 239  # airplane02.jpg repeats airplane01.jpg byte for byte
    assert run_cli("dataset", "create")[0] == 0

    code, status = run_cli("status")
    assert code == 0 and status["active_model"] == "skyscout-small"

    code, trained = run_cli("train", "--max-steps", "4", "--num-workers", "0")
    assert code == 0, trained
    catalog = Catalog(home / "catalog.db")
    version = catalog.get_model_version(trained["model_version"])
    assert version is not None and (version["arch"], version["base"]) == ("skyscout-small", "skyscout-small")
    assert trained["config"]["lr"] == 3e-4 and trained["config"]["epochs"] == 10  # skyscout-small's recipe

    code, indexed = run_cli("index")
    assert code == 0 and indexed["count"] == 239, indexed
    code, found = run_cli("search", "a beach with waves", "-k", "5")
    assert code == 0 and len(found["hits"]) == 5
    assert found["model"] == "skyscout-small"
