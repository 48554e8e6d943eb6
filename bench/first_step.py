"""Run a module or script and print the wall-clock time at which training's first step begins.

    python bench/first_step.py -m medalign stage=medmcqa ...     # FIRST_STEP <unix time>
    python bench/first_step.py plain_trl.py <args>

Used by bench_preprocess.py for medalign and the plain TRL script alike: the first call of
transformers' `CallbackHandler.on_step_begin` (every Trainer, every TRL trainer) prints the
time; the parent subtracts its own launch time. transformers is imported before the run
starts, which moves its import cost earlier but adds none (both sides import it).
"""

from __future__ import annotations

import runpy
import sys
import time


def _install() -> None:
    from transformers.trainer_callback import CallbackHandler

    original = CallbackHandler.on_step_begin

    def on_step_begin(self, args, state, control):  # noqa: ANN001, ANN202
        if not getattr(on_step_begin, "seen", False):
            on_step_begin.seen = True
            print(f"FIRST_STEP {time.time():.3f}", flush=True)
        return original(self, args, state, control)

    CallbackHandler.on_step_begin = on_step_begin


if __name__ == "__main__":
    argv = sys.argv[1:]
    _install()  # imports transformers first: both sides import it anyway
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        runpy.run_path(argv[0], run_name="__main__")
