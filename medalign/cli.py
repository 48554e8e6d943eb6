"""The command line: `python -m medalign [group=option ...] [key=value ...]`.

Thin on purpose: override typos are caught before Hydra (Hydra's own message would
suggest `+key`), Hydra composes the config, and `medalign.run.run` does the work.
Nothing here imports torch, so `--help` and `--cfg job` answer fast.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig

from medalign.errors import MedalignError
from medalign.quiet import quiet

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")  # package data: in every wheel
log = logging.getLogger("medalign")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from medalign.run import run
    from medalign.sweep import job_identity, objective

    quiet([])  # again here: launcher workers (joblib, submitit) never run main()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    identity = job_identity(hydra_cfg, cfg) if multirun else {}
    try:
        metrics = run(cfg, run_dir, overrides=list(hydra_cfg.overrides.task), **identity)
    except Exception as exc:
        if isinstance(exc, MedalignError):
            log.error("%s", exc)
            print(f"medalign: error: {exc}", file=sys.stderr)
        else:
            log.exception("job failed")
        if multirun:  # recorded as failed in its manifest; the other jobs go on
            return float("nan")
        if isinstance(exc, MedalignError):
            sys.exit(1)
        raise
    return objective(metrics, cfg.sweep.metric)


def main() -> None:
    from medalign.config import check_overrides

    sys.argv = _rank_args(quiet(sys.argv))  # known-harmless library noise off (--verbose)
    overrides = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
    try:
        check_overrides(overrides)
    except MedalignError as exc:
        print(f"medalign: error: {exc}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


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
