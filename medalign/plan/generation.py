"""The RL step's generation: decoding speed, the KV cache, and vLLM's share of the GPU.

    from medalign.plan.generation import generation_estimate, rl_memory
    from medalign.plan.colocate import check_colocate   # the start-up refusal
    python -m medalign stage=plan trainer=rl plan.for_stage=rl rl.use_vllm=true plan.gpu=h200

Decoding is memory-bound on one GPU: each decoding step makes one new token for every
sequence of the batch and reads every weight it multiplies by (the LM head included,
the input embedding only by the rows it looks up) and the KV cache once. So

    tokens/s = batch x efficiency x bandwidth / (weight bytes + KV bytes)

(roofline; Williams et al. 2009, applied to decoding by Pope et al. 2022, "Efficiently
Scaling Transformer Inference", sec. 2). Prefill (the prompt, compute-bound) is left out.
`DECODE_EFFICIENCY` is assumed, not yet measured on a GPU: `python bench/bench_plan.py
--gpu-rl` measures it; on the CPU, bench/bench_plan.py's generation section compares the
formula with HF generate at a measured memcpy bandwidth.

vLLM (rl.use_vllm=true): TRL's colocate mode starts vLLM on the training GPU with
`rl.vllm_gpu_memory_utilization` x the GPU's memory, holding its own 16-bit copy of the
weights and its KV cache; with `rl.vllm_enable_sleep_mode` vLLM frees that memory while
the policy updates (TRL's `llm.sleep(level=2)`), so the share then overlaps the update's
activations rather than adding to them. Server mode generates on other GPUs.
"""

from __future__ import annotations

from typing import Any

from medalign.config import RunConfig
from medalign.plan import formulas as F

# Share of the memory bandwidth a decoding step reaches (HF generate and vLLM alike).
# Assumed (the value the planner has used since issue 19); not measured on a GPU yet.
DECODE_EFFICIENCY = 0.6
# vLLM's own allocations inside its share besides weights and KV cache (profiling
# activations, CUDA graphs, sampler): assumed, to be measured with --gpu-rl.
VLLM_OVERHEAD_GIB = 1.0


def decode_weight_bytes(cfg: RunConfig, counts: dict, quant: str, stored: float) -> float:
    """Bytes one decoding step reads: every weight except the input embedding's unused
    rows (an untied embedding is a lookup; a tied one is read whole as the LM head).
    HF generate reads the training model's weights (quantized, plus the fp32 adapter);
    vLLM its own 16-bit copy with the adapter merged. `stored`: the training model's
    weight bytes, adapter included (planner.weight_bytes)."""
    by_type = counts["by_type"]
    embedding = 0 if counts.get("tied") else by_type.get("embedding", 0)
    if cfg.rl.use_vllm:
        dtype = F.DTYPE_BYTES[cfg.model.dtype]
        return (counts["total"] - by_type.get("lora", 0) - embedding) * dtype
    dtype = F.DTYPE_BYTES[cfg.model.dtype]
    per = 4 if quant != "none" and cfg.quant.prepare_for_kbit_training and dtype < 4 else dtype
    return stored - embedding * per


def vllm_weight_bytes(cfg: RunConfig, counts: dict) -> float:
    """vLLM's 16-bit copy of the model (adapter merged): what its share must hold first."""
    return (counts["total"] - counts["by_type"].get("lora", 0)) * F.DTYPE_BYTES[cfg.model.dtype]


def vllm_share_bytes(cfg: RunConfig, gpu: F.Gpu) -> float:
    """rl.vllm_gpu_memory_utilization of the GPU's memory (vLLM's own definition)."""
    return cfg.rl.vllm_gpu_memory_utilization * gpu.memory_gib * F.GIB


def _kv(model: Any, cfg: RunConfig, tokens: float, sequences: int) -> float:
    return F.kv_cache_bytes(
        model.layers,
        model.kv_heads,
        model.head_dim,
        tokens,
        sequences,
        F.DTYPE_BYTES[cfg.model.dtype],
    )


