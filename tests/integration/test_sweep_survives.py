"""Sweeps that survive: a killed Optuna sweep rerun runs only the remaining trials; a
requeued SLURM job resumes its run from the last complete checkpoint.

Both on the tiny model, through the real CLI in a subprocess (slow)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

TINY = ["stage=medmcqa", "trainer.max_steps=2", "dataset.limit=4", "logger=none"]


def _complete(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            rows = connection.execute("select count(*) from trials where state='COMPLETE'")
            return int(rows.fetchone()[0])
    except sqlite3.Error:  # the schema is being created
        return 0


def _trials(db: Path) -> list:
    import optuna

    return optuna.load_study(study_name="medalign", storage=f"sqlite:///{db}").get_trials()


@pytest.mark.slow
def test_a_killed_optuna_sweep_rerun_runs_only_the_remaining_trials(tmp_path: Path) -> None:
    sweep = tmp_path / "optuna"
    db = sweep / "optuna.db"
    command = [
        sys.executable,
        "-m",
        "medalign",
        "-m",
        "hydra/sweeper=optuna_lora",
        "hydra.sweeper.n_trials=4",
        *TINY,
        "sweep.metric=train/loss",
        f"hydra.sweep.dir={sweep}",
    ]
    first = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 400
    while _complete(db) < 2:
        assert first.poll() is None, "the sweep ended before it was killed"
        assert time.monotonic() < deadline, "no two trials finished in time"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the whole sweep, as a scheduler would
    first.wait()
    before = _trials(db)
    dirs_before = len(list(sweep.glob("*_medmcqa")))
    done = {t.number: (t.params, t.value) for t in before if t.state.name == "COMPLETE"}
    running = [t for t in before if t.state.name == "RUNNING"]
    assert 2 <= len(done) < 4

    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]
    log = rerun.stdout + rerun.stderr
    assert f"{len(done)} trials done, {len(running)} interrupted" in log
    assert log.count("Launching 1 jobs locally") == 4 - len(done)  # only what is left

    after = _trials(db)
    complete = [t for t in after if t.state.name == "COMPLETE"]
    assert len(complete) == 4  # n_trials, the first run's included
    for number, (params, value) in done.items():  # kept, not rerun
        assert (after[number].params, after[number].value) == (params, value)
    for trial in running:  # the interrupted trial ran again with its parameters (those
        # drawn before the kill: it may have come between two suggestions)
        assert after[trial.number].state.name == "FAIL"
        retried = [t for t in complete if t.number > trial.number]
        assert any(trial.params.items() <= t.params.items() for t in retried)
    new_params = [t.params for t in complete if t.number not in done]
    assert all(p not in [v[0] for v in done.values()] for p in new_params)  # reseeded
    jobs = sorted(p.name for p in sweep.glob("*_medmcqa"))
    assert len(jobs) == dirs_before + 4 - len(done), jobs  # no directory reused


@pytest.mark.slow
def test_a_requeued_slurm_job_resumes_from_its_last_complete_checkpoint(tmp_path: Path) -> None:
    """The same multirun job started again in its directory, as submitit does after a
    preemption (SUBMITIT_EXECUTOR is what submitit sets in every job): it continues the
    killed attempt's training from its newest complete checkpoint."""
    import json

    sweep = tmp_path / "sweep"
    job = sweep / "0_pubmedqa"
    command = [
        sys.executable,
        "-m",
        "medalign",
        "-m",
        "stage=pubmedqa",
        "logger=none",
        "dataset.limit=8",
        "trainer.max_steps=40",
        "trainer.save_steps=2",
        "eval.after_train=false",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "SUBMITIT_EXECUTOR": "slurm"}
    first = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    checkpoint = job / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not checkpoint.is_file():
        assert first.poll() is None, "the job ended before it was preempted"
        assert time.monotonic() < deadline, "never reached checkpoint-4"
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)  # preempted
    first.wait()
    assert json.loads((job / "manifest.json").read_text())["stages"][0]["status"] == "running"

    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    log = again.stdout + again.stderr
    assert "resuming it (requeued)" in log
    stage = json.loads((job / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done", stage
    assert "checkpoint-" in stage["resumed_from"]
    resumed_at = int(stage["resumed_from"].rsplit("-", 1)[1])
    assert resumed_at >= 4 and stage["metrics"]["train/steps"] == 40
    assert (job / "adapter" / "adapter_config.json").is_file()
    assert not (sweep / "1_pubmedqa").exists()  # the same job, not a new one
