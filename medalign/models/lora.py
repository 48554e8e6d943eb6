"""`lora.*` -> a peft `LoraConfig` (or None for lora=none, a full fine-tune)."""

from __future__ import annotations

from typing import Any

from medalign.config import LoraSettings


def lora_config(lora: LoraSettings) -> Any:
    """The `peft.LoraConfig` for causal-LM training, or None when LoRA is off."""
    if not lora.enabled:
        return None
    from peft import LoraConfig

    targets = lora.target_modules
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(targets) if isinstance(targets, list | tuple) else targets,
        bias=lora.bias,
        use_rslora=lora.use_rslora,
        modules_to_save=list(lora.modules_to_save) if lora.modules_to_save else None,
        task_type="CAUSAL_LM",
    )
