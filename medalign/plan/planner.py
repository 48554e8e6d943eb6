"""Will this run fit, and how long will it take: memory per GPU by component, compute,
a verdict and the knobs that would make it fit.

    from medalign.plan.planner import make_plan
    plan = make_plan(cfg)                 # cfg: a validated RunConfig
    python -m medalign stage=plan model=llama3_8b quant=nf4 plan.gpu=a100_40gb

The model is built on the meta device (medalign/plan/meta.py); parameter counts and the
activations autograd keeps come from it, the bytes from medalign/plan/formulas.py. The
trace is taken at batch 1 for a 1- and a 2-layer slice at the planned sequence length
and scaled (per layer, per sequence), so every variant the knob search tries is
arithmetic.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError
from medalign.plan import formulas as F

MB_TO_GIB = 1 / F.GIB


def _trainer_knobs(cfg: RunConfig) -> dict[str, Any]:
    """The trainer settings the planner reads: `trainer.*` (plan an RL or reward stage's
    own defaults with trainer=rl / trainer=reward)."""
    source = cfg.trainer
    keys = (
        "max_steps",
        "per_device_train_batch_size",
        "max_length",
        "gradient_checkpointing",
        "gradient_accumulation_steps",
        "learning_rate",
    )
    knobs = {k: getattr(source, k) for k in keys}
    knobs["optim"] = getattr(source, "optim", "adamw_torch")
    return knobs


def gpu_spec(cfg: RunConfig) -> F.Gpu:
    """The named GPU, with plan.gpu_memory_gb / plan.gpu_tflops overriding its numbers."""
    plan = cfg.plan
    if plan.gpu == "custom" or plan.gpu not in F.GPUS:
        if plan.gpu_memory_gb is None or plan.gpu_tflops is None:
            known = ", ".join(sorted(F.GPUS))
            raise MedalignError(
                f"plan.gpu={plan.gpu!r}: unknown GPU. Known: {known}; or give "
                "plan.gpu_memory_gb and plan.gpu_tflops (dense bf16 TFLOP/s)"
            )
        return F.Gpu(plan.gpu, plan.gpu_memory_gb, plan.gpu_tflops, 1.0)
    gpu = F.GPUS[plan.gpu]
    return F.Gpu(
        gpu.name,
        plan.gpu_memory_gb if plan.gpu_memory_gb is not None else gpu.memory_gib,
        plan.gpu_tflops if plan.gpu_tflops is not None else gpu.bf16_tflops,
        gpu.bandwidth_tbs,
    )


@dataclasses.dataclass
class Workload:
    """One training step's shape: what the knob search varies."""

    stage: str  # sft | reward | rl | dpo
    batch: int  # sequences per forward/backward (chosen+rejected counted twice)
    seq: int  # tokens per sequence
    accum: int
    steps: int
    ckpt: bool
    quant: str
    world: int
    sharding: str
    gen_sequences: int = 0  # rl: completions generated per device per generation round
    completion: int = 0


def workload(cfg: RunConfig) -> Workload:
    """The configured step: stage, micro-batch, sequence length, steps, sharding."""
    plan, knobs = cfg.plan, _trainer_knobs(cfg)
    # pretrain is an SFT step with every token in the loss and full (packed) blocks
    stage = "sft" if plan.for_stage == "pretrain" else plan.for_stage
    ckpt = plan.gradient_checkpointing
    if ckpt is None:
        ckpt = bool(knobs["gradient_checkpointing"])
    quant = cfg.quant.mode
    accum = int(knobs["gradient_accumulation_steps"])
    if stage == "sft":
        batch, seq, steps = knobs["per_device_train_batch_size"], knobs["max_length"], None
        steps = knobs["max_steps"]
    elif stage == "reward":  # RewardTrainer: chosen and rejected in one batch, unquantized
        batch, seq, steps, quant = (
            2 * knobs["per_device_train_batch_size"],
            knobs["max_length"],
            knobs["max_steps"],
            "none",
        )
    elif stage == "dpo":  # chosen + rejected, policy and reference passes
        batch, seq, steps = (
            2 * knobs["per_device_train_batch_size"],
            knobs["max_length"],
            knobs["max_steps"],
        )
    else:
        batch, steps = knobs["per_device_train_batch_size"], knobs["max_steps"]
        seq = knobs["max_length"]
    if plan.micro_batch is not None:
        batch = plan.micro_batch * (2 if stage in ("reward", "dpo") else 1)
    if plan.seq_len is not None:
        seq = plan.seq_len
    work = Workload(
        stage, int(batch), int(seq), accum, int(steps), ckpt, quant, plan.world_size, plan.sharding
    )
    if stage == "rl":
        work.completion = min(cfg.rl.max_completion_length, work.seq - 1)
        work.gen_sequences = work.batch * accum  # TRL: steps_per_generation = accumulation
    return work


