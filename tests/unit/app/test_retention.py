"""Retention (`skyscout gc`): the active model, its parent and the newest others keep their files; older
versions' run folders go (their rows stay); finished runs lose their checkpoints; nothing goes while a job runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from app.config import AppConfig
from app.context import AppContext
from app.retention import GcBusyError, collect


def _version(ctx: AppContext, name: str, *, parent: str | None = None, finished: bool = True) -> str:
    run = ctx.config.models_dir / "runs" / name
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(b"w" * 1000)
    (run / "checkpoint-latest.pt").write_bytes(b"c" * 3000)
    model_id = ctx.catalog.add_model_version(arch="skyscout-tiny", base="skyscout-tiny",
                                             checkpoint=str(run / "model.pt"), dataset_id=None, params={},
                                             parent=parent, model_id=f"mv-{name}")
    job = ctx.catalog.create_job("train", {"run_dir": str(run), "base": "skyscout-tiny", "dataset": "ds", "config": {}})
    ctx.catalog.update_job(job.id, state="succeeded" if finished else "failed")
    time.sleep(0.01)
    return model_id


def test_gc_keeps_the_active_model_its_parent_and_the_newest_others(tmp_path: Path) -> None:
    ctx = AppContext(AppConfig(home=tmp_path / "home", roots=(tmp_path,)))
    old1, old2 = _version(ctx, "a"), _version(ctx, "b")
    parent = _version(ctx, "c")
    active = _version(ctx, "d", parent=parent)
    newest = _version(ctx, "e")
    ctx.catalog.promote_model(active)

    dry = collect(ctx, keep_candidates=1, dry_run=True)
    assert {Path(d["path"]).name for d in dry.deleted if Path(d["path"]).is_dir()} == {"a", "b"}
    assert (ctx.config.models_dir / "runs" / "a").is_dir()  # a dry run deletes nothing

    report = collect(ctx, keep_candidates=1)
    runs = ctx.config.models_dir / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["c", "d", "e"]
    assert set(report.kept_models) == {active, parent, newest}
    for name in ("c", "d", "e"):  # finished runs keep their weights only
        assert sorted(p.name for p in (runs / name).iterdir()) == ["model.pt"]
    assert ctx.catalog.get_model_version(old1)["files_deleted_at"] and ctx.catalog.get_model_version(old2)
    assert report.freed_bytes == 2 * 4000 + 3 * 3000
    assert json.dumps(report.to_dict())


def test_gc_waits_while_a_job_runs(tmp_path: Path) -> None:
    ctx = AppContext(AppConfig(home=tmp_path / "home", roots=(tmp_path,)))
    ctx.catalog.create_job("index")
    with pytest.raises(GcBusyError, match="running"):
        collect(ctx)
