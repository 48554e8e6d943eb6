"""--int8-snapshot of bench/bench_gpu_rl.py: one int8 LoRA step under
torch.cuda.memory._record_memory_history, and the live allocations at its peak by frame.

    python bench/bench_plan.py --int8-snapshot [OUT_DIR] [--dry-run]
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from bench.bench_gpu_rl import (
    COMMON,
    GIB,
    SIZES,
    _cfg,
    _peak_gib,
    _plan,
    _planned_allocated,
    _reset,
    _sync,
)


def peak_allocations(snapshot: dict, top: int = 25, device: int = 0) -> dict:
    """The live allocations at the allocated peak of a `_record_memory_history` snapshot
    (replaying its device trace: alloc adds, free_completed removes), summed by the
    innermost frame outside torch's own files: where the peak memory was allocated."""
    trace = snapshot["device_traces"][device]
    live: dict[int, int] = {}
    total = peak = peak_at = 0
    for i, event in enumerate(trace):
        if event["action"] == "alloc":
            live[event["addr"]] = event["size"]
            total += event["size"]
        elif event["action"] == "free_completed" and event["addr"] in live:
            total -= live.pop(event["addr"])
        if total > peak:
            peak, peak_at = total, i
    alive: dict[int, dict] = {}
    for event in trace[: peak_at + 1]:
        if event["action"] == "alloc":
            alive[event["addr"]] = event
        elif event["action"] == "free_completed":
            alive.pop(event["addr"], None)
    by_frame: dict[str, list[int]] = {}
    for event in alive.values():
        key = _frame(event.get("frames", []))
        entry = by_frame.setdefault(key, [0, 0])
        entry[0] += event["size"]
        entry[1] += 1
    ranked = sorted(by_frame.items(), key=lambda kv: -kv[1][0])[:top]
    return {
        "peak_gib": round(peak / GIB, 3),
        "events": len(trace),
        "by_frame": [
            {"frame": k, "gib": round(v[0] / GIB, 3), "allocations": v[1]} for k, v in ranked
        ],
    }


def _frame(frames: list[dict]) -> str:
    for f in frames:
        name = f.get("filename", "")
        if name and "/torch/" not in name and not name.startswith("??"):
            return f"{name.split('site-packages/')[-1]}:{f.get('line')} {f.get('name')}"
    return "(torch internals or no Python frame)"


def int8_snapshot(out_dir: Path, dry_run: bool = False) -> dict:
    """One int8 LoRA step (8B, checkpointing) under the CUDA memory history recorder."""
    import torch

    from bench.bench_plan import _gpu_name, _plan_gpu

    cuda = torch.cuda.is_available() and not dry_run
    if not cuda and not dry_run:
        return {"skipped": "no CUDA GPU here; --dry-run runs the step on the CPU"}
    size = SIZES["gpu" if cuda else "dry"]
    batch, seq = size["int8"]
    plan_gpu = _plan_gpu(_gpu_name()) if cuda else "h200"
    out_dir.mkdir(parents=True, exist_ok=True)
    over = [*size["model"], "quant=int8", f"plan.micro_batch={batch}", f"plan.seq_len={seq}"]
    plan = _plan([*over, f"plan.gpu={plan_gpu}", "plan.gradient_checkpointing=true"], "gpu")
    model, optim, ids = _int8_model(size, batch, seq, cuda)
    _step(model, optim, ids, cuda)  # warm-up: the optimizer states exist before recording
    _reset(cuda)
    if cuda:
        torch.cuda.memory._record_memory_history(max_entries=1_000_000)
    _step(model, optim, ids, cuda)
    result = {"device": _gpu_name() if cuda else "cpu (dry run)", "shape": f"{batch} x {seq}"}
    result["planned_allocated_gib"] = _planned_allocated(plan)
    result["max_memory_allocated_gib"] = _peak_gib(cuda)
    if cuda:
        path = out_dir / "int8_snapshot.pickle"
        torch.cuda.memory._dump_snapshot(str(path))
        torch.cuda.memory._record_memory_history(enabled=None)
        with open(path, "rb") as f:
            result["peak"] = peak_allocations(pickle.load(f))
        result["snapshot"] = str(path)
    else:
        result["peak"] = "not recorded: the memory history is CUDA only"
    (out_dir / "int8_snapshot.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _int8_model(size: dict, batch: int, seq: int, cuda: bool) -> tuple:
    import torch
    from peft import get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    from medalign.models.load import load_causal_lm, model_source
    from medalign.models.lora import lora_config

    cfg = _cfg([*COMMON, *size["model"], "quant=int8"])
    model = load_causal_lm(cfg.model, cfg.quant, model_source(cfg.model))
    add_fused_lm_head(model)
    model.gradient_checkpointing_enable()
    model.enable_input_require_grads()
    model = get_peft_model(model, lora_config(cfg.lora))
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(3, 2000, (batch, seq), device="cuda" if cuda else "cpu")
    return model, optim, ids


def _step(model: Any, optim: Any, ids: Any, cuda: bool) -> None:
    import torch

    dtype = torch.bfloat16 if cuda else torch.float32
    with torch.autocast("cuda" if cuda else "cpu", dtype=dtype, enabled=cuda):
        loss = model(input_ids=ids, labels=ids, fused_lm_head=True).loss
    loss.backward()
    optim.step()
    optim.zero_grad(set_to_none=True)
    _sync(cuda)
