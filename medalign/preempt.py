"""SIGTERM is a preemption, handled like Ctrl-C: the run stops, says how to resume, and its
manifest reads `interrupted`, never a stale `running` with a dead pid.

    python -m medalign stage=medqa trainer.save_steps=50 &   kill -TERM $!
    -> medalign: preempted (SIGTERM) at step 37; resume with: python -m medalign ...

SLURM, Kubernetes and preemptible clouds send SIGTERM, then SIGKILL after a grace period.
While a Trainer trains, the signal only raises a flag: the step in progress finishes, the
Trainer saves a checkpoint (`trainer.checkpoint_on_preempt`, default true) and stops, and
the stage then raises `Preempted`. Anywhere else (loading, evaluation) `Preempted` is
raised at once. It is a KeyboardInterrupt, so every path that records Ctrl-C records it;
the command exits with 143 (128 + SIGTERM), the status schedulers expect.

Also: a process started in the background by a non-interactive shell inherits SIGINT
ignored, so Ctrl-C (or `kill -INT`) would do nothing; `install()` restores Python's handler.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

log = logging.getLogger(__name__)
EXIT_STATUS = 128 + signal.SIGTERM  # 143

_state = {"training": False, "requested": False}


class Preempted(KeyboardInterrupt):
    """The run received SIGTERM: stopped like Ctrl-C, exit status 143."""


def install() -> None:
    """SIGTERM -> Preempted (or a checkpoint and a stop while training); SIGINT handled
    even when the parent shell started this process with it ignored."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _on_sigterm(signum: int, frame: Any) -> None:
    if _state["training"]:
        if not _state["requested"]:
            log.warning("SIGTERM: finishing this step, saving a checkpoint and stopping")
        _state["requested"] = True
        return
    raise Preempted()


def requested() -> bool:
    return _state["requested"]


def callback(save: bool) -> Any:
    """A transformers TrainerCallback: training is in progress between train begin and
    end; a SIGTERM received meanwhile makes the step's end save (when `save`) and stop."""
    from transformers import TrainerCallback

    class PreemptCallback(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            _state["training"] = True

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if _state["requested"]:
                control.should_save = save and args.save_strategy != "no"
                control.should_training_stop = True

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            _state["training"] = False

    return PreemptCallback()


def raise_if_requested(step: int | None = None) -> None:
    """After `trainer.train()` returns: a preemption it stopped for is raised now."""
    _state["training"] = False
    if _state["requested"]:
        _state["requested"] = False
        raise Preempted(step)
