"""Run directories that survive: the lock, secret redaction, a full disk (issue 13).

The lock tests use two real processes; the disk-full test mounts a small tmpfs (root
only; skipped with the reason elsewhere) besides a unit test with ENOSPC injected.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from medalign.errors import MedalignError
from medalign.outputs import REDACTED, RunDir, redact, write_json_atomic
from tests.conftest import REPO

HF = "hf_" + "Ab3" * 11  # the shape of a Hugging Face token
WB = "0123456789abcdef" * 2 + "01234567"  # the shape of a W&B API key (40 hex)

_HOLDER = """
import sys, time
from pathlib import Path
from medalign.outputs import RunDir
run = RunDir.create(Path(sys.argv[1]), "pubmedqa", {"seed": 1})
print("ready", flush=True)
time.sleep(60)
"""


def _hold(path: Path) -> subprocess.Popen:
    """A second process that creates `path` as its run directory and keeps working in it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_run_dir_in_use_by_another_process_is_refused_until_it_dies(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _hold(run_dir)
    try:
        with pytest.raises(MedalignError, match=rf"is in use by PID {proc.pid} .*started"):
            RunDir.create(run_dir, "pubmedqa", {"seed": 1}, reopen=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the kill released the lock: the unfinished run can now be resumed
    run = RunDir.create(run_dir, "pubmedqa", {"seed": 1}, reopen=True)
    assert run.stage["status"] == "running" and run.stage["pid"] == os.getpid()
    run.finish("done")
    run.close()


def test_the_curriculum_lock_is_a_context_manager_other_processes_respect(tmp_path: Path) -> None:
    from medalign.locks import run_lock

    run_dir = tmp_path / "curriculum"
    proc = _hold(run_dir)
    try:
        with pytest.raises(MedalignError, match=f"in use by PID {proc.pid}"), run_lock(run_dir):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    fresh = tmp_path / "fresh"
    with run_lock(fresh), run_lock(fresh):  # re-entrant within one process
        probe = subprocess.run(
            [sys.executable, "-c", _HOLDER, str(fresh)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.returncode != 0 and f"in use by PID {os.getpid()}" in probe.stderr


def test_redact_by_key_name_override_and_value_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    snapshot = f"/hf/hub/models--x/snapshots/{WB}"
    cleaned = redact(
        {
            "overrides": ["+logger.api_key=abc12345", "lora.r=32", f"+x.WANDB_API_KEY={WB}"],
            "env_set": {"WANDB_API_KEY": WB, "HF_HOME": "/tmp/hf"},
            "note": f"token {HF} here",
            "plain": WB,
            "git_commit": WB,
            "revision": WB,
            "base_model": snapshot,
            "max_new_tokens": 5,
        }
    )
    assert cleaned["overrides"] == [
        f"+logger.api_key={REDACTED}",
        "lora.r=32",
        f"+x.WANDB_API_KEY={REDACTED}",
    ]
    assert cleaned["env_set"] == {"WANDB_API_KEY": REDACTED, "HF_HOME": "/tmp/hf"}
    assert cleaned["note"] == f"token {REDACTED} here" and cleaned["plain"] == REDACTED
    assert cleaned["git_commit"] == WB and cleaned["revision"] == WB  # ids, not keys
    assert cleaned["base_model"] == snapshot and cleaned["max_new_tokens"] == 5


def test_log_records_are_redacted_before_any_handler_writes_them(tmp_path: Path) -> None:
    from medalign.outputs import RedactingFilter

    handler = logging.FileHandler(tmp_path / "x.log")
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"redact-{uuid.uuid4()}")
    logger.addHandler(handler)
    logger.warning("login with %s and api_key=%s", HF, "s3cr3t-value")
    try:
        raise ValueError(f"bad key {WB}")
    except ValueError:
        logger.exception("failed")
    handler.close()
    text = (tmp_path / "x.log").read_text()
    assert HF not in text and "s3cr3t-value" not in text and WB not in text
    assert text.count(REDACTED) == 3 and "ValueError" in text


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_clear_error_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "manifest.json"
    monkeypatch.setattr(os, "write", _enospc)
    monkeypatch.setattr(Path, "write_text", _enospc)
    with pytest.raises(MedalignError, match=f"disk full at {tmp_path}"):
        write_json_atomic(target, {"a": 1})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path: Path):
    from tests.conftest import tmpfs

    with tmpfs(tmp_path / "disk", "size=512k") as mount:
        yield mount


def _fill(disk: Path) -> None:
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_on_a_full_disk_the_failure_is_still_recorded(small_disk: Path) -> None:
    run_dir = small_disk / "run"
    run = RunDir.create(run_dir, "pubmedqa", {"seed": 1})
    _fill(small_disk)
    with pytest.raises(MedalignError, match="disk full at"):
        write_json_atomic(run_dir / "metrics.json", {"x": list(range(50000))})
    run.finish("failed", error="OSError: [Errno 28] No space left on device")
    run.close()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"][0]["status"] == "failed"
    assert "No space left" in manifest["stages"][0]["error"]
    assert sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")) == []
    assert (run_dir / "config.yaml").stat().st_size > 0


def test_a_full_disk_before_the_run_starts_leaves_no_empty_config(small_disk: Path) -> None:
    _fill(small_disk)
    with pytest.raises(MedalignError, match="disk full at"):
        RunDir.create(small_disk / "run", "pubmedqa", {"seed": 1, "pad": "x" * 20000})
    leftovers = [p for p in (small_disk / "run").rglob("*") if p.name != ".medalign.lock"]
    assert all(p.stat().st_size > 0 for p in leftovers), leftovers


def test_running_manifests_say_which_process_runs_them(tmp_path: Path) -> None:
    import socket

    from medalign.locks import holder

    run = RunDir.create(tmp_path / "run", "pubmedqa", {"seed": 1})
    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]
    assert stage["pid"] == os.getpid() and stage["host"] == socket.gethostname()
    assert holder(tmp_path / "run") is not None  # a live process holds it
    run.finish("done")
    run.close()
    assert holder(tmp_path / "run") is None
    assert not any(p.name.endswith(".reserve") for p in (tmp_path / "run").iterdir())
    shutil.rmtree(tmp_path / "run")


def test_torch_s_serializer_on_a_full_disk_is_recognized(small_disk: Path) -> None:
    """Regression (issue 24, defect 3): torch.save reports ENOSPC as "[enforce fail at
    inline_container.cc:...] unexpected pos", which gave raw tracebacks, not "disk full"."""
    import torch

    from medalign.guard import disk_full

    target = small_disk / "checkpoint-2" / "optimizer.pt"
    target.parent.mkdir()
    with pytest.raises(RuntimeError) as err:
        torch.save({"w": torch.zeros(1_000_000)}, target)
    assert disk_full(err.value, small_disk) == f"disk full at {small_disk} (torch.save)"
    other = RuntimeError("[enforce fail at inline_container.cc:300] file not found: x")
    assert disk_full(other, small_disk) is None


def test_a_running_manifest_nobody_holds_reads_interrupted(tmp_path: Path) -> None:
    """Issue 24, defect 7: a killed sweep trial kept `running` with a dead pid; every
    reader (the sweep summary, the report, resume=latest) now says `interrupted`."""
    import json

    import yaml

    from medalign.curriculum import curriculum_status
    from medalign.locks import reported_status, run_lock
    from medalign.sweep import write_summary

    job = tmp_path / "sweep" / "0_medmcqa"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["lora.r=8"]))
    stage = {"status": "running", "pid": 999999, "host": "gone"}
    (job / "manifest.json").write_text(json.dumps({"status": "running", "stages": [stage]}))
    write_summary(tmp_path / "sweep", None)
    (row,) = json.loads((tmp_path / "sweep" / "sweep_summary.json").read_text())["jobs"]
    assert row["status"] == "interrupted"
    assert curriculum_status(job) == "interrupted"
    with run_lock(job):  # a live holder: still running
        assert reported_status("running", job) == "running"


def test_a_killed_sweep_gets_its_summary_from_the_command_line(tmp_path: Path, capsys) -> None:
    import json

    import yaml

    from medalign.sweep import main

    job = tmp_path / "sweep" / "0_medmcqa"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["lora.r=8"]))
    stage = {"status": "running", "metrics": {"train/loss": 1.5}}
    (job / "manifest.json").write_text(json.dumps({"stages": [stage]}))
    assert main([str(tmp_path / "sweep"), "train/loss", "minimize"]) == 0
    summary = json.loads((tmp_path / "sweep" / "sweep_summary.json").read_text())
    assert summary["jobs"][0]["status"] == "interrupted" and summary["direction"] == "minimize"
    assert (tmp_path / "sweep" / "report.html").is_file()
    assert main([str(tmp_path / "missing")]) == 2
