"""Offline end to end on real data: one request ingests UC Merced tiles, trains, evaluates, indexes, answers.

No LLM: the MiniLM router reads "ingest <manifest>, train a model and find beaches", the planner expands it
(dataset version -> fine-tune -> evaluate against the active model -> promotion guardrails -> index) and puts
the search last; the real ``skyscout-tiny`` model trains for 12 steps on CPU (image tower only), which
already puts beaches among the first hits. The decision log must explain every step.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agents.routing import default_router
from graph.runner import AgentRunner, default_checkpoint_path, sqlite_checkpointer
from tests.unit.graph.support import make_context

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def test_ingest_train_and_find_beaches(shared_data: Path, tmp_path: Path) -> None:
    # UC Merced's val manifest (157 tiles, 16 classes, 5 human captions each) split again: every third tile stays
    # val (52, enough for the promotion check's 30), the rest train (a manifest's split is always honoured)
    manifest = tmp_path / "ucm_val_resplit.jsonl"
    with manifest.open("w") as out:
        for i, line in enumerate((shared_data / "ucm_captions" / "val.jsonl").open()):
            row = json.loads(line)
            row["split"] = "val" if i % 3 == 0 else "train"
            row["image"] = str(shared_data / "ucm_captions" / row["image"])
            out.write(json.dumps(row) + "\n")
    train = {"epochs": 10, "batch_size": 32, "max_steps": 12, "checkpoint_every": None, "num_workers": 0,
             "lr": 5e-4, "warmup_steps": 1, "warmup_fraction": None, "log_every": 1, "freeze": "text"}
    deps = make_context(tmp_path / "home", [tmp_path, shared_data], training=train, router=default_router)
    started = time.perf_counter()

    with sqlite_checkpointer(default_checkpoint_path(tmp_path / "home")) as saver:
        runner = AgentRunner(deps, checkpointer=saver)
        outcome = runner.run(f"ingest {manifest}, train a model and find beaches", thread_id="e2e")

    seconds = time.perf_counter() - started
    assert outcome.status == "done" and outcome.errors == [], outcome.answer
    assert [p["intent"] for p in outcome.interpretation["plan"]] == ["ingest", "train", "search"]
    steps = [(r["action"], r["status"]) for r in outcome.results]
    assert steps == [("ingest_images", "ok"), ("create_dataset_version", "ok"), ("train_candidate", "ok"),
                     ("evaluate_model", "ok"), ("promote", "ok"), ("build_index", "ok"), ("search_images", "ok")]
    data = {r["action"]: r["data"] for r in outcome.results}
    assert data["ingest_images"]["added"] == 157 and data["ingest_images"]["rejected"] == 0
    assert data["train_candidate"]["steps"] == 12
    assert data["evaluate_model"]["active"]["model"] == "skyscout-tiny"
    assert "retrieval_mean_recall" in data["evaluate_model"]["metrics"]
    promoted = data["promote"]["promoted"]
    assert data["build_index"]["model"] == (data["train_candidate"]["model_version"] if promoted else "skyscout-tiny")
    assert data["build_index"]["count"] == 157 and data["build_index"]["activated"]
    hits = data["search_images"]["hits"]
    assert len(hits) == 10 and all(h["label"] and h["caption"] for h in hits)
    assert data["search_images"]["query"] == "beaches"
    assert any(h["label"] == "beach" for h in hits)  # 12 steps of CPU training already find some

    log = list(reversed(deps.app.catalog.decisions(limit=50)))
    verdict = "promote" if promoted else "keep_active"
    assert [d["action"] for d in log] == ["ingest", "dataset", "train", "evaluate", verdict, "reindex", "search"]
    assert all(d["reason"] and d["outcome"] for d in log)
    assert "retrieval_mean_recall" in log[4]["reason"]
    assert outcome.answer.count("\n  #") == len(log)  # the answer shows every decision
    print(f"\n{outcome.answer}\n\nend-to-end: {seconds:.0f} s")
