"""What every trainer-backed stage shares: the TRL/transformers arguments built from the
`trainer:` section, pass-through `stage.trainer_kwargs`, and the model config that points at
the starting model (`with_path`; models/init_from.py `sft_base` resolves it).

One place decides the device flags (bf16 only on a bf16 GPU, `use_cpu` otherwise,
gradient checkpointing off unless asked: TRL's defaults assume a GPU and run 2.5x slower
on a CPU), checkpointing and W&B reporting, so SFT, reward and RL stages agree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError, did_you_mean
from medalign.models.hf_compat import checkpointing_key
from medalign.outputs import RunDir
from medalign.tracking import Tracker


def trainer_args(
    cfg: RunConfig, out: RunDir, tracker: Tracker, subdir: str = "checkpoints"
) -> dict:
    """transformers.TrainingArguments keys every TRL config takes, from `trainer:`."""
    import torch

    t = cfg.trainer
    on_gpu = torch.cuda.is_available()
    bf16 = t.bf16 if t.bf16 is not None else on_gpu and torch.cuda.is_bf16_supported()
    return {
        "output_dir": str(out.path / subdir),
        "run_name": out.path.name,
        "seed": cfg.seed if t.seed is None else t.seed,
        "max_steps": t.max_steps,
        "num_train_epochs": t.num_train_epochs,
        "learning_rate": t.learning_rate,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "lr_scheduler_type": t.lr_scheduler_type,
        "warmup_steps": t.warmup_steps,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "logging_steps": t.logging_steps,
        "bf16": bf16,
        "use_cpu": not on_gpu,
        # transformers 5.24's `activation_checkpointing` (5.17: `gradient_checkpointing`;
        # models/hf_compat.py); TRL's configs would otherwise default it to True, even on a CPU
        checkpointing_key(): t.gradient_checkpointing,
        "save_strategy": "steps" if t.save_steps > 0 else "no",
        "save_steps": max(t.save_steps, 1),
        "save_total_limit": t.save_total_limit,
        "report_to": ["wandb"] if tracker.enabled else [],
        "dataloader_num_workers": 0,
        **({"use_liger_kernel": True} if cfg.model.liger else {}),
    }


def build_config(config_cls: type, cfg: RunConfig, common: dict, **specific: Any) -> Any:
    """`config_cls(**common, **specific, **stage.trainer_kwargs)`, with a typo in
    trainer_kwargs caught here (before any model loads) with the valid names."""
    extra = dict(getattr(cfg.stage, "trainer_kwargs", None) or {})
    valid = {f.name for f in dataclasses.fields(config_cls)}
    for key in extra:
        if key not in valid:
            raise MedalignError(
                f"config stage.trainer_kwargs.{key}: not an argument of "
                f"{config_cls.__module__}.{config_cls.__name__}.{did_you_mean(key, valid)}"
            )
    return config_cls(**{**common, **specific, **extra})


def with_path(cfg: RunConfig, path: str) -> Any:
    """`cfg.model` pointing at `path` (a merged model dir)."""
    from medalign.models.load import at_path

    return at_path(cfg.model, path)