def make_plan(cfg: RunConfig, device: str = "gpu") -> dict[str, Any]:
    """The plan of `cfg`: parameters, memory by component, compute, verdict, knobs.
    device="cpu" drops the CUDA context and allocator reserve (for CPU measurements)."""
    from medalign.models.random_init import require_architecture

    arch = require_architecture(cfg.model)
    gpu = gpu_spec(cfg)
    work = workload(cfg)
    # TRL's RewardConfig and DPOConfig disable dropout by default (SFT, GRPO, RLOO keep it)
    model = _Model(
        cfg, work.stage == "reward", work.seq, dropout=work.stage not in ("reward", "dpo")
    )
    memory = memory_components(cfg, model, work, device)
    total = sum(memory.values())
    compute = compute_estimate(cfg, model, work, gpu)
    limit = gpu.memory_gib * F.GIB
    notes = caveats(work, device)
    fits = _verdict(total, limit, notes)
    plan = {
        "model": cfg.model.name,
        "architecture": dataclasses.asdict(arch),
        "num_layers": model.layers,
        "gpu": dataclasses.asdict(gpu),
        "workload": dataclasses.asdict(work),
        "parameters": {k: v for k, v in model.counts.items() if k != "quantizable_linears"},
        "memory_bytes": memory,
        "memory_gib": {k: round(v / F.GIB, 3) for k, v in memory.items()},
        "total_gib": round(total / F.GIB, 3),
        "compute": compute,
        "fits": fits,
        "tight": bool(fits) and total > (1 - F.TIGHT_MARGIN) * limit,
        "knobs": [] if fits else knobs_to_fit(cfg, model, work, gpu, device),
        "caveats": notes,
    }
    if work.stage == "rl" and cfg.rl.use_vllm and cfg.rl.vllm_mode == "colocate":
        from medalign.plan.generation import colocate_summary

        plan["colocate"] = colocate_summary(cfg, plan)
    return plan


class _Model:
    """Counts and per-layer activation coefficients of the configured model."""

    def __init__(self, cfg: RunConfig, reward: bool, seq: int, dropout: bool = True) -> None:
        from medalign.plan.meta import build_meta, count_params, trace_activations

        arch = cfg.model.architecture
        self.layers = cfg.model.num_layers or arch.num_layers
        self.hidden = arch.hidden_size
        self.heads = arch.num_attention_heads
        self.head_dim = arch.head_dim or arch.hidden_size // arch.num_attention_heads
        self.kv_heads = arch.num_key_value_heads
        self.vocab = arch.vocab_size
        self.reward = reward
        self.seq = seq
        self.counts = count_params(build_meta(cfg, reward=reward))
        eager = cfg.model.attn_implementation == "eager"
        one = trace_activations(
            build_meta(cfg, reward=reward, num_layers=1, dropout=dropout), 1, seq, eager=eager
        )
        if self.layers > 1:
            two = trace_activations(
                build_meta(cfg, reward=reward, num_layers=2, dropout=dropout), 1, seq, eager=eager
            )
            self.per_layer = two["saved"] - one["saved"]
        else:
            self.per_layer = one["saved"] / 2  # a 1-layer model: split evenly (rarely used)
        self.outside = one["saved"] - self.per_layer  # embeddings, final norm, head, loss
        self.logits = one["logits"]
        self.head_saved = one["head_saved"]
        self.logits_fp32 = one["logits_fp32"]

    def activations(self, batch: int, seq: int, ckpt: bool, act_bytes: int) -> float:
        scale = batch * seq / self.seq
        if not ckpt:
            return scale * (self.outside + self.layers * self.per_layer)
        boundary = self.layers * batch * seq * self.hidden * act_bytes
        return scale * (self.outside + self.per_layer) + boundary


def weight_bytes(cfg: RunConfig, counts: dict, quant: str) -> tuple[float, float]:
    """(base weights, adapters) in bytes. Quantized: bitsandbytes sizes for the decoder
    linears; peft's prepare_model_for_kbit_training casts every other 16-bit parameter
    (embeddings, norms, LM head) to fp32. Adapters are fp32 (peft upcasts them)."""
    dtype = F.DTYPE_BYTES[cfg.model.dtype]
    by_type = counts["by_type"]
    lora = by_type.get("lora", 0)
    non_lora = counts["total"] - lora
    if quant == "none":
        return non_lora * dtype, lora * 4.0
    linears = counts["quantizable_linears"]
    quantized = sum(o * i for o, i, _ in linears)
    if quant == "int8":
        qbytes = sum(F.int8_bytes(o, i) for o, i, _ in linears)
    else:
        qbytes = sum(F.nf4_bytes(o * i, cfg.quant.double_quant) for o, i, _ in linears)
    rest = non_lora - quantized
    rest_bytes = 4 if cfg.quant.prepare_for_kbit_training and dtype < 4 else dtype
    return qbytes + rest * rest_bytes, lora * 4.0


