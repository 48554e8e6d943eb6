"""Kill points of a single SFT stage that used to make it unresumable (issue 13).

Real training on the tiny model in a subprocess, killed with SIGKILL at the point under
test, then resumed with `stage.resume_from=latest` into the same directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import finish_cli, start_cli

BASE = ["stage=pubmedqa", "logger=none", "dataset.limit=8", "eval.bootstrap=0"]


def _training_recorded(manifest: Path) -> bool:
    """The manifest holds the training metrics: the stage is in its evaluation."""
    try:
        return "train_metrics" in json.loads(manifest.read_text())["stages"][0]
    except (OSError, ValueError, KeyError):
        return False


def _kill_when(proc: subprocess.Popen, ready, what: str) -> None:
    deadline = time.time() + 300
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}: {proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, f"never reached {what}"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_a_kill_during_the_evaluation_after_training_resumes_at_the_evaluation(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    args = [
        *BASE,
        "trainer.max_steps=2",
        "eval.after_train=true",
        "eval.limit=16",
        f"hydra.run.dir={run}",
    ]
    _kill_when(start_cli(*args), lambda: _training_recorded(run / "manifest.json"), "evaluation")
    stage = json.loads((run / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "running" and "metrics" not in stage
    assert not (run / "eval" / "results.json").exists()  # killed inside the evaluation
    weights = run / "adapter" / "adapter_model.safetensors"
    saved = (weights.read_bytes(), weights.stat().st_mtime_ns)

    out = finish_cli(start_cli(*args, "stage.resume_from=latest"))  # was: OSError Errno 39
    assert "training is skipped" in out
    stage = json.loads((run / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done" and stage["resumed_at"] == "evaluation"
    assert stage["metrics"]["train/steps"] == 2  # the training metrics survived the kill
    assert "eval/pubmedqa/acc" in stage["metrics"]
    assert (weights.read_bytes(), weights.stat().st_mtime_ns) == saved  # not retrained
    assert json.loads((run / "metrics.json").read_text()) == stage["metrics"]


@pytest.mark.slow
def test_a_checkpoint_cut_short_is_skipped_and_training_resumes_from_the_one_before(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    args = [
        *BASE,
        "trainer.max_steps=6",
        "trainer.save_steps=2",
        "trainer.save_total_limit=3",
        "eval.after_train=false",
        f"hydra.run.dir={run}",
    ]
    cut = run / "checkpoints" / "checkpoint-4"
    _kill_when(start_cli(*args), (cut / "trainer_state.json").exists, "checkpoint-4")
    # as a kill while checkpoint-4 was written leaves it: weights cut short, no state yet
    (cut / "trainer_state.json").unlink()
    weights = cut / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])

    out = finish_cli(start_cli(*args, "stage.resume_from=latest"))  # was: Can't find a valid ...
    assert f"not resuming from {cut}" in out and "trainer_state.json missing" in out
    stage = json.loads((run / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done"
    assert stage["resumed_from"].endswith("checkpoint-2")
    assert stage["metrics"]["train/steps"] == 6
