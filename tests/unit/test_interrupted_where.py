"""SIGTERM during evaluation (issue 37): the resume line names what was running, not the
signal handler that raised (it printed `during _on_sigterm (medalign.preempt)`)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from medalign.guard import interrupted_line
from medalign.preempt import Preempted, install

# a function that lives in a medalign module, as evaluation's loop does
EVAL_SOURCE = """
def score_everything(kill):
    kill()
    return "scored"
"""


def test_a_sigterm_names_the_medalign_function_it_stopped(tmp_path: Path) -> None:
    namespace = {"__name__": "medalign.stages.eval"}
    exec(compile(EVAL_SOURCE, "medalign/stages/eval.py", "exec"), namespace)
    previous = signal.getsignal(signal.SIGTERM)
    install()
    try:
        with pytest.raises(Preempted) as stopped:
            namespace["score_everything"](lambda: os.kill(os.getpid(), signal.SIGTERM))
    finally:
        signal.signal(signal.SIGTERM, previous)
    line = interrupted_line(
        stopped.value.__traceback__,
        "eval",
        tmp_path,
        [sys.argv[0], "stage=eval"],
        why="preempted (SIGTERM)",
    )
    assert "during score_everything (medalign.stages.eval)" in line, line
    assert "_on_sigterm" not in line
