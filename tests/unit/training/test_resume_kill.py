"""A training run killed with SIGKILL and resumed ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.unit.training.tiny import make_images
from tools.training import CHECKPOINT_NAME, FINAL_MODEL_NAME, LOG_NAME, load_train_state

ROOT = Path(__file__).resolve().parents[3]
TINY = Path(__file__).with_name("tiny.py")

# 12 images, batch 4: 3 steps an epoch, 6 in all; checkpoints after steps 2, 4, 6.
CONFIG = {
    "epochs": 2,
    "batch_size": 4,
    "lr": 1e-3,
    "warmup_steps": 2,
    "checkpoint_every": 2,
    "log_every": 1,
    "seed": 7,
    "wise_alpha": 0.5,
    "ema_decay": 0.9,
    "deterministic": True,
}


def _cmd(data: Path, out: Path, num_workers: int, *extra: str) -> list[str]:
    config = json.dumps({**CONFIG, "num_workers": num_workers})
    return [sys.executable, str(TINY), "--data", str(data), "--out", str(out), "--config", config, *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _final_state(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / FINAL_MODEL_NAME, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "items.json").parent.mkdir(parents=True)
    (data / "items.json").write_text(json.dumps(make_images(data, 12)))

    # The reference runs alongside the run we kill (2 cores); it uses no DataLoader workers, the killed
    # and resumed runs use two: samples must not depend on which process decodes them.
    ref_out, out = tmp_path / "ref", tmp_path / "run"
    ref_log, victim_log = tmp_path / "ref.log", tmp_path / "victim.log"
    with open(ref_log, "w") as ref_f, open(victim_log, "w") as victim_f:
        reference = subprocess.Popen(
            _cmd(data, ref_out, 0), cwd=ROOT, env=_env(), stdout=ref_f, stderr=subprocess.STDOUT
        )
        victim = subprocess.Popen(
            _cmd(data, out, 2, "--pause-at", "3"),
            cwd=ROOT,
            env=_env(),
            stdout=victim_f,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill takes its DataLoader workers too
        )
    try:
        deadline = time.monotonic() + 120
        while "PAUSED" not in victim_log.read_text() and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "PAUSED" in victim_log.read_text(), victim_log.read_text()  # it paused after step 3
        assert (out / CHECKPOINT_NAME).exists()
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert load_train_state(out / CHECKPOINT_NAME)["step"] == 2
    assert not (out / FINAL_MODEL_NAME).exists()
    logged = [json.loads(line)["step"] for line in (out / LOG_NAME).read_text().splitlines()]
    assert logged == [1, 2, 3]  # step 3 ran after the checkpoint and will be redone

    resumed = subprocess.run(
        _cmd(data, out, 2, "--resume"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "DONE 6 resumed_from=2" in resumed.stdout
    assert "STEP 3" in resumed.stdout and "STEP 2" not in resumed.stdout

    reference.wait(timeout=120)
    assert reference.returncode == 0, ref_log.read_text()
    assert "DONE 6 resumed_from=None" in ref_log.read_text()

    ref_state, state = _final_state(ref_out), _final_state(out)
    assert ref_state.keys() == state.keys()
    different = [k for k in ref_state if not torch.equal(ref_state[k], state[k])]
    assert not different, f"{len(different)} tensors differ after resume, e.g. {different[:5]}"
    # The training state (pre-WiSE weights, optimizer moments) matches too, and the log has each step once.
    ref_ckpt, ckpt = load_train_state(ref_out / CHECKPOINT_NAME), load_train_state(out / CHECKPOINT_NAME)
    assert all(torch.equal(ref_ckpt["model"][k], ckpt["model"][k]) for k in ref_ckpt["model"])
    for ref_p, p in zip(ref_ckpt["optimizer"]["state"].values(), ckpt["optimizer"]["state"].values(), strict=True):
        assert torch.equal(ref_p["exp_avg"], p["exp_avg"]) and torch.equal(ref_p["exp_avg_sq"], p["exp_avg_sq"])
    logged = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    ref_logged = [json.loads(line) for line in (ref_out / LOG_NAME).read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in logged] == [r["loss"] for r in ref_logged]
