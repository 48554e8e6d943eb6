"""The command line never rewrites a finished run, never writes a secret, and stops
cleanly: each case runs `python -m medalign` as a user would (issue 13)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

HF = "hf_" + "Zq7" * 11
WB = "fedcba9876543210" * 2 + "fedcba98"


def _cli(*args: str, env: dict[str, str] | None = None, timeout: int = 120):
    return subprocess.run(
        [sys.executable, "-m", "medalign", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _finished_run(path: Path) -> Path:
    """A run directory as a finished stage leaves it (written by hand: no training)."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text("- stage=medqa\n- lora.r=8\n")
    (path / ".hydra" / "config.yaml").write_text("lora:\n  r: 8\n")
    (path / ".hydra" / "hydra.yaml").write_text("hydra:\n  mode: RUN\n")
    (path / "medalign.log").write_text("[..][medalign][INFO] saved adapter\n")
    (path / "config.yaml").write_text("lora:\n  r: 8\n")
    stage = {"name": "medqa", "status": "done", "started": "t0", "finished": "t1"}
    (path / "manifest.json").write_text(json.dumps({"kind": "stage", "stages": [stage]}))
    return path


def test_a_refused_run_leaves_a_finished_run_byte_identical(tmp_path: Path) -> None:
    run = _finished_run(tmp_path / "run")
    before = _hashes(run)
    for extra in ([], ["stage.resume_from=latest"]):
        result = _cli("stage=medqa", "lora.r=32", "logger=none", f"hydra.run.dir={run}", *extra)
        assert result.returncode != 0
        assert "finished run" in result.stderr or "already holds a run" in result.stderr
        assert "Traceback" not in result.stderr
        assert _hashes(run) == before


