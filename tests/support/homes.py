"""Test homes built through the real CLI, shared by the test modules that need one."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT / "data" / "ucm_sample"


def indexed_sample_home(home: Path) -> Path:
    """``home`` with the bundled sample's 80 val tiles ingested and indexed by skyscout-tiny (``skyscout
    ingest`` and ``skyscout index``, in process)."""
    from service.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKYSCOUT_HOME", str(home))
        mp.setenv("SKYSCOUT_DATA_ROOTS", str(PROJECT / "data"))
        assert main(["ingest", "--manifest", str(SAMPLE / "val.jsonl"), "--json", "--no-progress"]) == 0
        assert main(["index", "--json", "--no-progress", "--num-workers", "0"]) == 0
    return home
