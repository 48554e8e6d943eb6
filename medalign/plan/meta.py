"""The configured model on the meta device: parameter counts and traced activations.

Why: counting parameters by hand for every architecture (GQA, biases, tied embeddings,
fused projections, a score head, LoRA on "all-linear") is where planners go wrong. Here
transformers builds the real module tree under accelerate's `init_empty_weights` (no
memory), peft wraps it exactly as training would, and a forward pass on meta tensors
under `torch.autograd.graph.saved_tensors_hooks` records every tensor autograd keeps for
the backward pass: the activation memory of this architecture and adapter, measured
rather than assumed. Seconds for an 8B model; nothing is allocated or downloaded.

    from medalign.plan.meta import build_meta, count_params, trace_activations
"""

from __future__ import annotations

from typing import Any

from medalign.config import RunConfig

CATEGORIES = ("embedding", "attention", "mlp", "norm", "lm_head", "score", "lora", "other")


def build_meta(
    cfg: RunConfig, *, reward: bool = False, num_layers: int | None = None, dropout: bool = True
) -> Any:
    """The model `cfg` trains (causal LM, or the reward stage's 1-label classifier),
    with its LoRA adapter, on the meta device. dropout=False: TRL's RewardConfig and
    DPOConfig default to `disable_dropout=True`, which drops LoRA's dropout masks."""
    import dataclasses

    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from medalign.models.random_init import hf_config

    model_cfg = cfg.model
    if num_layers is not None:
        model_cfg = dataclasses.replace(model_cfg, num_layers=num_layers)
    config = hf_config(model_cfg, pad_token_id=0)
    dtype = torch.float32 if cfg.model.dtype == "auto" else getattr(torch, cfg.model.dtype)
    attn = "eager" if cfg.model.attn_implementation == "eager" else "sdpa"
    with init_empty_weights():
        if reward:
            config.num_labels = 1
            model = AutoModelForSequenceClassification.from_config(
                config, dtype=dtype, attn_implementation=attn
            )
        else:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    if config.tie_word_embeddings:
        model.tie_weights()  # not done under init_empty_weights; real loading ties them
    lora = _lora(cfg, reward)
    if lora is not None and not dropout:
        lora.lora_dropout = 0.0
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora)
    return model


def _lora(cfg: RunConfig, reward: bool) -> Any:
    """The adapter the stage trains (models/lora.py builds it for both), as on meta."""
    from medalign.models.lora import lora_config

    if reward and not cfg.reward.lora:
        return None
    return lora_config(cfg.lora, head="reward" if reward else "causal", on_meta=True)


def category(name: str) -> str:
    """The module type a parameter name belongs to."""
    if "lora_" in name:
        return "lora"
    if "embed_tokens" in name or "wte" in name:
        return "embedding"
    if "lm_head" in name:
        return "lm_head"
    if name.split(".")[-2:-1] == ["score"] or ".score." in name or name.startswith("score."):
        return "score"
    if "norm" in name:
        return "norm"
    if "self_attn" in name or "attention" in name:
        return "attention"
    if "mlp" in name:
        return "mlp"
    return "other"


def count_params(model: Any) -> dict[str, Any]:
    """Parameters by module type, trainable ones, and the linear weights bitsandbytes
    would quantize (every nn.Linear of the decoder layers; not the LM head or score
    head, which `get_keys_to_not_convert` keeps in high precision)."""
    import torch

    by_type = dict.fromkeys(CATEGORIES, 0)
    trainable_by_type = dict.fromkeys(CATEGORIES, 0)
    seen: set[int] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:  # tied embeddings count once
            continue
        seen.add(id(param))
        kind = category(name)
        by_type[kind] += param.numel()
        if param.requires_grad:
            trainable_by_type[kind] += param.numel()
    linears = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or "lora_" in name:
            continue
        if category(name + ".weight") in ("lm_head", "score"):
            continue
        linears.append((module.out_features, module.in_features, module.bias is not None))
    lora_matmul = sum(
        m.weight.numel()
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and "lora_" in n
    )
    return {
        "total": sum(by_type.values()),
        "trainable": sum(trainable_by_type.values()),
        "by_type": {k: v for k, v in by_type.items() if v},
        "trainable_by_type": {k: v for k, v in trainable_by_type.items() if v},
        "quantizable_linears": linears,
        "lora_matmul": lora_matmul,
        "tied": _tied(model),
    }


def _tied(model: Any) -> bool:
    config = getattr(model, "config", None)
    return bool(getattr(config, "tie_word_embeddings", False))


def trace_activations(model: Any, batch: int, seq: int, *, eager: bool) -> dict[str, float]:
    """Bytes autograd saves for the backward of one training forward (train mode, loss
    included), deduplicated by storage; parameters excluded. On the meta device SDPA
    takes its math path and saves the b·heads·s·s attention probabilities, which the
    fused kernels a real run uses (flash / memory-efficient on CUDA, the flash kernel on
    CPU) do not keep: unless attn_implementation=eager those are replaced by the fused
    kernels' logsumexp (b·heads·s fp32)."""
    import torch

    model.train()
    params = {id(p) for p in model.parameters()}
    saved: dict[int, tuple[tuple[int, ...], int]] = {}
    keep: list[Any] = []

    def pack(tensor: Any) -> Any:
        base = tensor._base if tensor._base is not None else tensor
        if id(base) in params or id(tensor) in params:
            return tensor
        keep.append(base)
        saved[id(base)] = (tuple(base.shape), base.numel() * base.element_size())
        return tensor

    ids = torch.zeros(batch, seq, dtype=torch.long, device="meta")
    kwargs = {"labels": ids} if _is_causal(model) else {}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(input_ids=ids, **kwargs)
    total = attention_probs = lse = head = 0.0
    vocab = out.logits.shape[-1]
    for shape, nbytes in saved.values():
        if not eager and len(shape) == 4 and shape[-1] == seq and shape[-2] == seq and seq > 1:
            attention_probs += nbytes
            lse += shape[0] * shape[1] * seq * 4
            continue
        if shape and shape[-1] == vocab and vocab > 1:  # the loss's log-softmax: see planner
            head += nbytes
            continue
        total += nbytes
    logits = out.logits
    return {
        "saved": total + lse,
        "head_saved": head,
        "attention_probs_dropped": attention_probs,
        "logits": logits.numel() * logits.element_size(),
        "logits_fp32": logits.numel() * 4,
    }


def _is_causal(model: Any) -> bool:
    name = type(getattr(model, "base_model", model)).__name__
    inner = getattr(model, "get_base_model", lambda: model)()
    return "CausalLM" in type(inner).__name__ or "CausalLM" in name
