"""Hydra launcher plugin: joblib's, but a job whose process is killed stops the sweep in one
line, with every job recorded (`hydra/launcher=local_parallel`).

With joblib's own launcher a `kill -9` of one job's worker raises loky's
TerminatedWorkerError in the sweep's process: loky then stops the other workers, their
manifests stay `running` with dead PIDs, Hydra's end-of-sweep callback never runs (no
sweep_summary) and the user gets a traceback. This subclass catches that error, records
each job left `running` by a dead process as `interrupted` (medalign.sweep.settle_killed_jobs),
writes the summary, and says so in one line (exit 1). Hydra only discovers plugins in the
`hydra_plugins` namespace; medalign.compose puts this folder's parent on sys.path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher


class KilledJobJoblibLauncher(JoblibLauncher):
    """JoblibLauncher whose sweep survives a killed worker as a record (see above)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from joblib.externals.loky.process_executor import TerminatedWorkerError

        try:
            return super().launch(job_overrides, initial_job_idx)
        except TerminatedWorkerError as exc:
            from medalign.sweep import stop_after_killed_job

            stop_after_killed_job(self.config, exc)  # one line, manifests, summary; exits
            raise  # not reached