def test_a_run_dir_in_use_is_refused_and_left_alone(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from pathlib import Path; from medalign.outputs import RunDir;"
            "RunDir.create(Path(sys.argv[1]), 'medqa', {}); print('ready', flush=True);"
            "time.sleep(60)",
            str(run),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        before = _hashes(run)
        result = _cli(
            "stage=medqa", "logger=none", "stage.resume_from=latest", f"hydra.run.dir={run}"
        )
        assert result.returncode != 0, result.stderr
        assert f"in use by PID {holder.pid}" in result.stderr
        assert "Traceback" not in result.stderr
        assert _hashes(run) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_secrets_from_env_overrides_and_env_set_never_reach_the_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()  # the user's folder: kept when the run fails before its first step
    failed = _cli(  # accepted, then fails at the data: every record is written
        "stage=medqa",
        "logger=none",
        "dataset.path=/nonexistent",
        f"+hydra.job.env_set.WANDB_API_KEY={WB}",
        f"hydra.run.dir={run}",
        env={"HF_TOKEN": HF, "MY_SERVICE_PASSWORD": "pa55word-planted"},
    )
    assert failed.returncode == 1 and "file not found" in failed.stderr
    refused = _cli("stage=medqa", "logger=none", f"+logger.api_key={WB}", f"hydra.run.dir={run}2")
    assert refused.returncode != 0 and "api_key" in refused.stderr
    assert (run / ".hydra" / "hydra.yaml").is_file() and (run / "manifest.json").is_file()
    for folder in (run, tmp_path / "run2"):
        for path in folder.rglob("*"):
            if path.is_file():
                text = path.read_bytes()
                for secret in (HF, WB, "pa55word-planted"):
                    assert secret.encode() not in text, f"{secret} in {path}"
    assert WB not in refused.stderr and WB not in failed.stderr


def test_help_lists_only_what_can_be_selected_and_how_to_launch_accelerate() -> None:
    result = _cli("--help")
    assert result.returncode == 0, result.stderr
    groups = {
        line.split(":")[0].strip(): line.split(":", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith(("dataset:", "model:", "accelerate:"))
    }
    assert "_base" not in groups["dataset"] and "medqa" in groups["dataset"]
    assert "accelerate" not in groups
    assert "accelerate launch --config_file" in result.stdout
    config = result.stdout.split("accelerate launch --config_file", 1)[1].split()[0]
    assert (REPO / config).is_file(), config  # the documented path exists


def test_a_sweep_experiment_without_m_warns_and_shows_the_m_command(tmp_path: Path) -> None:
    result = _cli(
        "experiment=lora_rank",
        "logger=none",
        "dataset.path=/nonexistent",
        f"hydra.run.dir={tmp_path}/run",
    )
    assert result.returncode == 1
    warnings = [line for line in result.stderr.splitlines() if "is a sweep" in line]
    assert len(warnings) == 1, result.stderr
    assert "python -m medalign -m experiment=lora_rank" in warnings[0]
    plain = _cli(
        "stage=medqa", "logger=none", "dataset.path=/nonexistent", f"hydra.run.dir={tmp_path}/run2"
    )
    assert "is a sweep" not in plain.stderr


@pytest.mark.slow
def test_ctrl_c_prints_one_line_exits_130_and_marks_the_run_interrupted(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medalign",
            "stage=pubmedqa",
            "logger=none",
            "dataset.limit=8",
            "trainer.max_steps=400",
            "trainer.save_steps=1",
            "eval.after_train=false",
            f"hydra.run.dir={run}",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
    deadline = time.time() + 240

    def _saved() -> list[int]:  # steps with a complete checkpoint (older ones are rotated)
        return [
            int(p.parent.name.split("-")[1]) for p in run.glob("checkpoints/*/trainer_state.json")
        ]

    while not any(step >= 2 for step in _saved()):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("medalign:")]
    assert len(lines) == 1 and lines[0].startswith("medalign: interrupted at step "), lines
    assert "stage.resume_from=latest" in lines[0] and f"hydra.run.dir={run}" in lines[0]
    step = int(lines[0].split("at step ")[1].split()[0].rstrip(";"))
    assert step >= 2
    stage = json.loads((run / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "interrupted"


def test_a_config_error_found_inside_the_job_leaves_no_run_directory(tmp_path: Path) -> None:
    """Regression (issue 24, defect 7): every config error refused inside the job left
    runs/<date>/<time>_<stage>/ holding only .hydra/ and a log."""
    run_dir = tmp_path / "runs" / "refused"
    done = _cli("lora.r=0", "logger=none", f"hydra.run.dir={run_dir}", timeout=300)
    assert done.returncode == 1 and "medalign: error: config lora.r" in done.stderr
    assert not run_dir.exists(), sorted(p.name for p in run_dir.rglob("*"))


def test_a_refused_resume_writes_nothing_into_the_run_it_refuses(tmp_path: Path) -> None:
    """Regression (issue 24, defect 7): a refused resume appended an [ERROR] line to the
    run's medalign.log and rewrote its .medalign.lock with a pid that no longer exists."""
    from tests.conftest import tree_digest
    from tests.run_fixtures import make_curriculum

    run = make_curriculum(tmp_path, adapters=False, wandb=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(status="running", overrides=["experiment=curriculum", "logger=none"])
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "medalign.log").write_text("the run's own log\n")
    before = tree_digest(run)
    done = _cli(f"resume={run}", "lora.r=16", timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "lora.r=16 would change the recorded lora.r=8" in done.stderr
    assert tree_digest(run) == before and not (run / ".medalign.lock").exists()


def test_a_refused_run_in_the_user_s_own_folder_deletes_none_of_its_files(tmp_path: Path) -> None:
    """Issue 24, defect 1 (every deleting path): the clean-up of a refused run removes only
    what this process created, never a file of a folder that existed before it."""
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "medalign.log").write_text("my own notes\n")
    (run_dir / "notes").mkdir()
    overrides = ("lora.r=0", "logger=none", f"hydra.run.dir={run_dir}")
    done = _cli(*overrides, "hydra.output_subdir=notes", timeout=300)
    assert done.returncode == 1 and "config lora.r" in done.stderr
    assert (run_dir / "medalign.log").read_text().startswith("my own notes")
    assert (run_dir / "notes").is_dir()  # a record folder the user named is never removed
