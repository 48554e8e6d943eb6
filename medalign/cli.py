"""The command line: `python -m medalign [group=option ...] [key=value ...]`.

Thin on purpose: override typos and a `hydra.run.dir` that may not be used are caught
before Hydra (Hydra's own message would suggest `+key`; Hydra would write into the other
run's `.hydra/`), Hydra composes the config, and `medalign.run.run` does the work.
`medalign.guard` holds the checks and messages: a user's mistake, a full disk and Ctrl-C
(exit 130) are one line each, never a traceback. Nothing here imports torch, so
`--help` and `--cfg job` answer fast.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from medalign.compose import (  # the tree ships in the package
    CONFIG_DIR,
    check_choices,
    complete_catalogue,
    register_resolvers,
    use_hydra_plugins,
)
from medalign.errors import MedalignError, NothingToResume
from medalign.locks import RunDirInUse
from medalign.quiet import quiet

log = logging.getLogger("medalign")
use_hydra_plugins()  # before Hydra discovers its plugins
try:  # before Hydra composes: ${world_root:...} in any config (launcher workers too)
    register_resolvers()  # imports installed plugin packages (registry.load_plugins)
    _STARTUP_ERROR: MedalignError | None = None
except MedalignError as _exc:  # a broken plugin: main() says so in one line
    _STARTUP_ERROR = _exc


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from medalign import guard
    from medalign.outputs import (
        FILE_ONLY,
        install_log_redaction,
        redact_text,
        redact_yaml_files,
    )
    from medalign.requeue import requeued, resume_config
    from medalign.run import run
    from medalign.sweep import check_sweep_metric, job_identity, sweep_objective

    quiet([])  # again here: launcher workers (joblib, submitit) never run main()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    subdir = hydra_cfg.output_subdir
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    install_log_redaction()  # Hydra's file and console handlers exist now
    if subdir:  # Hydra has just saved its record: no secret stays in it
        redact_yaml_files(run_dir / subdir)
    if multirun:
        redact_yaml_files(Path(hydra_cfg.sweep.dir))  # multirun.yaml
    elif warning := guard.sweep_warning(hydra_cfg, sys.argv):
        log.warning("%s", warning, extra=FILE_ONLY)
        guard.print_error(warning)
    identity = job_identity(hydra_cfg, cfg) if multirun else {}
    again = multirun and requeued(run_dir)  # SLURM requeued this job (preempted, timed out)
    if again:
        log.warning("%s holds this job's earlier attempt: resuming it (requeued)", run_dir)
        cfg = resume_config(cfg, run_dir)
    try:
        cfg = complete_catalogue(cfg)  # every dataset the config names, from its YAML
        if multirun:
            from medalign.config import validate

            check_sweep_metric(hydra_cfg, validate(cfg))
        metrics = run(
            cfg,
            run_dir,
            overrides=list(hydra_cfg.overrides.task),
            hydra_subdir=subdir,
            requeued=again,
            **identity,
        )
        value = sweep_objective(metrics, cfg.sweep.metric) if multirun else None
    except KeyboardInterrupt as exc:
        kind = OmegaConf.select(cfg, "stage.kind")
        from medalign.preempt import EXIT_STATUS, Preempted

        preempted = isinstance(exc, Preempted)
        line = guard.interrupted_line(
            exc.__traceback__,
            kind,
            run_dir,
            sys.argv,
            OmegaConf.select(cfg, "resume"),
            step=exc.args[0] if preempted and exc.args else None,
            why="preempted (SIGTERM)" if preempted else "interrupted",
        )
        log.warning("%s", line, extra=FILE_ONLY)
        guard.print_error("\n" + line)  # on a line of its own, not after a progress bar
        sys.exit(EXIT_STATUS if preempted else 130)
    except Exception as raised:
        exc = guard.user_error(raised)
        full = guard.disk_full(exc, run_dir)
        if full:  # a checkpoint the full disk cut short only holds space: free it
            from medalign.checkpoints import remove_partial_checkpoints

            remove_partial_checkpoints(run_dir / "checkpoints")
        if isinstance(exc, MedalignError) or full:
            message = redact_text(str(exc) if isinstance(exc, MedalignError) else full)
            if not isinstance(exc, RunDirInUse):  # that log belongs to the other run
                log.error("%s", message, extra=FILE_ONLY)  # the terminal gets print_error
            guard.print_error(f"{chr(10) if full else ''}medalign: error: {message}")
        else:
            log.exception("job failed")
        if multirun:  # recorded as failed in its manifest; the other jobs go on
            return float("nan")
        if isinstance(exc, MedalignError) and not isinstance(exc, RunDirInUse):
            guard.discard_refused(run_dir, subdir)  # a refused run writes nothing
        if isinstance(exc, MedalignError) or full:
            sys.exit(1)
        raise
    finally:
        guard.settle_hydra_record(run_dir, subdir)
    return value


def main() -> None:
    from medalign import guard
    from medalign.config import check_overrides
    from medalign.preempt import install

    install()  # SIGTERM is a preemption (like Ctrl-C); SIGINT works in background jobs too
    sys.argv = _rank_args(quiet(sys.argv))  # known-harmless library noise off (--verbose)
    logging.raiseExceptions = False  # e.g. a full disk under the log file: no traceback a line
    overrides = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
    try:
        if _STARTUP_ERROR is not None:
            raise _STARTUP_ERROR
        check_overrides(overrides)
        check_choices(overrides)  # dataset=<typo>, datasets.<yours>.key without +
        sys.argv = guard.resume_in_place(sys.argv)  # a resume logs into its own run
        guard.check_run_dir_arg(sys.argv)  # before Hydra writes into the directory
    except NothingToResume as exc:
        guard.print_error(f"medalign: {exc}")
        sys.exit(0)
    except MedalignError as exc:
        guard.print_error(f"medalign: error: {exc}")
        sys.exit(2)
    if guard.runs_a_job(sys.argv) and not any(
        a.startswith("hydra.output_subdir=") for a in sys.argv
    ):
        sys.argv.append(f"hydra.output_subdir={guard.pending_subdir()}")
    if any(a in ("--help", "-h") for a in sys.argv[1:]):
        _print_help()
        return
    try:
        _hydra_main()
    except KeyboardInterrupt as exc:  # before the job started (composing the config)
        guard.print_error("medalign: interrupted before the run started; nothing was written")
        from medalign.preempt import EXIT_STATUS, Preempted

        sys.exit(EXIT_STATUS if isinstance(exc, Preempted) else 130)


def _print_help() -> None:
    """Hydra's --help, without the options no one can select (`dataset: _base`)."""
    import contextlib
    import io

    from medalign.guard import filter_help

    buffer = io.StringIO()
    code: int | str | None = 0
    with contextlib.redirect_stdout(buffer):
        try:
            _hydra_main()
        except SystemExit as exc:
            code = exc.code
    sys.stdout.write(filter_help(buffer.getvalue()))
    if code:
        sys.exit(code)


def _rank_args(argv: list[str]) -> list[str]:
    """Under `accelerate launch`/torchrun, ranks other than 0 write nothing under runs/:
    their Hydra directory goes to a scratch folder (MEDALIGN_RANK_DIR, else the temp dir)."""
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        return argv
    root = os.environ.get("MEDALIGN_RANK_DIR") or tempfile.gettempdir()
    scratch = f"{root}/medalign-rank{rank}-{os.environ.get('MASTER_PORT', os.getppid())}"
    kept = [a for a in argv if not a.startswith(("hydra.run.dir=", "hydra.output_subdir="))]
    return [*kept, f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]


if __name__ == "__main__":
    main()
