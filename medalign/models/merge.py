"""Merge a LoRA adapter into its base model and save the result with `save_pretrained`.

Used by the curriculum's `handoff=merge` and by `stage=export`. Written to a `.partial`
directory and renamed, so a reader never finds half a model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from medalign.errors import MedalignError


def merge_adapter(base: str, adapter: str, out: Path, safe_serialization: bool = True) -> Path:
    """Save base+adapter merged into plain weights at `out`; return `out`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(adapter, "adapter_config.json").is_file():
        raise MedalignError(f"no LoRA adapter to merge at {adapter}")
    import torch

    # Loading draws initial weights from torch's RNG before the saved ones replace them:
    # forked, so a stage that finds the merge already done (a curriculum's shared copy, a
    # resume) trains from the same RNG state as one that merged.
    with torch.random.fork_rng(devices=[]):
        model = AutoModelForCausalLM.from_pretrained(base)
        merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    # this process's own partial copy: two runs merging one adapter at once (two RL runs
    # from one SFT run) each write a whole copy, and the rename keeps one
    partial = out.with_name(f"{out.name}.partial-{os.getpid()}")
    aside = out.with_name(f"{out.name}.old-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(partial, safe_serialization=safe_serialization)
    tokenizer.save_pretrained(partial)
    if out.exists():  # a complete earlier merge moves aside, and goes once the new one is in
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(out, aside)
    os.replace(partial, out)
    shutil.rmtree(aside, ignore_errors=True)
    return out