def rl_memory(
    cfg: RunConfig, model: Any, work: Any, base: float, transient: float, gpu: F.Gpu
) -> dict[str, float]:
    """The RL step's extra bytes on the training GPU: reference, reward models, the HF
    generate KV cache, and vLLM's colocated share. `transient`: the update's activations,
    loss head and gradients, which vLLM's share overlaps in sleep mode."""
    rl, extra = cfg.rl, {}
    dtype = F.DTYPE_BYTES[cfg.model.dtype]
    # GRPO/RLOO with LoRA: the reference is the policy with its adapter disabled (no
    # weights); without LoRA and beta > 0, TRL keeps a frozen copy.
    extra["reference"] = 0.0 if cfg.lora.enabled or rl.beta == 0 else base
    models = [n for n, w in cfg.reward.weights.items() if w and n in cfg.reward.models]
    extra["reward_models"] = (
        len(models) * (model.counts["total"] - model.counts["by_type"].get("lora", 0)) * dtype
    )
    if not rl.use_vllm:  # vLLM keeps its KV cache inside its share (or on other GPUs)
        extra["kv_cache"] = _kv(model, cfg, work.seq, work.gen_sequences)
    if rl.use_vllm and rl.vllm_mode == "colocate":
        share = vllm_share_bytes(cfg, gpu)
        # asleep during the update: the peak is max(update, resident + share)
        extra["vllm_colocate"] = max(0.0, share - transient) if rl.vllm_enable_sleep_mode else share
    return extra


def generation_estimate(
    cfg: RunConfig, model: Any, work: Any, gpu: F.Gpu, stored: float
) -> dict[str, Any]:
    """Decoding of one generation round (work.gen_sequences completions of
    work.completion new tokens): tokens/s at DECODE_EFFICIENCY of the bandwidth, and the
    seconds it adds to the step. In vLLM the batch is what its share's KV cache holds.
    `stored`: the training model's weight bytes, adapter included."""
    weights = decode_weight_bytes(cfg, model.counts, work.quant, stored)
    context = work.seq - work.completion / 2  # the cache's mean length while decoding
    batch = work.gen_sequences
    out: dict[str, Any] = {"backend": "vllm" if cfg.rl.use_vllm else "hf"}
    if cfg.rl.use_vllm:
        free = vllm_share_bytes(cfg, gpu) - vllm_weight_bytes(cfg, model.counts)
        free -= VLLM_OVERHEAD_GIB * F.GIB
        per_sequence = _kv(model, cfg, work.seq, 1)
        out["vllm_kv_sequences"] = max(0, int(free // per_sequence))
        batch = max(1, min(batch, out["vllm_kv_sequences"]))
    kv = _kv(model, cfg, context, batch)
    tps = F.generation_tokens_per_second(
        weights, kv, batch, gpu.bandwidth_tbs * 1e12, DECODE_EFFICIENCY
    )
    seconds = work.gen_sequences * work.completion / tps
    out.update(
        concurrent_sequences=batch,
        new_tokens=work.completion,
        weight_bytes_per_step=weights,
        kv_bytes_per_step=kv,
        bandwidth_efficiency=DECODE_EFFICIENCY,
        generation_tokens_per_second=round(tps, 1),
        generation_seconds_per_step=round(seconds, 4),
    )
    return out


def colocate_summary(cfg: RunConfig, plan: dict[str, Any]) -> dict[str, Any]:
    """Training, vLLM's share and the total of a colocated plan, in GiB."""
    memory = plan["memory_bytes"]
    share = plan["gpu"]["memory_gib"] * cfg.rl.vllm_gpu_memory_utilization
    return {
        "vllm_gpu_memory_utilization": cfg.rl.vllm_gpu_memory_utilization,
        "sleep_mode": cfg.rl.vllm_enable_sleep_mode,
        "vllm_share_gib": round(share, 3),
        "training_gib": round((sum(memory.values()) - memory["vllm_colocate"]) / F.GIB, 3),
        "vllm_weights_gib": round(vllm_weight_bytes(cfg, plan["parameters"]) / F.GIB, 3),
        "total_gib": plan["total_gib"],
        "gpu_gib": plan["gpu"]["memory_gib"],
    }
