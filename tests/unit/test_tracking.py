"""W&B run identity: a resumed stage continues the run its manifest recorded (issue 13).

Real wandb in offline mode (no network): each session writes
`wandb/offline-run-<time>-<id>/run-<id>.wandb`, whose run record names the id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medalign.config import LoggerConfig
from medalign.tracking import start_tracking
from tests import wandb_log
from tests.conftest import default


def test_a_resumed_stage_continues_its_wandb_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = default(LoggerConfig, name="wandb")
    common = {"name": "run", "job_type": "medqa", "config": {"seed": 0}}
    # one folder per session: two sessions in the same second would share offline-run-<s>-<id>
    first_dir, again_dir = tmp_path / "first", tmp_path / "again"
    try:
        first = start_tracking(cfg, **common, run_dir=first_dir)
        run_id = first.run_id
        first.log({"train/loss": 2.0})
        first.finish(False)  # as a failed session leaves it
        again = start_tracking(cfg, **common, run_dir=again_dir, run_id=run_id)
        assert again.run_id == run_id
        again.log({"train/loss": 1.0})
        again.finish(True)
        # no recorded id: a run of its own
        fresh = start_tracking(cfg, **common, run_dir=tmp_path / "fresh")
        assert fresh.run_id != run_id
        fresh.finish(True)
    finally:  # stop this process's W&B service: later CLI subprocesses must not share it
        wandb.teardown()

    sessions = [
        *first_dir.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"),
        *again_dir.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"),
    ]
    assert len(sessions) == 2
    assert [wandb_log.run_info(path)["id"] for path in sessions] == [run_id, run_id]
    assert [row["train/loss"] for path in sessions for row in wandb_log.history(path)] == [2.0, 1.0]


def test_a_run_file_is_read_once_the_service_has_written_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wandb's service writes the `.wandb` file after `finish()` returns (CI read a summary
    run's file before its run record was there): the reader waits for the exit record."""
    import threading

    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    try:
        tracker = start_tracking(
            default(LoggerConfig, name="wandb"),
            name="r",
            job_type="summary",
            run_dir=tmp_path,
            config={},
        )
        tracker.log({"train/loss": 3.0})
        tracker.finish(True)
    finally:
        wandb.teardown()
    (done,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    whole = done.read_bytes()
    late = tmp_path / "late.wandb"
    late.write_bytes(whole[: wandb_log.HEADER])  # the header alone, as the service starts it
    writer = threading.Timer(1.0, late.write_bytes, args=(whole,))
    writer.start()
    try:
        assert wandb_log.run_info(late)["job_type"] == "summary"
        assert [row["train/loss"] for row in wandb_log.history(late)] == [3.0]
    finally:
        writer.cancel()
