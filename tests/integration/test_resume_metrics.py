"""The metrics of a resumed SFT stage (issue 37): SIGTERM at step 2 of 5, resumed as the
message says, must report what the uninterrupted run reports (train/loss, num_tokens,
first_loss), not figures over the resumed steps only; a job shorter than logging_steps
still has a first loss."""

from __future__ import annotations

import os
import signal

import pytest

from medalign.preempt import Preempted, install
from medalign.run import run
from tests.conftest import compose

TRAIN = [
    "stage=pubmedqa",
    "logger=none",
    "dataset.limit=8",
    "eval.after_train=false",
    "trainer.max_steps=5",
    "trainer.save_steps=10",  # the only checkpoint is the one the signal saves
    "trainer.logging_steps=5",
]


@pytest.mark.slow  # a kill/resume test: make test-slow
def test_a_resumed_run_reports_the_uninterrupted_runs_metrics(tmp_path, monkeypatch) -> None:
    from transformers import TrainerCallback

    whole = run(compose(*TRAIN), tmp_path / "whole")

    class TermAtStep2(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 1:
                os.kill(os.getpid(), signal.SIGTERM)

    import medalign.stages.validation as validation

    previous = signal.getsignal(signal.SIGTERM)
    install()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(validation, "validation_callbacks", lambda cfg: [TermAtStep2()])
            with pytest.raises(Preempted) as stopped:
                run(compose(*TRAIN), tmp_path / "cut")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.args == (2,)
    resumed = run(compose(*TRAIN, "stage.resume_from=latest"), tmp_path / "cut")
    assert resumed["train/steps"] == whole["train/steps"] == 5
    assert resumed["train/num_tokens"] == whole["train/num_tokens"]
    assert resumed["train/first_loss"] == pytest.approx(whole["train/first_loss"], abs=1e-6)
    assert resumed["train/loss"] == pytest.approx(whole["train/loss"], abs=1e-4)
    assert "train/loss_covers_steps" not in resumed


def test_a_job_shorter_than_logging_steps_has_a_first_loss(tmp_path) -> None:
    metrics = run(compose(*TRAIN, "trainer.max_steps=2"), tmp_path / "short")
    assert isinstance(metrics["train/first_loss"], float)
    assert isinstance(metrics["train/num_tokens"], int) and metrics["train/num_tokens"] > 0
