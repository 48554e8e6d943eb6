"""Hydra sweeper plugin: Optuna whose study survives a killed sweep (`hydra/sweeper=optuna_lora`).

hydra-optuna-sweeper 1.3 already opens `storage` with `load_if_exists=True`, but reruns
`n_trials` more trials and numbers the jobs from 0 again (into the directories of the
trials already done). This subclass, before the plugin's own loop, asks
`medalign.sweep.resume_study` how many trials are left and where job numbering goes on.
Hydra only instantiates sweepers from the `hydra_plugins` namespace: medalign.cli puts
this folder's parent on sys.path, so it is found however medalign is installed.
"""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class ResumableOptunaSweeper(OptunaSweeper):
    """OptunaSweeper that continues the study in its storage (see medalign.sweep)."""

    def sweep(self, arguments: list[str]) -> Any:
        from medalign.sweep import resume_study

        resume_study(self.sweeper)
        return self.sweeper.sweep(arguments)
