"""stage=plan: print and save the plan of a run before training it.

    python -m medalign stage=plan model=llama3_8b quant=nf4 plan.gpu=a100_40gb
    python -m medalign stage=plan model=llama3_8b plan.for_stage=rl plan.gpu=h100_sxm

Writes `plan.json` into the run directory and prints a table: parameters by module
type, memory per GPU by component, compute and time, the verdict and, when it does not
fit, the knobs that would make it fit. No GPU, no download (medalign/plan/).
"""

from __future__ import annotations

import logging
from typing import Any

from medalign.config import KindOnlyStageConfig, RunConfig
from medalign.outputs import write_json_atomic
from medalign.stages.spec import StageInputs, StageSpec, register_stage

log = logging.getLogger(__name__)


def run_plan(cfg: RunConfig, inputs: StageInputs) -> dict[str, Any]:
    out, tracker = inputs.record, inputs.tracker
    from medalign.plan.planner import make_plan

    plan = make_plan(cfg)
    write_json_atomic(out.path / "plan.json", plan)
    print(table(plan))
    print(f"\nplan.json: {out.path / 'plan.json'}")
    metrics = {
        "plan/total_gib": plan["total_gib"],
        "plan/fits": plan["fits"],
        "plan/step_seconds": plan["compute"]["step_seconds"],
        "plan/tokens_per_second": plan["compute"]["tokens_per_second"],
        "plan/generation_tokens_per_second": plan["compute"]["generation_tokens_per_second"],
        "plan/params_trainable": plan["parameters"]["trainable"],
    }
    tracker.summary(metrics)
    return metrics


def _n(x: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return str(int(x))


def table(plan: dict[str, Any]) -> str:
    """The plan as readable text."""
    w, p, c = plan["workload"], plan["parameters"], plan["compute"]
    lines = [
        f"Plan: {plan['model']} ({plan['num_layers']} layers), {w['stage']} step, "
        f"quant={w['quant']}, micro-batch {w['batch']} x {w['seq']} tokens, accumulation "
        f"{w['accum']}, checkpointing {'on' if w['ckpt'] else 'off'}, "
        f"{w['world']} x {plan['gpu']['name']} ({w['sharding']})",
        "",
        f"Parameters: {_n(p['total'])} total, {_n(p['trainable'])} trainable",
    ]
    for kind, count in p["by_type"].items():
        lines.append(f"  {kind:<12} {_n(count):>10}")
    lines += ["", "Memory per GPU (GiB)"]
    for name, gib in plan["memory_gib"].items():
        lines.append(f"  {name:<18} {gib:>9.2f}")
    limit = plan["gpu"]["memory_gib"]
    verdict = {True: "fits", False: "does NOT fit"}.get(
        plan["fits"], "may NOT fit (the int8 estimate is a lower bound: see the caveat)"
    )
    if plan.get("tight"):
        verdict += " (within 5% of the card: inside the plan's own error; leave room)"
    lines += [
        f"  {'total':<18} {plan['total_gib']:>9.2f}  of {limit:.1f}: {verdict}",
        "",
        f"Compute: {c['flops_per_token'] / 1e9:.1f} GFLOP/token, {c['tokens_per_step']} "
        f"tokens/step, {c['step_seconds']:.3f} s/step at MFU {c['mfu']} "
        f"({c['tokens_per_second']} tokens/s), {c['steps']} steps: {c['wall_hours']:.3f} h",
    ]
    if c["generation_seconds_per_step"]:
        g = c["generation"]
        lines.append(
            f"  of which generation: {c['generation_seconds_per_step']:.3f} s/step, "
            f"{g['generation_tokens_per_second']} tokens/s ({g['backend']}, "
            f"{g['concurrent_sequences']} sequences x {g['new_tokens']} new tokens, memory-bound "
            f"at {g['bandwidth_efficiency']} of {plan['gpu']['bandwidth_tbs']} TB/s; assumed, "
            "not measured on a GPU)"
        )
    if "colocate" in plan:
        v = plan["colocate"]
        lines.append(
            f"  vLLM colocated: {v['vllm_share_gib']:.1f} GiB share "
            f"(rl.vllm_gpu_memory_utilization={v['vllm_gpu_memory_utilization']}), "
            f"sleep mode {'on' if v['sleep_mode'] else 'off'}; training {v['training_gib']:.1f} GiB"
        )
    for caveat in plan.get("caveats", []):
        lines += ["", f"Caveat: {caveat}"]
    if plan["knobs"]:
        lines += ["", "To make it fit (one change each, biggest saving first):"]
        for k in plan["knobs"]:
            mark = {True: "fits", False: "not enough alone"}.get(k["fits"], "int8: unknown")
            lines.append(f"  {k['knob']:<45} {k['total_gib']:>8.2f} GiB  ({mark})")
    return "\n".join(lines)


SPEC = register_stage(
    StageSpec(kind="plan", schema=KindOnlyStageConfig, run=run_plan, plans_only=True)
)
