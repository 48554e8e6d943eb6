"""A resumed curriculum works in the run it resumes (issue 13).

Each resume used to leave an orphan `runs/<date>/<time>_curriculum/` holding only
`.hydra/` and the resumed session's log, and to start a second W&B run for a stage that
continues from its checkpoint. Real CLI processes on the tiny model (debug=fast), run in
a temp working directory so Hydra's default `runs/` lands there; W&B offline.
"""

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

FAST = [
    "experiment=curriculum",
    "debug=fast",
    "logger=wandb",
    "curriculum.order=[pubmedqa]",
    "curriculum.eval_before=false",
    "eval.datasets=[pubmedqa]",
    "eval.bootstrap=0",
    "trainer.max_steps=4",
    "trainer.save_steps=2",
]


def _cli(cwd: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env["WANDB_MODE"] = "offline"
    env.pop("WANDB_SERVICE", None)  # never the test process's W&B service: its own, as a user's
    return subprocess.Popen(
        [sys.executable, "-m", "medalign", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _parses(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()))
    except (OSError, ValueError):
        return False


def _wandb_ids(stage_dir: Path) -> list[str]:
    """The run id of each W&B session in `stage_dir` (offline-run-<time>-<id>)."""
    return sorted(p.name.rsplit("-", 1)[1] for p in (stage_dir / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_a_resume_logs_into_its_run_leaves_no_new_dir_and_continues_the_wandb_run(
    tmp_path: Path,
) -> None:
    proc = _cli(tmp_path, *FAST)
    deadline = time.time() + 300
    found: list[Path] = []
    checkpoint = "0-pubmedqa/checkpoints/checkpoint-2/trainer_state.json"
    while not found:  # a complete checkpoint: its trainer state (written last) parses
        found = [p for p in tmp_path.glob(f"runs/*/*/{checkpoint}") if _parses(p)]
        assert proc.poll() is None, f"the run ended before step 2: {proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, "never reached the step-2 checkpoint"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run = found[0].parents[3]
    stage = run / "0-pubmedqa"
    first_log = (run / "medalign.log").read_text()
    first_ids = _wandb_ids(stage)
    assert len(first_ids) == 1

    out, _ = _cli(tmp_path, "experiment=curriculum", "resume=latest").communicate(timeout=400)
    assert "resuming the curriculum" in out, out[-4000:]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "done", out[-4000:]

    # no new run directory: the resume worked (and logged) in the run it resumed
    assert sorted(tmp_path.glob("runs/*/*")) == [run]
    log = (run / "medalign.log").read_text()
    assert log.startswith(first_log)  # appended, the first session's lines kept
    resumed = log[len(first_log) :]
    assert f"resumed {run}" in resumed  # the marker line
    assert "curriculum stage pubmedqa" in resumed
    assert sorted(p.name for p in (run / ".hydra").iterdir() if p.is_dir())[0].startswith(
        "resumed-"
    )  # the resumed session's Hydra record, beside the first one's
    assert not list(run.glob(".hydra-pending-*"))

    # W&B: the stage continued its own run (same id), no second run
    record = json.loads((stage / "manifest.json").read_text())["stages"][0]
    assert "checkpoint-2" in record["resumed_from"]
    assert _wandb_ids(stage) == first_ids * 2  # two sessions, one run id
    assert record["wandb_run_id"] == first_ids[0]
    assert manifest["stages"][0]["wandb_run_id"] == first_ids[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".medalign.lock"  # the OS lock's file
    }


def test_a_refused_resume_files_nothing_in_the_run(tmp_path: Path) -> None:
    from medalign.errors import MedalignError
    from medalign.run import run as run_job
    from tests.conftest import compose
    from tests.run_fixtures import make_curriculum

    run = make_curriculum(tmp_path, adapters=False, wandb=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["overrides"] = ["experiment=curriculum", "logger=none"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    pending = run / ".hydra-pending-1"  # Hydra's record of the resuming process
    pending.mkdir()
    (pending / "overrides.yaml").write_text("- lora.r=16\n")
    before = _files(run)

    args = ["experiment=curriculum", "logger=none", f"resume={run}", "lora.r=16"]
    with pytest.raises(MedalignError, match="lora.r=16 would change the recorded lora.r=8"):
        run_job(compose(*args), run, overrides=args, hydra_subdir=pending.name)
    assert _files(run) == before  # not adopted as .hydra/: the CLI removes it