def memory_components(
    cfg: RunConfig, model: _Model, work: Workload, device: str
) -> dict[str, float]:
    """Bytes per GPU by component at the peak of a training step."""
    counts = model.counts
    knobs = _trainer_knobs(cfg)
    shard = F.shard_factors(work.sharding, work.world)
    dtype = F.DTYPE_BYTES[cfg.model.dtype]
    base, adapters = weight_bytes(cfg, counts, work.quant)
    trainable = counts["trainable"]
    lora_trainable = counts["trainable_by_type"].get("lora", 0)
    other_trainable = trainable - lora_trainable
    grad_bytes = lora_trainable * 4.0 + other_trainable * dtype
    optim_per = F.optimizer_bytes_per_param(knobs["optim"])
    scale16 = 1.0 if "8bit" in knobs["optim"] else dtype / 4
    optimizer = lora_trainable * optim_per + other_trainable * optim_per * scale16
    act_bytes = 4 if work.quant != "none" and cfg.quant.prepare_for_kbit_training else dtype
    seq_total = work.seq
    out: dict[str, float] = {
        "base_weights": base * shard["weights"],
        "lora_weights": adapters * shard["weights"],
        "gradients": grad_bytes * shard["grads"],
        "optimizer": optimizer * shard["optimizer"],
        "activations": model.activations(work.batch, seq_total, work.ckpt, act_bytes),
    }
    token_scale = work.batch * seq_total / model.seq
    out["logits_loss"] = loss_head_bytes(model, work, dtype, device, token_scale)
    if work.stage == "rl":
        from medalign.plan.generation import rl_memory

        transient = out["activations"] + out["logits_loss"] + out["gradients"]
        out.update(rl_memory(cfg, model, work, base, transient, gpu_spec(cfg)))
    if work.stage == "dpo":
        # the reference pass (adapter disabled, or a frozen copy without LoRA): its logits
        out["reference"] = token_scale * model.logits + (0 if cfg.lora.enabled else base)
    if device == "gpu":
        # vLLM's share is its own preallocated pool: no fragmentation reserve on it
        allocated = sum(v for k, v in out.items() if k != "vllm_colocate")
        out["allocator_reserve"] = F.ALLOCATOR_RESERVE * allocated
        out["cuda_context"] = F.CUDA_CONTEXT_GIB * F.GIB
    return out


# TRL >= 1.16 SFT/GRPO/RLOO: add_fused_lm_head + trl/kernels/chunked_logprob.py project
# the LM head in tiles of TOKEN_CHUNK_SIZE tokens x 32768 vocabulary entries and never
# keep the [tokens, vocab] logits. Its Triton kernel holds the tile (compute dtype) and,
# at backward, the recomputed tile turned into its gradient in place; the torch fallback
# (CPU) holds about 8 fp32 tile-sized temporaries (tile.float(), the scaled logits,
# z - max, exp, exp*z, exp*exp, the target mask) - read from `_forward_tile`.
FUSED_TOKENS, FUSED_VOCAB = 4096, 32768
FUSED_TILES_CPU, FUSED_TILES_GPU = 8, 2


def loss_head_bytes(model: _Model, work: Workload, dtype: int, device: str, token_scale: float):
    """Peak bytes of the LM head + loss beyond the activations."""
    if model.reward:
        return 0.0
    if work.stage in ("sft", "rl"):  # TRL's fused, tiled LM head
        tokens = min(work.batch * work.seq, FUSED_TOKENS)
        tile = tokens * min(model.vocab, FUSED_VOCAB)
        return tile * 4 * FUSED_TILES_CPU if device == "cpu" else tile * dtype * FUSED_TILES_GPU
    # the model's own loss (DPO, a plain Trainer): logits held by the outputs, the
    # log-softmax autograd keeps, and at backward the fp32 gradients w.r.t. the
    # log-probabilities and the logits, alive together
    return token_scale * (model.logits + model.head_saved + 2 * model.logits_fp32)


