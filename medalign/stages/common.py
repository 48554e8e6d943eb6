"""What every trainer-backed stage shares: TRL/transformers arguments and the SFT base.

One place decides the device flags (bf16 only on a bf16 GPU, `use_cpu` otherwise,
gradient checkpointing off unless asked: TRL's defaults assume a GPU and run 2.5x slower
on a CPU), checkpointing and W&B reporting, so SFT, reward and RL stages agree.
"""

from __future__ import annotations

from typing import Any

from medalign.config import RunConfig
from medalign.outputs import RunDir
from medalign.tracking import Tracker


def trainer_args(
    cfg: RunConfig,
    run: RunDir,
    tracker: Tracker,
    *,
    max_steps: int,
    learning_rate: float,
    batch_size: int,
    logging_steps: int,
    bf16: bool | None = None,
    gradient_checkpointing: bool = False,
    subdir: str = "checkpoints",
) -> dict[str, Any]:
    import torch

    on_gpu = torch.cuda.is_available()
    if bf16 is None:
        bf16 = on_gpu and torch.cuda.is_bf16_supported()
    every = cfg.checkpoint.every_steps
    return {
        "output_dir": str(run.path / subdir),
        "run_name": run.path.name,
        "seed": cfg.seed,
        "max_steps": max_steps,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": batch_size,
        "logging_steps": logging_steps,
        "bf16": bf16,
        "use_cpu": not on_gpu,
        "gradient_checkpointing": gradient_checkpointing,
        "save_strategy": "steps" if every > 0 else "no",
        "save_steps": max(every, 1),
        "save_total_limit": cfg.checkpoint.keep,
        "report_to": ["wandb"] if tracker.enabled else [],
        "dataloader_num_workers": 0,
    }


def sft_base(cfg: RunConfig, run: RunDir, init_from: str | None) -> str:
    """The model a reward or RL stage starts from: the base, or the base with the SFT
    adapter `init_from` merged in (so the RL reference model is the SFT model)."""
    from medalign.models.load import model_source

    source = model_source(cfg.model)
    if not init_from:
        return source
    merged = run.path / "sft_merged"
    if not (merged / "config.json").is_file():
        from medalign.models.merge import merge_adapter

        merge_adapter(source, init_from, merged)
    return str(merged)


def with_path(cfg: RunConfig, path: str) -> Any:
    """`cfg.model` pointing at `path` (a merged model dir)."""
    import dataclasses

    return dataclasses.replace(cfg.model, path=path, builder="hub", chat_template=None)
