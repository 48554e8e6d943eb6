"""`lora.*` -> a peft `LoraConfig` (or None for lora=none, a full fine-tune), with the
adapter variants peft provides: DoRA, PiSSA / OLoRA / LoftQ / Gaussian initialisation and
the LoRA+ optimizer.

`lora_config` is the one builder: SFT, the reward models (`head="reward"`, a
sequence-classification head), RL and the planner (`on_meta=True`) all take their
adapter from it, so every setting in `conf/lora/` reaches every stage; `attach_loraplus`
gives each trainer the LoRA+ optimizer. A stage that cannot take a variant refuses it at
start-up (the verl hand-off: medalign/rl_engines/verl.py `check_lora_settings`).

    python -m medalign stage=pubmedqa lora=dora                 (lora.use_dora=true)
    python -m medalign stage=pubmedqa lora=pissa                (lora.init=pissa)
    python -m medalign stage=pubmedqa lora.loraplus_lr_ratio=16

Unsupported combinations are refused at start-up by `check_lora` (called from
`medalign.config.validate`), before a model loads. NEFTune is not a LoRA setting: it is
`SFTConfig.neftune_noise_alpha`, set from `trainer.neftune_noise_alpha`.

PiSSA and OLoRA move part of each base weight into the adapter (the base keeps the
residual). Saved as is, the adapter records `init_lora_weights=pissa`, and peft repeats
the (deterministic) initialisation on the original base at every load, so eval, export
and later stages get the trained model, at the cost of one SVD per load.
`snapshot_initial_adapter` + `conversion_kwargs(...)` in `save_pretrained` instead write a
plain LoRA (rank 2r) on the original base: no SVD at load, and it stacks with others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medalign.config import LoraSettings, QuantConfig
from medalign.errors import MedalignError

# lora.init -> peft's `init_lora_weights` (peft 0.21: True | "gaussian" | "pissa" |
# "pissa_niter_<n>" | "olora" | "loftq" | ...).
INIT_LORA_WEIGHTS: dict[str, Any] = {
    "default": True,
    "gaussian": "gaussian",
    "pissa": "pissa",
    "olora": "olora",
    "loftq": "loftq",
}
MUTATES_BASE = ("pissa", "olora")  # inits that leave a residual in the base weights
# the model a stage trains -> peft's task_type: "causal" (SFT, RL) | "reward" (one score)
TASK_TYPES = {"causal": "CAUSAL_LM", "reward": "SEQ_CLS"}


def check_lora(lora: LoraSettings, quant: QuantConfig) -> None:
    """Refuse combinations peft does not support, naming the keys (no torch import)."""
    variant = [
        k
        for k, on in (
            ("lora.use_dora", lora.use_dora),
            (f"lora.init={lora.init}", lora.init != "default"),
            ("lora.loraplus_lr_ratio", lora.loraplus_lr_ratio is not None),
        )
        if on
    ]
    if variant and not lora.enabled:
        raise MedalignError(
            f"{variant[0]} is a LoRA variant, but lora.enabled=false (a full fine-tune): "
            "pick a LoRA config (lora=default, lora=dora, lora=pissa) or drop the variant"
        )
    if lora.init == "loftq" and quant.mode != "none":
        raise MedalignError(
            f"lora.init=loftq with quant={quant.mode}: LoftQ quantizes the unquantized base "
            f"itself (to lora.loftq_bits={lora.loftq_bits}) while it initialises the adapter; "
            "load the base unquantized with quant=none"
        )
    if lora.init == "pissa" and quant.mode != "none":
        raise MedalignError(
            f"lora.init=pissa with quant={quant.mode}: peft runs the PiSSA SVD on float "
            "weights only; use quant=none (or lora.init=olora, which peft supports on a "
            "bitsandbytes base)"
        )
    if lora.pissa_niter is not None and lora.init != "pissa":
        raise MedalignError(
            f"lora.pissa_niter={lora.pissa_niter} applies to lora.init=pissa only "
            f"(lora.init={lora.init})"
        )
    if lora.pissa_niter is not None and lora.pissa_niter < 0:
        raise MedalignError(f"lora.pissa_niter: expected >= 0, got {lora.pissa_niter}")
    if lora.loraplus_lr_ratio is not None and lora.loraplus_lr_ratio < 1:
        raise MedalignError(
            f"lora.loraplus_lr_ratio={lora.loraplus_lr_ratio}: LoRA+ trains B faster than A, "
            "the ratio must be >= 1 (the paper uses 2 to 32; null turns LoRA+ off)"
        )


def lora_config(
    lora: LoraSettings,
    quant: QuantConfig | None = None,
    *,
    head: str = "causal",
    on_meta: bool = False,
) -> Any:
    """The `peft.LoraConfig` every stage trains with, or None when LoRA is off.

    head: "causal" (SFT, RL) or "reward" (the reward stage's one-score classifier; peft
    then also trains the score head). on_meta=True: the planner's copy, for a model on
    the meta device: the same adapter, initialised as plain LoRA, because PiSSA, OLoRA
    and LoftQ initialise from the real weights (an SVD, a QR) and change values, not
    shapes."""
    if quant is not None:
        check_lora(lora, quant)
    if not lora.enabled:
        return None
    from peft import LoraConfig

    init: Any = True if on_meta else INIT_LORA_WEIGHTS[lora.init]
    extra: dict[str, Any] = {}
    if lora.init == "pissa" and lora.pissa_niter is not None and not on_meta:
        init = f"pissa_niter_{lora.pissa_niter}"
    if lora.init == "loftq" and not on_meta:
        _check_loftq_device()
        from peft import LoftQConfig

        extra["loftq_config"] = LoftQConfig(loftq_bits=lora.loftq_bits, loftq_iter=1)
    targets = lora.target_modules
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(targets) if isinstance(targets, list | tuple) else targets,
        bias=lora.bias,
        use_rslora=lora.use_rslora,
        use_dora=lora.use_dora,
        init_lora_weights=init,
        modules_to_save=list(lora.modules_to_save) if lora.modules_to_save else None,
        task_type=TASK_TYPES[head],
        **extra,
    )


def _check_loftq_device() -> None:
    import torch

    if not torch.cuda.is_available():
        raise MedalignError(
            "lora.init=loftq needs a CUDA GPU: peft 0.21 runs LoftQ's quantize/SVD "
            "iterations on 'cuda' only; use lora.init=pissa (or default) on this machine"
        )


def loraplus_optimizer(model: Any, lora: LoraSettings, learning_rate: float) -> Any:
    """The LoRA+ optimizer (B matrices at `learning_rate * lora.loraplus_lr_ratio`), or None.

    Pass it to the trainer as `optimizers=(optimizer, None)` (the trainer then builds its
    scheduler on it); `model` must already carry the adapter (a PeftModel)."""
    if lora.loraplus_lr_ratio is None:
        return None
    import torch
    from peft import PeftModel
    from peft.optimizers import create_loraplus_optimizer

    if not isinstance(model, PeftModel):
        raise MedalignError(
            "lora.loraplus_lr_ratio: LoRA+ needs the model with its adapter attached "
            "(a peft model); lora=none or a merged model has no A/B matrices"
        )
    return create_loraplus_optimizer(
        model,
        torch.optim.AdamW,
        lr=learning_rate,
        loraplus_lr_ratio=lora.loraplus_lr_ratio,
    )


def attach_loraplus(trainer: Any, lora: LoraSettings, learning_rate: float) -> bool:
    """Give a built trainer (whose model already carries the adapter, as SFTTrainer's does
    after `peft_config=`) the LoRA+ optimizer; its scheduler is then built on it. Returns
    whether LoRA+ is on. Equivalent to `optimizers=(optimizer, None)` at construction."""
    optimizer = loraplus_optimizer(trainer.model, lora, learning_rate)
    if optimizer is None:
        return False
    trainer.optimizer = optimizer  # Trainer.create_optimizer keeps a preset optimizer
    return True


def snapshot_initial_adapter(model: Any, lora: LoraSettings, folder: Path) -> Path | None:
    """For PiSSA/OLoRA: save the adapter as initialised (before any step) to `folder`,
    once; return it for `conversion_kwargs`. Other inits: None (nothing to convert).

    peft reloads it as an adapter named after the folder, so the name has no dot
    (e.g. `<run>/adapter_init`)."""
    if lora.init not in MUTATES_BASE or not lora.enabled:
        return None
    if "." in folder.name:
        raise ValueError(f"initial adapter folder {folder.name!r}: peft adapter names have no dot")
    if not (folder / "adapter_config.json").is_file():
        model.save_pretrained(folder)
    return folder


def conversion_kwargs(initial: Path | None) -> dict[str, Any]:
    """`save_pretrained` keywords that turn a PiSSA/OLoRA adapter into a plain LoRA that
    applies to the original base weights (empty when there is nothing to convert)."""
    if initial is None:
        return {}
    return {"path_initial_model_for_weight_conversion": str(initial)}
