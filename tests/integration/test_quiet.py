"""Quiet by default: the known-harmless library messages are gone, and come back on demand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

KNOWN_NOISE = (
    "from kernels-community",  # bitsandbytes CPU backend, at import
    "setup plugin alembic",  # optuna -> alembic, under Hydra's INFO root logger
    "`gradient_checkpointing` is deprecated",  # transformers FutureWarning (no longer ours)
    "`is_gradient_checkpointing` is deprecated",  # transformers FutureWarning (TRL, peft)
)


def _cli(tmp_path: Path, *args: str, **env: str) -> str:
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    environ.pop("MEDALIGN_VERBOSE", None)
    environ.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "medalign", *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_tiny_run_prints_none_of_the_known_noise(tmp_path: Path) -> None:
    run = ("stage=pubmedqa", "debug=fast", "trainer.max_steps=2")
    quiet = _cli(tmp_path, *run, f"hydra.run.dir={tmp_path / 'quiet'}")
    assert "saved adapter" in quiet  # medalign's own progress is still there
    assert not [m for m in KNOWN_NOISE if m in quiet]
    loud = _cli(tmp_path, *run, f"hydra.run.dir={tmp_path / 'loud'}", MEDALIGN_VERBOSE="1")
    assert "from kernels-community" in loud and "`is_gradient_checkpointing` is deprecated" in loud
    assert "`gradient_checkpointing` is deprecated" not in loud  # ours uses the v6 name


@pytest.mark.slow
def test_optuna_sweep_hides_alembic_unless_verbose(tmp_path: Path) -> None:
    sweep = (
        "-m",
        "hydra/sweeper=optuna_lora",
        "hydra.sweeper.n_trials=1",
        "stage=pubmedqa",
        "debug=fast",
        "trainer.max_steps=1",
        "sweep.metric=train/loss",
    )
    quiet = _cli(tmp_path, *sweep, f"hydra.sweep.dir={tmp_path / 'quiet'}")
    assert "Launching 1 jobs" in quiet and "setup plugin alembic" not in quiet
    loud = _cli(tmp_path, *sweep, f"hydra.sweep.dir={tmp_path / 'loud'}", "--verbose")
    assert loud.count("setup plugin alembic") == 7


@pytest.mark.slow
def test_joblib_worker_processes_are_quiet_too(tmp_path: Path) -> None:
    sweep = (
        "-m",
        "hydra/launcher=local_parallel",
        "hydra.launcher.n_jobs=1",
        "stage=pubmedqa",
        "debug=fast",
        "trainer.max_steps=1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    out = _cli(tmp_path, *sweep)
    logs = "".join(p.read_text() for p in (tmp_path / "sweep").glob("*/medalign.log"))
    assert "saved adapter" in out + logs
    assert not [m for m in KNOWN_NOISE if m in out + logs]
