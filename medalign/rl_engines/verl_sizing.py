"""How big the verl job is: its layout from the plan, its batches from the run's config.

    from medalign.rl_engines.verl_sizing import verl_sizes
    sizes = verl_sizes(cfg)      # cfg: a validated RunConfig with rl.engine=verl

- nodes x GPUs per node: `plan.world_size` GPUs on nodes of GPUS_PER_NODE (8, an HGX
  node), e.g. world_size 16 -> 2 x 8, world_size 4 -> 1 x 4;
- prompts per step (data.train_batch_size, also the PPO mini-batch: one update per
  rollout, as TRL does): the completions of one TRL step (trainer.per_device_train_batch_size
  x plan.world_size x trainer.gradient_accumulation_steps) over rl.num_generations;
- response length rl.max_completion_length, prompt length trainer.max_length, steps
  trainer.max_steps;
- the micro-batch per GPU and vLLM's gpu_memory_utilization / tensor parallel size from
  the planner (medalign/plan/planner.py) run for this model on plan.gpu, FSDP-sharded over
  the job's GPUs, gradient checkpointing on (as verl runs it).

Nothing is invented: where a value is toy-sized for a real model (the tiny defaults), the
note says so and run.sh carries it as a comment.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from medalign.errors import MedalignError

GPUS_PER_NODE = 8  # GPUs of one node (HGX); the layout puts world_size on such nodes
# Below these a run is a smoke test, not training (the tiny defaults are 64 / 20 / 2).
TOY_RESPONSE_TOKENS, TOY_STEPS, TOY_PROMPTS = 256, 100, 16
# vLLM's share of a GPU (verl's own default is 0.5): at most this, so that the FSDP
# actor's allocator and NCCL buffers keep room beside it.
MAX_ROLLOUT_MEMORY = 0.8
MIN_ROLLOUT_MEMORY = 0.1


@dataclasses.dataclass
class VerlSizes:
    """The numbers run.sh and slurm.sh are written with, and where each came from."""

    nnodes: int
    gpus_per_node: int
    prompts: int  # data.train_batch_size = ppo_mini_batch_size
    n: int  # rollout.n (1 for PPO)
    micro: int  # *_micro_batch_size_per_gpu
    prompt_length: int
    response_length: int
    steps: int
    gpu_memory_utilization: float
    tensor_parallel: int
    gpu: str
    planned_gib: float  # the planner's training peak per GPU at `micro`
    notes: list[str] = dataclasses.field(default_factory=list)  # provenance, toy warnings


def layout(world_size: int, per_node: int = GPUS_PER_NODE) -> tuple[int, int]:
    """(nodes, GPUs per node) for `world_size` GPUs on nodes of `per_node` GPUs
    (plan.gpus_per_node)."""
    if world_size < 1 or per_node < 1:
        raise MedalignError(
            f"plan.world_size={world_size}, plan.gpus_per_node={per_node}: the verl job needs "
            "at least 1 GPU on nodes of at least 1"
        )
    if world_size <= per_node:
        return 1, world_size
    if world_size % per_node:
        raise MedalignError(
            f"plan.world_size={world_size}: verl puts the same number of GPUs on every "
            f"node; on {per_node}-GPU nodes (plan.gpus_per_node) use at most {per_node} or a "
            f"multiple of {per_node} (e.g. {world_size // per_node * per_node or per_node})"
        )
    return world_size // per_node, per_node


def verl_sizes(cfg: Any) -> VerlSizes:
    """The job's layout and batch sizes for `cfg` (see the module docstring)."""
    t, rl, world = cfg.trainer, cfg.rl, cfg.plan.world_size
    nnodes, per_node = layout(world, cfg.plan.gpus_per_node)
    n = 1 if rl.algorithm == "ppo" else rl.num_generations
    completions = t.per_device_train_batch_size * world * t.gradient_accumulation_steps
    if n < 1 or completions % n:
        raise MedalignError(
            f"rl.num_generations={n}: the completions of one step (trainer."
            f"per_device_train_batch_size {t.per_device_train_batch_size} x plan.world_size "
            f"{world} x trainer.gradient_accumulation_steps {t.gradient_accumulation_steps} = "
            f"{completions}) must be a multiple of it, as TRL requires"
        )
    prompts = completions // n
    seq = t.max_length + rl.max_completion_length
    fit_notes: list[str] = []
    micro, planned, gpu, util, tp = _fit(cfg, seq, per_node, fit_notes)
    notes = [
        f"data.train_batch_size={prompts}: trainer.per_device_train_batch_size "
        f"{t.per_device_train_batch_size} x plan.world_size {world} x "
        f"trainer.gradient_accumulation_steps {t.gradient_accumulation_steps} / rollout.n {n}",
        f"micro-batch {micro} per GPU: the planner's training peak {planned:.1f} GiB of "
        f"{gpu.memory_gib:.1f} on {gpu.name} (FSDP over {world}, sequences of {seq} tokens)",
        f"rollout.gpu_memory_utilization={util}, tensor_model_parallel_size={tp}: what the "
        "planner leaves beside the actor's weights and optimizer",
    ]
    toy = [
        (rl.max_completion_length, TOY_RESPONSE_TOKENS, "data.max_response_length",
         "rl.max_completion_length"),
        (t.max_steps, TOY_STEPS, "trainer.total_training_steps", "trainer.max_steps"),
        (prompts, TOY_PROMPTS, "data.train_batch_size",
         "trainer.per_device_train_batch_size x plan.world_size"),
    ]  # fmt: skip
    for value, floor, key, source in toy:
        if value < floor:
            notes.append(
                f"{key}={value} (from {source}) is toy-sized for a real model (under "
                f"{floor}): regenerate the job with a larger {source.split(' x ')[0]}"
            )
    notes += fit_notes
    if planned > gpu.memory_gib:
        notes.append(
            f"the planner finds no micro-batch that fits: {planned:.1f} GiB per GPU at 1 on "
            f"{gpu.memory_gib:.1f}; raise plan.world_size or turn on verl's param_offload"
        )
    return VerlSizes(
        nnodes, per_node, prompts, n, micro, t.max_length, rl.max_completion_length,
        t.max_steps, util, tp, cfg.plan.gpu, round(planned, 2), notes,
    )  # fmt: skip


