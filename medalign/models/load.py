"""Load a tokenizer and a causal LM from whatever `model.*` names, the same way for all.

The builder (tiny, hub, or a dotted path) yields a directory or hub id; everything
after that is plain `from_pretrained`, so the tiny default exercises the real path.
"""

from __future__ import annotations

import logging
from typing import Any

from medalign.config import ModelConfig, QuantConfig
from medalign.errors import MedalignError
from medalign.registry import get

log = logging.getLogger(__name__)


def at_path(cfg: ModelConfig, path: str) -> ModelConfig:
    """`cfg` pointing at `path` (a merged model dir), loaded as any local model."""
    import dataclasses

    return dataclasses.replace(cfg, path=path, builder="hub", chat_template=None)


def model_source(cfg: ModelConfig) -> str:
    """The directory or hub id the model is loaded from (builds the tiny one if needed)."""
    if cfg.builder == "tiny" and cfg.path:
        return cfg.path  # an already built tiny dir, e.g. a merged model
    return get("model_builder", cfg.builder)(cfg)


def load_tokenizer(cfg: ModelConfig, source: str) -> Any:
    """The tokenizer with a chat template and a pad token, or a clear error."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
        )
    except OSError as exc:
        raise MedalignError(_load_error(cfg, source, exc)) from None
    if cfg.chat_template:
        tokenizer.chat_template = get("chat_template", cfg.chat_template)
    if not tokenizer.chat_template:
        raise MedalignError(
            f"model {cfg.name!r} ({source}) has no chat template: set model.chat_template "
            "(e.g. chatml)"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(cfg: ModelConfig, quant: QuantConfig, source: str) -> Any:
    """`AutoModelForCausalLM.from_pretrained` with dtype, attention and quantization."""
    import torch
    from transformers import AutoModelForCausalLM

    from medalign.models.quant import bnb_config

    kwargs: dict[str, Any] = {
        "revision": cfg.revision,
        "trust_remote_code": cfg.trust_remote_code,
        "attn_implementation": cfg.attn_implementation,
        "dtype": cfg.dtype if cfg.dtype == "auto" else getattr(torch, cfg.dtype),
    }
    quantization = bnb_config(quant)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = {
            "": torch.cuda.current_device() if torch.cuda.is_available() else "cpu"
        }
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise MedalignError(_load_error(cfg, source, exc)) from None
    if quantization is not None and quant.prepare_for_kbit_training:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


def _load_error(cfg: ModelConfig, source: str, exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"model {cfg.name!r}: cannot load {source!r} ({first}). A hub id needs network access "
        "(and HF_HUB_OFFLINE unset) or a local copy in model.path."
    )
