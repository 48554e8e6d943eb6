"""A SLURM job requeued after preemption or a timeout resumes its run (`hydra/launcher=slurm`).

    python -m medalign -m hydra/launcher=slurm hydra.launcher.partition=gpu stage=medqa \\
        lora.r=8,16 trainer.save_steps=200

submitit (through hydra-submitit-launcher) requeues a job that SLURM preempts, and one
that reaches its time limit up to `max_num_timeout` times (conf/hydra/launcher/slurm.yaml):
the same job, with the same overrides, starts again in the same run directory. There it
finds the run its first attempt left, and continues it instead of refusing the directory:
an SFT stage from its newest *complete* checkpoint (`stage.resume_from=latest`, see
medalign/checkpoints.py), a curriculum from its manifest (`resume=<run dir>`: finished
stages are kept), any other stage (eval, reward, RL) from its start, in the same directory.
Checkpoints come every `trainer.save_steps`: what a preemption costs at most.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict


def requeued(run_dir: Path, environ: Mapping[str, str] = os.environ) -> bool:
    """True for a job submitit started (it sets SUBMITIT_EXECUTOR in every job) whose run
    directory already holds a run: an earlier attempt of this same job."""
    return bool(environ.get("SUBMITIT_EXECUTOR")) and (Path(run_dir) / "manifest.json").is_file()


def resume_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """`cfg` for a requeued attempt: resume where the earlier attempt stopped (an explicit
    stage.resume_from or resume is kept)."""
    from medalign.stages.spec import stage_spec

    cfg = cfg.copy()
    spec = stage_spec(OmegaConf.select(cfg, "stage.kind") or "sft")
    with open_dict(cfg):
        if spec.resumable and not OmegaConf.select(cfg, "stage.resume_from"):
            cfg.stage.resume_from = "latest"
        elif spec.pipeline is not None and not cfg.get("resume"):
            cfg.resume = str(run_dir)
    return cfg
