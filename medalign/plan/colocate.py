"""The start-up refusal of a colocated vLLM plan that does not fit (medalign/checks.py
calls it for stage=rl rl.use_vllm=true rl.vllm_mode=colocate, before any model loads).

    from medalign.plan.colocate import check_colocate
"""

from __future__ import annotations

import dataclasses
from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError
from medalign.plan.generation import VLLM_OVERHEAD_GIB, colocate_summary


def check_colocate(cfg: RunConfig) -> dict[str, Any] | None:
    """stage=rl rl.use_vllm=true rl.vllm_mode=colocate: refuse, before any model loads, a
    plan that does not fit plan.gpu (training + vLLM's share > its memory) or whose share
    cannot hold vLLM's weights. Returns the plan's colocate summary (None: not colocated,
    or a model without architecture numbers, which cannot be planned)."""
    from medalign.registry import get

    rl = cfg.rl
    generates = get("stage", cfg.stage.kind).generates  # its StageSpec: stage=rl
    if not (generates and rl.use_vllm and rl.vllm_mode == "colocate"):
        return None
    from medalign.models.random_init import REQUIRED
    from medalign.plan.planner import gpu_spec, make_plan

    if any(getattr(cfg.model.architecture, k) is None for k in REQUIRED):
        return None  # a model given by path only: nothing to plan from
    share_key = f"rl.vllm_gpu_memory_utilization={rl.vllm_gpu_memory_utilization}"
    gpu = gpu_spec(cfg)
    plan = make_plan(dataclasses.replace(cfg, plan=dataclasses.replace(cfg.plan, for_stage="rl")))
    c = colocate_summary(cfg, plan)
    where = f"plan.gpu={cfg.plan.gpu} ({gpu.memory_gib:g} GiB)"
    need = c["vllm_weights_gib"] + VLLM_OVERHEAD_GIB
    if c["vllm_share_gib"] < need:
        raise MedalignError(
            f"config {share_key} on {where}: vLLM's share, {c['vllm_share_gib']:.1f} GiB, cannot "
            f"hold its 16-bit copy of {cfg.model.name} ({c['vllm_weights_gib']:.1f} GiB) and "
            f"its overhead ({VLLM_OVERHEAD_GIB:g} GiB): raise it to at least "
            f"{need / gpu.memory_gib + 0.02:.2f}, or use rl.vllm_mode=server (other GPUs)"
        )
    if plan["fits"] is False:
        knobs = "; ".join(k["knob"] for k in plan["knobs"] if k["fits"])
        shrink = "shrink the step" + (f" ({knobs})" if knobs else "")
        if c["training_gib"] > c["gpu_gib"]:
            fix = f"training alone does not fit: {shrink}"
        else:
            sleep = "" if rl.vllm_enable_sleep_mode else ", set rl.vllm_enable_sleep_mode=true"
            fix = (
                f"lower rl.vllm_gpu_memory_utilization (vLLM needs at least {need:.1f} GiB)"
                f"{sleep}, use rl.vllm_mode=server on other GPUs, or {shrink}"
            )
        raise MedalignError(
            f"rl.use_vllm=true rl.vllm_mode=colocate does not fit {where}: training needs "
            f"{c['training_gib']:.1f} GiB and vLLM's share ({share_key}) "
            f"{c['vllm_share_gib']:.1f} GiB, {c['total_gib']:.1f} GiB in all; {fix}. "
            "The plan: python -m medalign stage=plan plan.for_stage=rl (same overrides)"
            + _default_gpu_hint(cfg)
        )
    return c


def _default_gpu_hint(cfg: RunConfig) -> str:
    from medalign.compose import defaults

    if cfg.plan.gpu != defaults().plan.gpu:
        return ""
    return f". plan.gpu={cfg.plan.gpu} is the default: set plan.gpu to the card this runs on"
