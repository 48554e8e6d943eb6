"""`model.builder=random_init`: a real architecture with random weights, built offline.

Why: the code paths a 7-8B model takes (GQA, a 128k vocabulary, bf16, int8/nf4
quantization of 4096x14336 matrices) must be exercised on a machine with no hub access
and no GPU. The architecture numbers come from the model's YAML (`model.architecture`,
the published config.json values), `model.num_layers` slices it to its first N layers,
and the tokenizer is the tiny model's (its ids are a prefix of the padded embedding:
the embedding and LM head keep the architecture's full vocabulary size).

    python -m medalign stage=sft model=llama3_8b model.builder=random_init model.num_layers=1

Like `tiny`, the model is written with `save_pretrained` into the cache (keyed by its
numbers) and loaded back through `from_pretrained`, the same path as a hub model.
Where CUDA is present the weights are drawn on the GPU (a full 8B model takes seconds
there and minutes on a CPU); the two generators draw different numbers, so the device
is part of the cache key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from medalign.config import ArchitectureConfig, ModelConfig
from medalign.errors import MedalignError
from medalign.registry import register

log = logging.getLogger(__name__)

BUILDER_VERSION = 1
REQUIRED = (
    "family",
    "hidden_size",
    "intermediate_size",
    "num_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)


def require_architecture(cfg: ModelConfig) -> ArchitectureConfig:
    """The model's architecture numbers, or one error naming the missing keys."""
    arch = cfg.architecture
    missing = [k for k in REQUIRED if getattr(arch, k) is None]
    if missing:
        raise MedalignError(
            f"model {cfg.name!r} has no architecture numbers ({', '.join(missing)} missing): "
            f"add model.architecture.* to its YAML (the values of its config.json), e.g. "
            "model.architecture.hidden_size=4096"
        )
    if cfg.num_layers is not None and not 1 <= cfg.num_layers <= arch.num_layers:
        raise MedalignError(
            f"model.num_layers={cfg.num_layers}: must be between 1 and the architecture's "
            f"{arch.num_layers} layers"
        )
    return arch


def hf_config(cfg: ModelConfig, **special_tokens: int | None) -> Any:
    """The transformers `PretrainedConfig` of `model.architecture` (sliced to num_layers)."""
    from transformers import AutoConfig

    arch = require_architecture(cfg)
    kwargs: dict[str, Any] = {
        "hidden_size": arch.hidden_size,
        "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": cfg.num_layers or arch.num_layers,
        "num_attention_heads": arch.num_attention_heads,
        "num_key_value_heads": arch.num_key_value_heads,
        "vocab_size": arch.vocab_size,
        **{k: v for k, v in special_tokens.items() if v is not None},
    }
    if arch.max_position_embeddings is not None:
        kwargs["max_position_embeddings"] = arch.max_position_embeddings
    if arch.tie_word_embeddings is not None:
        kwargs["tie_word_embeddings"] = arch.tie_word_embeddings
    if arch.head_dim is not None:
        kwargs["head_dim"] = arch.head_dim
    try:
        return AutoConfig.for_model(arch.family, **kwargs)
    except ValueError as exc:
        raise MedalignError(
            f"model.architecture.family={arch.family!r}: not a transformers model type ({exc})"
        ) from None


@register("model_builder", "random_init")
def build_random_init(cfg: ModelConfig) -> str:
    """Build (or find in the cache) the random-weight model; return its directory."""
    from medalign.models.builders import build_tiny, cache_root
    from medalign.models.cache import build_into_cache

    require_architecture(cfg)
    tokenizer_dir = build_tiny(cfg)  # the tiny model of cfg.tiny: its tokenizer
    key = json.dumps(
        [
            BUILDER_VERSION,
            asdict(cfg.architecture),
            cfg.num_layers,
            cfg.dtype,
            tokenizer_dir,
            *_init_device_key(),
        ],
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    layers = cfg.num_layers or cfg.architecture.num_layers
    target = cache_root() / "models" / f"random-{cfg.name}-L{layers}-{digest}"

    def build(staging: Path) -> Path:
        log.info("building %s (%d layers, random weights) into %s", cfg.name, layers, target)
        _write(cfg, tokenizer_dir, staging)
        return staging

    return build_into_cache(target, "config.json", build)


def _init_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _init_device_key() -> list[str]:
    """Nothing for the CPU (keeps the keys of models already built), the device otherwise."""
    device = _init_device()
    return [] if device == "cpu" else [device]


def _write(cfg: ModelConfig, tokenizer_dir: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if len(tokenizer) > cfg.architecture.vocab_size:
        raise MedalignError(
            f"model.architecture.vocab_size={cfg.architecture.vocab_size} is smaller than the "
            f"tokenizer's {len(tokenizer)} tokens"
        )
    config = hf_config(
        cfg,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    dtype = torch.float32 if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
    torch.manual_seed(cfg.tiny.seed)
    with torch.device(_init_device()):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
