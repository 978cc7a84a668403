"""The scheduled improvement loop on real data: new files in a watched folder become searchable after a
tick; negative feedback on search results leads to a recorded retraining decision."""

from __future__ import annotations

import shutil
from pathlib import Path

from agents.policy import PlannerPolicy
from app.indexing import build_index
from service.context import Services
from service.scheduler import ImprovementLoop, improvement_tick
from service.settings import Settings
from tools.indexes import active_index
from tools.ingest import ingest_manifest

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT / "data" / "ucm_sample"


def test_watched_folder_then_feedback(tmp_path: Path) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    settings = Settings(home=tmp_path / "home", data_roots=f"{tmp_path}:{PROJECT / 'data'}", watch_dirs=str(watch))
    services = Services(settings)
    ctx = services.app
    ingest_manifest(ctx.catalog, SAMPLE / "val.jsonl", allowed_roots=settings.roots, progress=False)
    build_index(ctx, model="skyscout-tiny", num_workers=0)
    # Approval is required for training, so the loop records its retraining decision without a long run.
    services.agents.policy = PlannerPolicy(min_negative_feedback=3, require_approval=True)
    loop = ImprovementLoop(lambda: improvement_tick(services), interval=3600,
                           lock_path=settings.home / "improve.lock")

    # New tiles dropped into the watched folder (uncaptioned copies of sample images, in a "beach" folder).
    (watch / "beach").mkdir()
    for src in sorted((SAMPLE / "images" / "beach").glob("*.jpg"))[:5]:
        shutil.copy(src, watch / "beach" / f"new_{src.name}")
    first = loop.run_once()
    assert first["ingested"] == [{"folder": str(watch), "added": 5, "rejected": 0}]
    actions = [d["action"] for d in first["decisions"]]
    # Offline the round's captioner is the template one: it has no labels or tags to describe these tiles with,
    # and a folder's name is no caption unless a person asks for it (`caption --from-folders`), so the round
    # indexes them uncaptioned rather than caption them "beach" on a guess.
    assert "reindex" in actions and "caption" not in actions, first
    new_ids = {r.id for r in ctx.catalog.iter_images() if "new_" in r.uri}
    assert len(new_ids) == 5 and new_ids <= set(ctx.catalog.images_without_caption(None))
    record = active_index(ctx.catalog, "lancedb")
    store = ctx.open_index(record["name"], record["dim"])
    assert new_ids <= store.ids(), "new tiles are not in the active index after the tick"

    # Users mark three results of a query as not relevant: the next tick decides to retrain.
    for image_id in sorted(new_ids)[:3]:
        ctx.catalog.add_feedback(image_id=image_id, relevant=False, query="harbor", query_id="q-test")
    second = loop.run_once()
    retrain = [d for d in second["decisions"] if d["action"] == "retrain"]
    assert retrain and "not relevant" in retrain[0]["reason"], second
    logged = ctx.catalog.decisions(action="retrain")
    assert logged and logged[0]["reason"] == retrain[0]["reason"]
    assert second["status"] == "awaiting_approval"  # the round waits for a person before it trains
    jobs = ctx.catalog.list_jobs(kind="improve")
    assert len(jobs) == 2 and all(j.state == "succeeded" for j in jobs)
