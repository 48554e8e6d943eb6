"""SIGTERM is a preemption (issue 24, defect 6): the step in progress finishes, a checkpoint
is saved, the manifest reads `interrupted`, the command prints one resume line and exits
143; and SIGINT works in a process started with it ignored (a background job)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medalign.preempt import Preempted, install
from medalign.run import run
from tests.conftest import REPO, compose

TRAIN = ["stage=pubmedqa", "logger=none", "dataset.limit=8", "eval.after_train=false"]


def test_sigterm_while_training_saves_a_checkpoint_and_stops(tmp_path, monkeypatch) -> None:
    from transformers import TrainerCallback

    class TermAtStep3(TrainerCallback):  # the scheduler's signal, mid-training
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    import medalign.stages.validation as validation

    monkeypatch.setattr(validation, "validation_callbacks", lambda cfg: [TermAtStep3()])
    previous = signal.getsignal(signal.SIGTERM)
    install()
    try:
        overrides = [*TRAIN, "trainer.max_steps=50", "trainer.save_steps=20"]
        with pytest.raises(Preempted) as stopped:
            run(compose(*overrides), tmp_path / "run")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.args == (4,)  # the step in progress finished
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert saved == ["checkpoint-4"]  # saved on the signal, not at save_steps=20
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"][0]["status"] == "interrupted"


def _start(run_dir: Path, ignore_int: bool = False) -> subprocess.Popen[str]:
    handler = signal.SIG_IGN if ignore_int else signal.SIG_DFL
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medalign",
            *TRAIN,
            "trainer.max_steps=400",
            "trainer.save_steps=1000",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, handler),  # a background job: ignored
    )


def _wait_for_training(proc: subprocess.Popen[str], run_dir: Path) -> None:
    deadline = time.time() + 240
    log = run_dir / "medalign.log"
    while not (log.is_file() and "tokenized" in log.read_text()):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.1)
    time.sleep(2.0)  # into the training steps


@pytest.mark.slow  # two CLI processes, killed mid-training
def test_sigterm_exits_143_with_one_resume_line_and_sigint_works_in_the_background(
    tmp_path: Path,
) -> None:
    proc = _start(tmp_path / "term")
    _wait_for_training(proc, tmp_path / "term")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("medalign:")]
    assert len(lines) == 1 and lines[0].startswith("medalign: preempted (SIGTERM) at step ")
    assert "stage.resume_from=latest" in lines[0]
    step = int(lines[0].split("at step ")[1].split(";")[0])
    assert (tmp_path / "term" / "checkpoints" / f"checkpoint-{step}").is_dir()
    stage = json.loads((tmp_path / "term" / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "interrupted"

    proc = _start(tmp_path / "int", ignore_int=True)
    _wait_for_training(proc, tmp_path / "int")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    stage = json.loads((tmp_path / "int" / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "interrupted"


@pytest.mark.slow  # kill/resume: two trainings and a resume
def test_a_sigterm_at_a_step_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    overrides = [*TRAIN, "trainer.max_steps=8", "trainer.save_steps=2"]
    run(compose(*overrides), tmp_path / "whole")

    class TermAtStep5(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 5 and not kwargs.get("resumed"):
                os.kill(os.getpid(), signal.SIGTERM)

    import medalign.stages.validation as validation

    previous = signal.getsignal(signal.SIGTERM)
    install()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(validation, "validation_callbacks", lambda cfg: [TermAtStep5()])
            with pytest.raises(Preempted):
                run(compose(*overrides), tmp_path / "cut")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (tmp_path / "cut" / "checkpoints" / "checkpoint-6").is_dir()  # saved on the signal
    run(compose(*overrides, "stage.resume_from=latest"), tmp_path / "cut")
    whole = load_file(str(tmp_path / "whole" / "adapter" / "adapter_model.safetensors"))
    resumed = load_file(str(tmp_path / "cut" / "adapter" / "adapter_model.safetensors"))
    assert whole.keys() == resumed.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], atol=1e-4, rtol=0)


@pytest.mark.slow  # kill/resume: a checkpoint write interrupted by the signal, then a resume
def test_a_sigterm_during_a_checkpoint_write_leaves_it_complete_and_resumes(
    tmp_path, monkeypatch
) -> None:
    from transformers import Trainer

    from medalign.checkpoints import incomplete

    overrides = [*TRAIN, "trainer.max_steps=6", "trainer.save_steps=2"]
    real = Trainer._save_checkpoint
    sent = []

    def save_with_a_signal_inside(self, *args, **kwargs):
        if not sent:  # the scheduler's SIGTERM arrives while the first checkpoint is written
            sent.append(self.state.global_step)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *args, **kwargs)

    previous = signal.getsignal(signal.SIGTERM)
    install()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(Trainer, "_save_checkpoint", save_with_a_signal_inside)
            with pytest.raises(Preempted):
                run(compose(*overrides), tmp_path / "run")
    finally:
        signal.signal(signal.SIGTERM, previous)
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints and all(incomplete(c) is None for c in checkpoints)  # none cut short
    metrics = run(compose(*overrides, "stage.resume_from=latest"), tmp_path / "run")
    assert metrics["train/steps"] == 6
