"""`quant.*` -> a bitsandbytes `BitsAndBytesConfig` (or none).

bitsandbytes >= 0.45 quantizes on the CPU as well as on CUDA (8-bit and nf4 both load,
train LoRA and generate here), so the check below asks bitsandbytes itself rather than
assuming "no CUDA, no quantization".
"""

from __future__ import annotations

from typing import Any

from medalign.config import QuantConfig
from medalign.errors import MedalignError


def check_quant_available(quant: QuantConfig) -> None:
    """Fail at start-up, before loading a model, when bitsandbytes cannot quantize here."""
    if quant.mode == "none":
        return
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # ImportError, or a CUDA library failing to load
        raise MedalignError(
            f"quant={quant.mode} needs bitsandbytes, which failed to import here ({exc}). "
            "Install it (pip install bitsandbytes) or run with quant=none."
        ) from None
    import torch

    if not torch.cuda.is_available() and not _bnb_supports_cpu():
        raise MedalignError(
            f"quant={quant.mode}: no CUDA GPU and this bitsandbytes build has no CPU backend; "
            "run with quant=none or on a GPU."
        )


def _bnb_supports_cpu() -> bool:
    from importlib.metadata import version

    from packaging.version import Version

    return Version(version("bitsandbytes")) >= Version("0.45")


def bnb_config(quant: QuantConfig) -> Any:
    """The `BitsAndBytesConfig` for `quant`, or None for quant=none."""
    if quant.mode == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    compute = getattr(torch, quant.compute_dtype) if quant.compute_dtype != "auto" else None
    if quant.mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=quant.llm_int8_threshold)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_use_double_quant=quant.double_quant,
    )
