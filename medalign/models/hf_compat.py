"""The transformers APIs medalign calls whose names differ between the two versions it is
tested on: 5.24.0 (constraints.txt, `make test`) and 5.17.0 (constraints-gpu.txt, the
newest below vllm 0.31's cap `<5.18`; `make test-gpu-pins` runs the suite on it).

    from medalign.models.hf_compat import checkpointing_key, cache_key
    {checkpointing_key(): False}              # a TrainingArguments / TRL config key
    model(..., **{cache_key(): cache}); getattr(output, cache_key())

- gradient checkpointing: TrainingArguments' `activation_checkpointing` in 5.24
  (`gradient_checkpointing` deprecated for v6, with a FutureWarning); only
  `gradient_checkpointing` in 5.17.
- the KV cache: models take `cache=` and return `output.cache` in 5.24 (`past_key_values`
  deprecated, to go in 5.40); 5.17 has only `past_key_values`, and a `cache=` keyword is
  swallowed by the model's **kwargs: the continuation would be scored without its prompt.

Each name is read from the installed classes themselves, not from a version number.
"""

from __future__ import annotations

import dataclasses
from functools import cache


@cache
def checkpointing_key() -> str:
    """The TrainingArguments field that switches gradient checkpointing."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else ("gradient_checkpointing")
    )


@cache
def cache_key() -> str:
    """The keyword a causal LM takes its KV cache by, and the output field holding it."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    fields = {f.name for f in dataclasses.fields(CausalLMOutputWithPast)}
    return "cache" if "cache" in fields else "past_key_values"