def _fit(cfg: Any, seq: int, per_node: int, notes: list[str]) -> tuple[int, float, Any, float, int]:
    """(micro-batch, its planned GiB, the GPU, vLLM memory share, tensor parallel size):
    the largest divisor of the per-device batch whose training step fits plan.gpu."""
    from medalign.plan import formulas as F
    from medalign.plan import planner

    plan = dataclasses.replace(
        cfg.plan,
        for_stage="rl",
        sharding="fsdp",
        gradient_checkpointing=True,
        seq_len=cfg.plan.seq_len or seq,
    )
    # verl rolls out in vLLM with its own share of memory: not TRL's colocated vLLM
    planned = dataclasses.replace(cfg, plan=plan, rl=dataclasses.replace(cfg.rl, use_vllm=False))
    gpu = planner.gpu_spec(planned)
    work = planner.workload(planned)
    model = planner._Model(planned, False, work.seq)
    limit = gpu.memory_gib * F.GIB
    top = cfg.plan.micro_batch or cfg.trainer.per_device_train_batch_size
    divisors = [b for b in range(top, 0, -1) if cfg.trainer.per_device_train_batch_size % b == 0]
    for micro in divisors or [1]:
        variant = dataclasses.replace(work, batch=micro, gen_sequences=0)
        memory = planner.memory_components(planned, model, variant, "gpu")
        memory.pop("kv_cache", None)  # TRL's generation cache: vLLM holds verl's
        if sum(memory.values()) <= limit:
            break
    # resident while vLLM generates: the sharded actor (weights, optimizer), the reference
    # and reward models, the CUDA context; activations and gradients are freed by then
    resident = sum(
        memory.get(k, 0.0)
        for k in ("base_weights", "lora_weights", "optimizer", "reference", "reward_models")
    ) + memory.get("cuda_context", 0.0)
    free = (limit - resident) / limit
    util = max(MIN_ROLLOUT_MEMORY, min(MAX_ROLLOUT_MEMORY, int(free * 20) / 20))
    weights = (model.counts["total"] - model.counts["by_type"].get("lora", 0)) * (
        F.DTYPE_BYTES[cfg.model.dtype]
    )
    tp = 1  # vLLM's weights on 1, 2, 4.. GPUs: at most half its share, the rest KV cache
    while weights / tp > util * limit / 2 and tp * 2 <= per_node and per_node % (tp * 2) == 0:
        tp *= 2
    if weights / tp > util * limit:
        notes.append(
            f"vLLM's copy of the weights ({weights / F.GIB:.1f} GiB / tensor parallel {tp}) "
            f"exceeds its share ({util} of {gpu.memory_gib:.1f} GiB): raise plan.world_size "
            "or offload the actor (actor_rollout_ref.actor.fsdp_config.param_offload=True)"
        )
    return micro, sum(memory.values()) / F.GIB, gpu, util, tp
