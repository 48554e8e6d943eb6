"""A job of a `hydra/launcher=local_parallel` sweep killed with SIGKILL (issue 37): it gave
joblib's raw TerminatedWorkerError traceback, the other job died too, both manifests
stayed `running` with dead PIDs and no sweep_summary was written. Now: one line, every
job recorded (the killed one and the one joblib stopped read `interrupted`), a summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

SWEEP = [
    "-m",
    "hydra/launcher=local_parallel",
    "hydra.launcher.n_jobs=2",
    "stage=pubmedqa",
    "logger=none",
    "dataset.limit=8",
    "eval.after_train=false",
    "trainer.max_steps=2000",  # still training when the kill comes
    "seed=1,2",
]


def _running_pids(sweep: Path) -> dict[str, int]:
    out = {}
    for manifest in sweep.glob("*/manifest.json"):
        try:
            stage = json.loads(manifest.read_text())["stages"][0]
        except (ValueError, KeyError, IndexError):
            continue
        if stage.get("status") == "running" and stage.get("pid"):
            out[manifest.parent.name] = int(stage["pid"])
    return out


@pytest.mark.slow  # two parallel training jobs through the CLI, one killed
def test_a_killed_job_is_one_line_every_job_is_recorded_and_a_summary_written(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen(
        [sys.executable, "-m", "medalign", *SWEEP, f"hydra.sweep.dir={sweep}"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 400
        while len(pids := _running_pids(sweep)) < 2:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < deadline, "the two jobs never started"
            time.sleep(0.5)
        time.sleep(3.0)
        victim = sorted(pids)[0]
        os.kill(pids[victim], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode not in (0, None)
    assert "Traceback" not in stderr and "TerminatedWorkerError" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("medalign:")]
    assert len(lines) == 1 and "killed" in lines[0] and "sweep_summary" in lines[0], stderr[-3000:]
    for job in pids:
        stage = json.loads((sweep / job / "manifest.json").read_text())["stages"][0]
        assert stage["status"] != "running", (job, stage)
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    statuses = {row["job"]: row["status"] for row in summary["jobs"]}
    assert set(statuses) == set(pids)
    assert statuses[victim] == "interrupted"
