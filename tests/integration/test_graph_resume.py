"""A run of the agent graph killed with SIGKILL mid-training resumes on the same thread without redoing work.

The request "ingest <tiles> using the folder names as labels, caption them with templates and train a model"
runs in a subprocess (this file run as a script) with a SQLite checkpointer in its SKYSCOUT_HOME. Once the
training job has written a checkpoint, the test kills the process group; a second process on the same thread
id continues from the last completed node: ingestion and captioning are not run again (one job each in the
catalog), and the training step picks its interrupted run up from its checkpoint rather than starting over.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.killing import wait_for_training_step

ROOT = Path(__file__).resolve().parents[2]
THREAD = "resume-1"
MAX_STEPS = 6


def _worker(home: Path, tiles: Path) -> None:
    """The process under test: one run of the request on THREAD (a resume when the thread is unfinished)."""
    from agents.routing import default_router
    from graph.runner import AgentRunner, default_checkpoint_path, sqlite_checkpointer
    from tests.unit.graph.support import make_context

    train = {"epochs": 5, "batch_size": 8, "max_steps": MAX_STEPS, "checkpoint_every": 2, "num_workers": 0,
             "lr": 5e-4, "log_every": 1, "freeze": "text"}
    ctx = make_context(home, [tiles.parent], training=train, router=default_router)
    request = f"ingest {tiles} using the folder names as labels, caption them with templates and train a model"
    with sqlite_checkpointer(default_checkpoint_path(home)) as saver:
        runner = AgentRunner(ctx, checkpointer=saver)
        outcome = runner.run(request, thread_id=THREAD,
                             on_event=lambda e: e[0] == "updates" and print("NODE", *e[1].keys(), flush=True))
    print("OUTCOME " + json.dumps(outcome.to_dict(), default=str), flush=True)


def _start(home: Path, tiles: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    # -m, not the file path: the script's folder on sys.path would shadow the stdlib (tests/integration/http)
    return subprocess.Popen([sys.executable, "-m", "tests.integration.test_graph_resume", str(home), str(tiles)],
                            cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_on_the_same_thread(tmp_path: Path) -> None:
    from tests.unit.graph.support import write_tiles
    from tools.catalog import Catalog

    tiles = tmp_path / "data" / "tiles"
    write_tiles(tiles, {"beach": 8, "forest": 8, "river": 8})
    home = tmp_path / "home"

    victim = _start(home, tiles)
    try:
        wait_for_training_step(home, victim, 2)  # a checkpoint after step 2
        os.killpg(victim.pid, signal.SIGKILL)  # no chance to clean up: the job stays "running"
    finally:
        victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL

    resumed = _start(home, tiles)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-4000:]
    outcome = json.loads(next(line for line in out.splitlines() if line.startswith("OUTCOME "))[8:])
    nodes = [line.split()[1] for line in out.splitlines() if line.startswith("NODE ")]

    assert outcome["status"] == "done" and outcome["resumed"] is True, outcome["errors"]
    assert nodes[0] == "training"  # the resumed run starts with the node that was killed
    assert "interpret" not in nodes and "data" not in nodes[:2]
    catalog = Catalog(home / "catalog.db")
    assert len(catalog.list_jobs(kind="ingest")) == 1 and len(catalog.list_jobs(kind="caption")) == 1
    train_jobs = sorted(catalog.list_jobs(kind="train"), key=lambda j: j.created_at)
    assert [j.state for j in train_jobs] == ["abandoned", "succeeded"]  # its process was killed (issue 11)
    assert "resumed from its last checkpoint" in (train_jobs[0].error or "")
    assert train_jobs[1].params["run_dir"] == train_jobs[0].params["run_dir"]  # same run, continued
    assert train_jobs[1].result["steps"] == MAX_STEPS
    by_action = {r["action"]: r for r in outcome["results"]}
    assert by_action["train_candidate"]["data"]["resumed_from"] == train_jobs[0].id
    assert by_action["ingest_images"]["data"]["added"] == 24 and by_action["caption_images"]["status"] == "ok"
    assert {"evaluate_model", "promote"} <= set(by_action)
    actions = [d["action"] for d in catalog.decisions(limit=50)]
    assert actions.count("ingest") == 1 and actions.count("train") == 1
    assert len(catalog.list_model_versions()) == 1


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
