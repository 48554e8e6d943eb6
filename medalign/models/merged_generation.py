"""Generate with the LoRA adapter merged into the base weights, then restore them exactly.

    with merged_adapter(peft_model):
        out = peft_model.generate(...)

Why: an unmerged adapter adds two skinny matmuls to every targeted projection of every
decoded token; at the small batches of on-policy generation those launches cost up to
half the throughput (vLLM #10062, verl PR #1127). Merging makes each projection one
matmul. peft's `unmerge_adapter` subtracts the delta again, which in bf16 does not give
back the same bits (each merge/unmerge rounds, and a run of hundreds of steps would walk
the frozen base away): the original weights are kept once on the CPU and copied back,
so the base after generation is bit-identical to the base before.

Where peft cannot merge without loss (a quantized base: int8 or nf4 layers), or there is
no LoRA adapter, generation runs unmerged, as before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


def mergeable_layers(model: Any) -> list[Any]:
    """The LoRA layers whose base weight peft merges exactly (a plain float weight)."""
    import torch
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    float_types = (torch.float32, torch.float16, torch.bfloat16)
    plain = [m for m in layers if getattr(m.get_base_layer(), "weight", None) is not None]
    if not layers or len(plain) < len(layers):
        return []
    if any(m.get_base_layer().weight.dtype not in float_types for m in plain):
        return []  # int8 / 4-bit storage: merging would requantize
    return plain


@contextlib.contextmanager
def merged_adapter(model: Any, originals: dict[int, Any] | None = None) -> Iterator[bool]:
    """Merge `model`'s active LoRA adapter for the block, then put the base back bit for bit.
    Yields whether it merged. `originals`: a dict kept across calls (one CPU copy of the
    base weights, taken on first use: the base is frozen while a LoRA adapter trains)."""
    layers = mergeable_layers(model)
    if not layers or not hasattr(model, "merge_adapter"):
        yield False
        return
    import torch

    saved = originals if originals is not None else {}
    with torch.no_grad():
        for layer in layers:
            weight = layer.get_base_layer().weight
            if id(layer) not in saved:
                saved[id(layer)] = weight.detach().to("cpu", copy=True)
        model.merge_adapter()
        try:
            yield True
        finally:
            model.unmerge_adapter()
            for layer in layers:
                weight = layer.get_base_layer().weight
                weight.copy_(saved[id(layer)].to(weight.device, non_blocking=True))


def generate_merged(trainer: Any) -> bool:
    """Make a TRL GRPO/RLOO trainer generate with its adapter merged (HF generation; vLLM
    syncs merged weights itself). Returns whether it was wired: TRL's per-turn generation
    method is private, so a TRL without it generates unmerged, with a log line."""
    original = getattr(trainer, "_generate_single_turn", None)
    if original is None or getattr(trainer, "use_vllm", False):
        if original is None:
            log.info("rl: this TRL has no _generate_single_turn; generating unmerged")
        return False
    if not mergeable_layers(trainer.model):
        log.info("rl: the adapter cannot be merged exactly (quantized base?); generating unmerged")
        return False
    originals: dict[int, Any] = {}

    def generate(*args: Any, **kwargs: Any) -> Any:
        with merged_adapter(trainer.model, originals):
            return original(*args, **kwargs)

    trainer._generate_single_turn = generate
    return True