def compute_estimate(cfg: RunConfig, model: _Model, work: Workload, gpu: F.Gpu) -> dict[str, Any]:
    """FLOPs per token, tokens per step, step time and tokens/s at plan.mfu, wall time."""
    counts = model.counts
    matmul = sum(o * i for o, i, _ in counts["quantizable_linears"])
    head = 0 if model.reward else model.vocab * model.hidden
    lora = counts["lora_matmul"]
    frozen = counts["trainable"] < 0.5 * counts["total"]
    per_token = F.train_flops_per_token(
        matmul + head + lora,
        lora if frozen else matmul + head + lora,
        model.layers,
        work.seq,
        model.heads * model.head_dim,
        frozen,
        work.ckpt,
    )
    tokens = work.batch * work.seq * work.accum
    mfu = cfg.plan.mfu
    quant_speed = F.QUANT_THROUGHPUT[work.quant]
    step_s = per_token * tokens / (gpu.bf16_tflops * 1e12 * mfu * quant_speed)
    generation: dict[str, Any] = {}
    if work.stage == "rl":  # one generation round per optimizer step (TRL's default)
        from medalign.plan.generation import generation_estimate

        base, adapters = weight_bytes(cfg, counts, work.quant)
        generation = generation_estimate(cfg, model, work, gpu, base + adapters)
        step_s += generation["generation_seconds_per_step"]
    return {
        "flops_per_token": per_token,
        "tokens_per_step_per_gpu": tokens,
        "tokens_per_step": tokens * work.world,
        "mfu": mfu,
        "quant_throughput": quant_speed,
        "step_seconds": round(step_s, 4),
        "generation_seconds_per_step": generation.get("generation_seconds_per_step", 0.0),
        "generation_tokens_per_second": generation.get("generation_tokens_per_second"),
        "generation": generation,
        "tokens_per_second": round(tokens * work.world / step_s, 1) if step_s else None,
        "steps": work.steps,
        "wall_hours": round(step_s * max(work.steps, 0) / 3600, 4),
    }


def _verdict(total: float, limit: float, notes: list[str]) -> bool | None:
    """True/False; None where it fits only by a lower bound (int8 on a GPU, measured up
    to INT8_MEASURED_RATIO times the estimate): unknown, never "fits"."""
    if total > limit:
        return False
    return None if notes and total * F.INT8_MEASURED_RATIO > limit else True


def caveats(work: Workload, device: str) -> list[str]:
    """What measurements showed this plan cannot be trusted on (formulas.py says how)."""
    if work.quant == "int8" and device == "gpu":
        return [F.INT8_TRAINING_CAVEAT]
    return []


def knobs_to_fit(cfg: RunConfig, model: _Model, work: Workload, gpu: F.Gpu, device: str) -> list:
    """Single changes that shrink the step, biggest saving first, each with its total
    and whether it alone makes the run fit."""
    limit = gpu.memory_gib * F.GIB
    now = sum(memory_components(cfg, model, work, device).values())
    tries: list[tuple[str, Workload]] = []
    if not work.ckpt:
        tries.append(("gradient checkpointing on", dataclasses.replace(work, ckpt=True)))
    if work.batch > 1:
        b = max(1, work.batch // (4 if work.stage in ("reward", "dpo") else 2))
        tries.append(
            (
                f"micro-batch {b}, gradient accumulation x{work.batch // b}",
                dataclasses.replace(work, batch=b, accum=work.accum * (work.batch // b)),
            )
        )
    # int8 is only offered where its estimate was measured to hold (the CPU); on a GPU
    # nf4 is smaller and faster (formulas.INT8_TRAINING_CAVEAT)
    for q in ("int8", "nf4") if device == "cpu" else ("nf4",):
        if work.quant != q and (work.quant, q) != ("nf4", "int8") and work.stage != "reward":
            tries.append((f"quant={q}", dataclasses.replace(work, quant=q)))
    if work.seq > 256:
        tries.append(
            (f"sequence length {work.seq // 2}", dataclasses.replace(work, seq=work.seq // 2))
        )
    for w in (2, 4, 8):
        if w > work.world:
            tries.append(
                (f"world_size {w} with zero3", dataclasses.replace(work, world=w, sharding="zero3"))
            )
    ranked = []
    for label, variant in tries:
        total = sum(memory_components(cfg, model, variant, device).values())
        ranked.append(
            {
                "knob": label,
                "total_gib": round(total / F.GIB, 2),
                "saves_gib": round((now - total) / F.GIB, 2),
                "fits": _verdict(total, limit, caveats(variant, device)),
            }
        )
    ranked.sort(key=lambda k: (k["fits"] is not True, -k["saves_gib"]))
    return ranked
