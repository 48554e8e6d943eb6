"""--cpu-generation of bench/bench_gpu_rl.py: HF generate on this CPU against the
planner's decoding formula at a copy bandwidth measured in the same run.

    python bench/bench_plan.py --cpu-generation [OUT_DIR]
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.bench_gpu_rl import COMMON, EIGHT_B, _cfg, _gen_plan, _generate

# The CPU check of the generation model: HF generate on this machine against
# batch x bandwidth / (weight bytes + KV bytes), at a bandwidth measured in the same run.
CPU_GEN = {
    "tiny": (["model=tiny"], (8, 32, 32)),
    "llama3_8b 1 layer fp32": (
        [*EIGHT_B, "model.num_layers=1", "model.dtype=float32"],
        (4, 32, 16),
    ),
}


def copy_bandwidth(mib: int = 512, repeats: int = 5) -> float:
    """Bytes/s of a large tensor copy, counted as STREAM does (read + write: 2 x size),
    best of `repeats`."""
    import torch

    src = torch.ones(mib * 1024**2 // 4)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 / best


def cpu_generation(cases: dict | None = None) -> dict:
    """Measured HF generate tokens/s per case, the formula at 100% of the measured copy
    bandwidth, and their ratio (the efficiency this CPU reaches)."""
    import torch

    from medalign.models.load import load_causal_lm, model_source
    from medalign.plan.formulas import generation_tokens_per_second

    bandwidth = copy_bandwidth()
    rows = []
    for name, (model_over, (batch, prompt, new)) in (cases or CPU_GEN).items():
        size = {"model": model_over, "gen": (batch, prompt, new)}
        gen = _gen_plan(size, "h200", cuda=False, vllm=False)
        cfg = _cfg([*COMMON, *model_over, "quant=none"])
        model = load_causal_lm(cfg.model, cfg.quant, model_source(cfg.model)).eval()
        ids = torch.randint(3, 2000, (batch, prompt))
        measured = _generate(model, ids, new, cuda=False)
        weights = gen["weight_bytes_per_step"] - _adapter_bytes(gen, cfg)
        ideal = generation_tokens_per_second(weights, gen["kv_bytes_per_step"], batch, bandwidth, 1)
        rows.append(
            {
                "case": name,
                "batch_x_prompt_x_new": f"{batch} x {prompt} x {new}",
                "weight_mb_per_step": round(weights / 1024**2, 1),
                "kv_mb_per_step": round(gen["kv_bytes_per_step"] / 1024**2, 2),
                "measured_tokens_per_s": round(measured, 1),
                "formula_tokens_per_s_at_full_bandwidth": round(ideal, 1),
                "measured_over_formula": round(measured / ideal, 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        del model
    return {
        "copy_bandwidth_gb_s": round(bandwidth / 1e9, 2),
        "threads": torch.get_num_threads(),
        "rows": rows,
    }


def _adapter_bytes(gen: dict, cfg: Any) -> float:
    """The plan counts the LoRA adapter's reads; the CPU check generates without one."""
    from medalign.plan.meta import build_meta, count_params

    counts = count_params(build_meta(cfg))
    return counts["by_type"].get("lora", 0) * 4.0


def cpu_generation_markdown(result: dict) -> str:
    lines = [
        f"HF generate on this CPU ({result['threads']} threads) vs batch x bandwidth / "
        f"(weights + KV), at the measured copy bandwidth {result['copy_bandwidth_gb_s']} GB/s",
        "",
        "| case | batch x prompt x new | weights MB/step | KV MB/step | measured tokens/s "
        "| formula at 100% | measured / formula |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['case']} | {r['batch_x_prompt_x_new']} | {r['weight_mb_per_step']} | "
            f"{r['kv_mb_per_step']} | {r['measured_tokens_per_s']} | "
            f"{r['formula_tokens_per_s_at_full_bandwidth']} | {r['measured_over_formula']} |"
        )
    return "\n".join(lines)
