"""`run(cfg, run_dir)`: one stage from a composed config, testable without Hydra.

Order matters: validate the config and check quantization support before anything is
written or loaded, then claim the run directory, start W&B, run the stage, and record
success or failure in the manifest (`interrupted` for Ctrl-C); the W&B run closes and
the directory's lock is released in `finally` either way. Every stage starts from
`seed` (all RNGs), whatever ran before it in the process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from medalign.checks import check_components
from medalign.config import validate
from medalign.outputs import RunDir, failure_status, write_json_atomic
from medalign.stages.spec import StageInputs, stage_spec
from medalign.tracking import Tracker, start_tracking
from medalign.world.store import describe_data

log = logging.getLogger(__name__)


def run(
    cfg: DictConfig | dict,
    run_dir: Path,
    overrides: list[str] | None = None,
    group: str | None = None,
    name: str | None = None,
    hydra_subdir: str | None = None,
    requeued: bool = False,
    start: Any = None,
) -> dict[str, Any]:
    """Validate `cfg`, run its stage into `run_dir`, return the stage's metrics.

    `overrides` are the command line's: a curriculum re-composes each stage from them.
    `hydra_subdir`: where Hydra saved its record, moved to `.hydra/` once the run directory
    is claimed (never into a run that refuses this one). `requeued`: a SLURM job's new
    attempt (medalign.requeue) reopens the run its earlier attempt left in `run_dir`.
    `start`: `init_from` already resolved (a StartingPoint the curriculum holds); else it
    is resolved here, once, before anything is written, and handed to the stage as
    `inputs.start` (medalign.stages.spec.StageInputs), with what the kind's start-up
    check returned as `inputs.checked`."""
    typed = validate(cfg)
    spec = stage_spec(typed.stage.kind)
    checked = check_components(typed)  # the kind's own check last; its result goes on
    if spec.pipeline is not None:  # a run of runs (the curriculum)
        return spec.pipeline(typed, Path(run_dir), list(overrides or []), hydra_subdir=hydra_subdir)
    assert spec.run is not None  # StageSpec: exactly one of run, pipeline
    from medalign.models.init_from import resolve_init_from
    from medalign.models.quant import check_quant_available

    if start is None:
        start = resolve_init_from(typed.init_from)  # a bad init_from: refused here
    elif start.spec != typed.init_from:
        raise ValueError(f"start {start.spec!r} is not init_from={typed.init_from!r}")

    check_quant_available(typed.quant)
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    plain = OmegaConf.to_container(node, resolve=True)
    assert isinstance(plain, dict)
    plain.pop("hydra", None)
    run_dir = Path(run_dir)
    continues = spec.resumable and getattr(typed.stage, "resume_from", None) == "latest"
    resuming = continues or requeued
    if resuming and (run_dir / "config.yaml").is_file():  # resume is a replay
        from medalign.resume import refuse_changes

        recorded = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
        refuse_changes(recorded, plain, str(run_dir))  # type: ignore[arg-type]
    out = RunDir.create(
        run_dir, typed.stage.name, plain, reopen=resuming, hydra_subdir=hydra_subdir
    )
    out.update(data_source=describe_data(typed))  # the world, a data root, or the examples
    if resuming and out.stage.get("resumed"):  # the log file is appended to
        log.info("==== resumed %s (pid %d, %s) ====", run_dir, os.getpid(), out.stage["resumed"])
    tracker = Tracker()
    ok = False
    try:
        tracker = start_tracking(
            typed.logger,
            name=name or run_dir.name,
            job_type=typed.stage.name,
            run_dir=run_dir,
            config=plain,
            group=group,
            run_id=out.stage.get("wandb_run_id") if resuming else None,  # one run, resumed
        )
        out.update(wandb_run_id=tracker.run_id)
        _seed(typed.seed if typed.trainer.seed is None else typed.trainer.seed)
        inputs = StageInputs(run_dir, out, start, tracker, checked)
        metrics = spec.run(typed, inputs)
        write_json_atomic(run_dir / "metrics.json", metrics)
        out.finish("done")
        ok = True
        return metrics
    except BaseException as exc:
        out.finish(failure_status(exc), error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        tracker.finish(ok)
        out.close()


def _seed(seed: int) -> None:
    """Seed every RNG as the stage starts: a stage's result then depends on its config
    alone, not on what ran before it in this process. A resumed curriculum restarts a
    killed reward or RL stage in a new process, and must get the uninterrupted result
    (the reward head and LoRA weights are initialized before the trainer seeds).

    The calls of `transformers.set_seed`: importing it loads transformers' trainer
    utilities, peft and bitsandbytes (3 s), which `stage=eval` of a base model never needs.
    """
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device's generator, CUDA included
