"""Held-out data stays held out on the agents' path: ``ask "retrain for 1 epoch"`` after a manifest split.

The bundled sample's manifests give each image a split (240 train, 80 val). The user records the
manifest's split, then asks the agents to retrain; the agents make their own dataset version (with the
default fractions). No image of the new model's training set may be in the split it was judged on, and
every manifest-val image must still be in val.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agents.routing import default_router
from graph.runner import AgentRunner
from tests.unit.graph.support import make_context
from tools.datasets import create_dataset
from tools.ingest import ingest_manifest

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "ucm_sample"


@pytest.mark.slow
def test_agents_retrain_never_judges_on_training_images(tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "home", [SAMPLE], router=default_router,
                       training={"max_steps": 6, "checkpoint_every": None, "num_workers": 0})
    catalog = ctx.app.catalog
    for split in ("train", "val"):
        ingest_manifest(catalog, SAMPLE / f"{split}.jsonl", allowed_roots=list(ctx.app.config.roots), progress=False)
    manifest_val = {r.id for r in catalog.iter_images() if r.metadata.get("split") == "val"}
    first = create_dataset(catalog, val_frac=0, test_frac=0)  # `skyscout dataset create --val 0 --test 0`
    assert set(catalog.dataset_split(first["id"], "val")) == manifest_val and len(manifest_val) == 80

    outcome = AgentRunner(ctx, checkpointer=InMemorySaver()).run("retrain for 1 epoch", thread_id="leak")

    assert outcome.status == "done", outcome.answer
    by_action = {r["action"]: r for r in outcome.results}
    assert by_action["train_candidate"]["status"] == "ok", by_action["train_candidate"]["summary"]
    judged = by_action["evaluate_model"]["data"]
    (model,) = catalog.list_model_versions()
    trained_on = set(catalog.dataset_split(model["dataset_id"], "train"))
    for split in ("val", "test"):
        held_out = set(catalog.dataset_split(judged["dataset_id"], split))
        assert not trained_on & held_out, f"{len(trained_on & held_out)} training images in {split}"
    assert manifest_val <= set(catalog.dataset_split(model["dataset_id"], "val"))
