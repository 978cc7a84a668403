"""``skyscout improve --once`` killed with SIGKILL mid-training: the next ``improve --once`` resumes the round.

Both rounds are real CLI processes over the bundled sample (320 captioned UC Merced tiles), so the round
goes the way every improvement round goes: through the compiled agent graph with its SQLite checkpointer
in SKYSCOUT_HOME. The planner decides to retrain (320 captioned pairs the base model never saw); once the
training job has written a checkpoint, the process group is killed. The second ``improve --once`` finds the
unfinished round's thread, starts at the training step (the dataset step before it is not run again), picks
the interrupted training run up from its checkpoint, and the round ends with exactly one new model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from service.context import Services
from service.settings import Settings
from tests.integration.killing import wait_for_training_step
from tools.catalog import Catalog
from tools.ingest import ingest_manifest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "ucm_sample"
STEPS = 60


def _improve(home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "SKYSCOUT_HOME": str(home), "SKYSCOUT_DATA_ROOTS": str(ROOT / "data"),
           "SKYSCOUT_ROUND_TRAINING": json.dumps({"max_steps": STEPS, "checkpoint_every": 2, "num_workers": 0})}
    return subprocess.Popen([sys.executable, "-m", "service.cli", "improve", "--once"], cwd=ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.slow
def test_improve_once_killed_mid_training_resumes_at_the_training_step(tmp_path: Path) -> None:
    home = tmp_path / "home"
    app = Services(Settings(home=home, data_roots=str(ROOT / "data"))).app
    for split in ("train", "val"):
        ingest_manifest(app.catalog, SAMPLE / f"{split}.jsonl", allowed_roots=list(app.config.roots), progress=False)

    victim = _improve(home)
    try:
        wait_for_training_step(home, victim, 4)  # checkpoints at steps 2 and 4
        os.killpg(victim.pid, signal.SIGKILL)
    finally:
        victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL

    rerun = _improve(home)
    out, err = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, err[-4000:]

    steps = [line.split()[-1] for line in err.splitlines() if line.startswith("  -> s")]  # "  -> s3 agent/action"
    assert steps[0] == "training/train_candidate", err[-3000:]  # the killed step comes first
    assert "data/create_dataset_version" not in steps and "planner/improve" not in steps
    catalog = Catalog(home / "catalog.db")
    train_jobs = sorted(catalog.list_jobs(kind="train"), key=lambda j: j.created_at)
    assert [j.state for j in train_jobs] == ["abandoned", "succeeded"]  # its process was killed (issue 11)
    assert "resumed from its last checkpoint" in (train_jobs[0].error or "")
    assert train_jobs[1].params["run_dir"] == train_jobs[0].params["run_dir"]  # the same run, continued
    assert train_jobs[1].result["steps"] == STEPS
    assert len(catalog.list_model_versions()) == 1 and len(catalog.list_datasets()) == 1
    assert [d["action"] for d in catalog.decisions(action="retrain")] == ["retrain"]
    rounds = sorted(catalog.list_jobs(kind="improve"), key=lambda j: j.created_at)
    assert rounds[-1].state == "succeeded" and rounds[-1].result["resumed"] is True
    assert rounds[-1].result["status"] == "done"
