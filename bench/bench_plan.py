"""The planner checked against measurements (CPU), against published tables, and on a GPU.

    PYTHONPATH=. python bench/bench_plan.py            # this module alone (prints markdown)
    python bench/bench_plan.py --gpu-rl [--dry-run]    # RL on a GPU: bench/bench_gpu_rl.py
    python bench/bench_plan.py --gpu-all [--dry-run] OUT  # RL, SFT (Liger), int8: < 8 min
    make bench                                         # with every other benchmark

CPU: each case trains a few steps of the real medalign stage (SFT, reward, GRPO) in a
fresh process. The measured figure is the peak resident memory (VmHWM, reset after the
imports with /proc/self/clear_refs) minus the resident memory at that point: everything
the stage allocates (weights, adapters, gradients, optimizer, activations, logits), the
quantity the planner predicts with device="cpu" (no CUDA context or allocator reserve).
Sequence lengths are pinned (every MedMCQA example is longer than max_length=128 with
the tiny tokenizer) so the planned and the trained shapes agree.

Published: the planner under the settings of LLaMA-Factory's 7B hardware table and
torchtune's Llama-3-8B QLoRA figure.

GPU (runs only when CUDA is present): Llama-3-8B architecture with random weights, bf16
LoRA / int8 LoRA / nf4 QLoRA: tokens/s, torch.cuda.max_memory_allocated, MFU, beside
the planner's prediction; and GRPO-style generation tokens/s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "medalign" / "conf"
MB = 1024**2

CHILD = r"""
import gc, json, sys, time
from pathlib import Path
import torch, transformers, peft, trl, datasets  # noqa: imported before the baseline
from trl import GRPOTrainer, RewardTrainer, SFTTrainer  # noqa
import medalign.stages.sft, medalign.stages.reward, medalign.stages.rl  # noqa
from hydra import compose, initialize_config_dir
from medalign.config import validate
from medalign.models.load import model_source
from medalign.run import run

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

conf, overrides, run_dir = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
with initialize_config_dir(config_dir=conf, version_base="1.3"):
    cfg = compose(config_name="config", overrides=overrides)
model_source(validate(cfg).model)  # built by the parent already: a cache hit
gc.collect()
baseline = status("VmRSS")
def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS

marks = {}
train = transformers.Trainer.train

def measured_train(self, *args, **kwargs):  # the step's peak, without the model loading
    marks["load_peak"] = max(marks.get("load_peak", 0), status("VmHWM"))
    reset_peak()
    out = train(self, *args, **kwargs)
    marks["train_peak"] = max(marks.get("train_peak", 0), status("VmHWM"))
    return out

transformers.Trainer.train = measured_train
reset_peak()
start = time.perf_counter()
run(cfg, Path(run_dir))
marks["peak"] = status("VmHWM")
print("RESULT", json.dumps({"baseline": baseline, **marks,
                            "seconds": time.perf_counter() - start}))
"""

# glibc serves tensors under its (dynamic, up to 32 MB) mmap threshold from arenas that
# keep freed memory: RSS would then count fragmentation, not live tensors. A fixed 64 kB
# threshold maps every tensor of that size and returns it to the OS when freed.
CHILD_ENV = {"WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
COMMON = ["logger=none", "eval.after_train=false", "seed=0"]
# MedMCQA examples with the tiny tokenizer: prompt+answer 130-162 tokens, prompts 81-114.
# SFT truncates every example to 128 (a pinned shape); TRL's RewardTrainer drops pairs
# longer than trainer.max_length instead, so reward batches are planned at the longest
# pair (162, an upper bound); GRPO at the longest prompt + max_completion_length.
SFT_SEQ, REWARD_SEQ, GRPO_SEQ = 128, 162, 114 + 32
SFT = ["stage=medmcqa", "trainer.max_steps=3", "trainer.max_length=128", "trainer.logging_steps=1"]
REWARD = [
    "stage=reward",
    "reward.objective=helpfulness",
    "reward.datasets=[medmcqa]",
    "trainer.max_steps=3",
]
GRPO = [
    "stage=rl",
    "rl.datasets=[medmcqa]",
    "trainer.max_steps=2",
    "rl.max_completion_length=32",
    "trainer.per_device_train_batch_size=8",
    "rl.num_generations=4",
]
# The smallest step of each stage: what the process allocates besides the step itself
# (trainer, data, tokenizer, allocator arenas) is measured - planned on these.
CALIBRATE = {
    "sft": (
        SFT[:1]
        + [
            "trainer.max_steps=2",
            "trainer.max_length=128",
            "trainer.per_device_train_batch_size=1",
        ],
        [f"plan.seq_len={SFT_SEQ}"],
    ),
    "reward": (REWARD + ["trainer.per_device_train_batch_size=1"], [f"plan.seq_len={REWARD_SEQ}"]),
    "grpo": (
        GRPO[:3]
        + [
            "rl.max_completion_length=4",
            "trainer.per_device_train_batch_size=2",
            "rl.num_generations=2",
        ],
        [f"plan.seq_len={114 + 4}"],
    ),
}
SCALES = {
    "tiny (1x)": [],
    "tiny 2x": [
        "model.tiny.hidden_size=128",
        "model.tiny.intermediate_size=384",
        "model.tiny.num_hidden_layers=4",
    ],
    "tiny 4x": [
        "model.tiny.hidden_size=256",
        "model.tiny.intermediate_size=768",
        "model.tiny.num_hidden_layers=8",
    ],
}
LLAMA_190M = [
    "model.tiny.hidden_size=1024",
    "model.tiny.intermediate_size=2816",
    "model.tiny.num_hidden_layers=16",
    "model.tiny.num_attention_heads=16",
    "model.tiny.num_key_value_heads=8",
]


def cases() -> list[tuple[str, str, list[str], list[str]]]:
    """(name, stage, run overrides, plan overrides) of every CPU case."""
    seqs = {"sft": SFT_SEQ, "reward": REWARD_SEQ, "grpo": GRPO_SEQ}
    out = []
    for name, scale in SCALES.items():
        for stage, over in (("sft", SFT), ("reward", REWARD), ("grpo", GRPO)):
            out.append((name, stage, scale + over, [f"plan.seq_len={seqs[stage]}"]))
    small_sft = ["trainer.per_device_train_batch_size=2", "trainer.max_steps=2"]
    small_rw = ["trainer.per_device_train_batch_size=2", "trainer.max_steps=2"]
    small_rl = ["trainer.per_device_train_batch_size=4", "trainer.max_steps=1"]
    for dtype in ("float32", "bfloat16"):
        big = [*LLAMA_190M, f"model.dtype={dtype}"]
        name = f"llama 190M {'fp32' if dtype == 'float32' else 'bf16'}"
        out.append((name, "sft", big + SFT + small_sft, [f"plan.seq_len={SFT_SEQ}"]))
        if dtype == "float32":
            out.append((name, "reward", big + REWARD + small_rw, [f"plan.seq_len={REWARD_SEQ}"]))
            out.append((name, "grpo", big + GRPO + small_rl, [f"plan.seq_len={GRPO_SEQ}"]))
    return out


def _plan_for(stage: str) -> list[str]:
    return ["stage=plan", f"plan.for_stage={'rl' if stage == 'grpo' else stage}"]


def predicted(run_overrides: list[str], plan_overrides: list[str], stage: str) -> dict:
    """The planner's CPU prediction for a case (trainer knobs carried over)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from medalign.config import validate
    from medalign.plan.planner import make_plan

    keep = [o for o in run_overrides if not o.startswith("stage=")]
    trainer = [o for o in keep if o.startswith("trainer.")]
    rest = keep
    knobs = {o.split("=")[0].split(".")[1]: o.split("=")[1] for o in trainer}
    plan = [*_plan_for(stage), *plan_overrides]
    if "per_device_train_batch_size" in knobs:
        plan.append(f"plan.micro_batch={knobs['per_device_train_batch_size']}")
    elif stage == "sft":
        plan.append("plan.micro_batch=8")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*COMMON, *rest, *plan])
    return make_plan(validate(cfg), device="cpu")


def measured(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(CONF), json.dumps([*COMMON, *overrides]), tmp],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, **CHILD_ENV},
        )
    if proc.returncode:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-3000:])
    result = json.loads(proc.stdout.split("RESULT", 1)[1].strip().splitlines()[0])
    # the training peak (VmHWM reset when Trainer.train starts) above the baseline; the
    # whole stage's peak (model loading included) is kept as stage_mb
    result["delta_mb"] = (result["train_peak"] - result["baseline"]) / MB
    result["stage_mb"] = (max(result["peak"], result["load_peak"]) - result["baseline"]) / MB
    return result


def overheads() -> dict[str, float]:
    """MB the process allocates around each stage's step (measured - planned, tiny)."""
    out = {}
    for stage, (run_overrides, plan_overrides) in CALIBRATE.items():
        plan = predicted(run_overrides, plan_overrides, stage)
        out[stage] = round(measured(run_overrides)["delta_mb"] - plan["total_gib"] * 1024, 1)
        print("overhead", stage, out[stage], flush=True)
    return out


def measure_cpu() -> dict:
    fixed = overheads()
    rows = []
    for name, stage, run_overrides, plan_overrides in cases():
        plan = predicted(run_overrides, plan_overrides, stage)
        got = measured(run_overrides)
        pred_mb = plan["total_gib"] * 1024
        rows.append(
            {
                "case": name,
                "stage": stage,
                "params_m": round(plan["parameters"]["total"] / 1e6, 2),
                "predicted_mb": round(pred_mb, 1),
                "overhead_mb": fixed[stage],
                "measured_mb": round(got["delta_mb"], 1),
                "stage_mb": round(got["stage_mb"], 1),
                "ratio": round(got["delta_mb"] / (pred_mb + fixed[stage]), 2),
                "step_ratio": round((got["delta_mb"] - fixed[stage]) / pred_mb, 2),
                "seconds": round(got["seconds"], 1),
                "components_mb": {k: round(v * 1024, 1) for k, v in plan["memory_gib"].items()},
            }
        )
        print(rows[-1], flush=True)
    return {"overhead_mb": fixed, "rows": rows}


SLICE = [
    "model=llama3_8b",
    "model.builder=random_init",
    "model.num_layers=1",
    "stage=medmcqa",
    "trainer.max_steps=1",
    "trainer.per_device_train_batch_size=2",
    "trainer.max_length=128",
]


def slices() -> list[dict]:
    """The real Llama-3-8B layer shapes (GQA, 14336 MLP, 128k vocabulary, bf16), one
    layer, random weights: one SFT step per quantization, planned vs measured."""
    rows = []
    for quant in ("none", "int8", "nf4"):
        over = [*SLICE, f"quant={quant}"]
        plan = predicted(over, [f"plan.seq_len={SFT_SEQ}"], "sft")
        got = measured(over)
        pred_mb = plan["total_gib"] * 1024
        rows.append(
            {
                "quant": quant,
                "params_m": round(plan["parameters"]["total"] / 1e6, 1),
                "predicted_mb": round(pred_mb, 1),
                "train_mb": round(got["delta_mb"], 1),
                "stage_mb": round(got["stage_mb"], 1),
                "ratio": round(got["delta_mb"] / pred_mb, 2),
                "seconds": round(got["seconds"], 1),
                "components_mb": {k: round(v * 1024, 1) for k, v in plan["memory_gib"].items()},
            }
        )
        print(rows[-1], flush=True)
    return rows


# Published figures and the settings their sources state (see RESULTS.md for the notes).
PUBLISHED = [
    (
        "LLaMA-Factory 7B LoRA 16-bit",
        16.0,
        "GB",
        ["model=meditron_7b", "quant=none", "quant.prepare_for_kbit_training=false"],
    ),
    (
        "LLaMA-Factory 7B QLoRA 8-bit",
        10.0,
        "GB",
        ["model=meditron_7b", "quant=int8", "quant.prepare_for_kbit_training=false"],
    ),
    (
        "LLaMA-Factory 7B QLoRA 4-bit",
        6.0,
        "GB",
        ["model=meditron_7b", "quant=nf4", "quant.prepare_for_kbit_training=false"],
    ),
    (
        "torchtune Llama-3-8B QLoRA",
        7.4,
        "GiB",
        [
            "model=llama3_8b",
            "quant=nf4",
            "quant.prepare_for_kbit_training=false",
            "lora.dropout=0.0",
            "lora.target_modules=[q_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]",
        ],
    ),
]
PUBLISHED_PLAN = {
    "LLaMA-Factory": ["plan.micro_batch=1", "plan.seq_len=1024", "lora.r=8"],
    "torchtune": ["plan.micro_batch=2", "plan.seq_len=512", "lora.r=8"],
}


def published() -> list[dict]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from medalign.config import validate
    from medalign.plan.planner import make_plan

    rows = []
    for name, value, unit, overrides in PUBLISHED:
        extra = PUBLISHED_PLAN[name.split()[0]]
        for ckpt in (True, False):
            over = [*COMMON, "stage=plan", "plan.gpu=a100_80gb", *overrides, *extra]
            GlobalHydra.instance().clear()
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                cfg = validate(compose(config_name="config", overrides=over))
            cfg.plan.gradient_checkpointing = ckpt
            plan = make_plan(cfg)
            gib = plan["total_gib"]
            pub_gib = value * (1e9 / 1024**3 if unit == "GB" else 1.0)
            rows.append(
                {
                    "source": name,
                    "published": f"{value} {unit}",
                    "checkpointing": ckpt,
                    "planned_gib": round(gib, 2),
                    "planned_without_context_gib": round(
                        gib
                        - plan["memory_gib"]["cuda_context"]
                        - plan["memory_gib"]["allocator_reserve"],
                        2,
                    ),
                    "ratio": round(gib / pub_gib, 2),
                    "components_gib": plan["memory_gib"],
                }
            )
    return rows


# (quant, micro-batch at 1024 tokens, gradient checkpointing)
GPU_RUNS = tuple((q, 4, ckpt) for ckpt in (True, False) for q in ("none", "int8", "nf4"))


def gpu_section(out: Path | None = None) -> dict:
    """The real 8B configuration on a CUDA GPU; skipped with the reason otherwise.

    Each configuration runs on its own; one that fails is recorded with its error and the
    others still run. With `out`, the section is rewritten after every run, so a run cut
    short by a time limit still leaves what it measured.
    """
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA GPU here (torch.cuda.is_available() is False)"}
    section: dict = {"device": _gpu_name(), "plan_gpu": _plan_gpu(_gpu_name()), "runs": []}
    for quant, batch, ckpt in GPU_RUNS:
        start = time.perf_counter()
        try:
            row = _gpu_run(quant, section["plan_gpu"], batch=batch, checkpointing=ckpt)
        except Exception as exc:  # noqa: BLE001 - recorded, the next configuration still runs
            row = {"quant": quant, "checkpointing": ckpt, "error": f"{type(exc).__name__}: {exc}"}
            torch.cuda.empty_cache()
        row["wall_s"] = round(time.perf_counter() - start, 1)
        section["runs"].append(row)
        print(json.dumps(row), flush=True)
        if out is not None:
            out.write_text(json.dumps(section, indent=2) + "\n")
    return section


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def _plan_gpu(device_name: str) -> str:
    """The planner's name for the GPU in hand (its peak TFLOP/s gives the MFU)."""
    name = device_name.upper()
    if "H200" in name:
        return "h200"
    if "H100" in name:
        return "h100_pcie" if "PCIE" in name else "h100_sxm"
    if "A100" in name:
        return "a100_80gb" if "80" in name else "a100_40gb"
    for key in ("l40s", "rtx_4090", "a10g", "l4", "t4"):
        if key.replace("rtx_", "").upper() in name:
            return key
    return "h100_sxm"


def _gpu_run(
    quant: str,
    plan_gpu: str,
    batch: int = 1,
    seq: int = 1024,
    steps: int = 6,
    checkpointing: bool = True,
) -> dict:
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from peft import get_peft_model

    from medalign.config import validate
    from medalign.models.load import load_causal_lm, model_source
    from medalign.models.lora import lora_config
    from medalign.plan.planner import make_plan

    over = [*COMMON, "stage=plan", "model=llama3_8b", "model.builder=random_init", f"quant={quant}"]
    over += [f"plan.micro_batch={batch}", f"plan.seq_len={seq}", f"plan.gpu={plan_gpu}"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = validate(compose(config_name="config", overrides=over))
    cfg.plan.gradient_checkpointing = checkpointing
    plan = make_plan(cfg)
    from trl.trainer.utils import add_fused_lm_head

    load_start = time.perf_counter()
    model = load_causal_lm(cfg.model, cfg.quant, model_source(cfg.model))
    add_fused_lm_head(model)  # what TRL's SFTTrainer does: no [tokens, vocab] logits
    if checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model = get_peft_model(model, lora_config(cfg.lora))
    if quant == "none":  # quantized models are loaded onto the GPU by bitsandbytes
        model = model.cuda()
    model.train()  # from_pretrained returns eval mode, where checkpointing is skipped
    load_s = time.perf_counter() - load_start
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, 2000, (batch, seq), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids, fused_lm_head=True).loss
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    step = sorted(times[1:])[len(times[1:]) // 2]
    tokens_s = batch * seq / step
    flops = plan["compute"]["flops_per_token"] * tokens_s
    peak = plan["gpu"]["bf16_tflops"] * 1e12
    train_peak = torch.cuda.max_memory_allocated()
    gen_prompt = torch.randint(0, 2000, (4, 128), device="cuda")
    torch.cuda.synchronize()
    t = time.perf_counter()
    model.eval()
    with torch.no_grad():
        model.generate(input_ids=gen_prompt, max_new_tokens=128, min_new_tokens=128, do_sample=True)
    torch.cuda.synchronize()
    gen_tokens_s = 4 * 128 / (time.perf_counter() - t)
    planned = (
        plan["total_gib"]
        - plan["memory_gib"]["cuda_context"]
        - plan["memory_gib"]["allocator_reserve"]
    )
    result = {
        "quant": quant,
        "checkpointing": checkpointing,
        "attn_implementation": model.config._attn_implementation,
        "micro_batch": batch,
        "seq_len": seq,
        "load_s": round(load_s, 1),
        "step_s": round(step, 3),
        "tokens_per_s": round(tokens_s, 1),
        "max_memory_allocated_gib": round(train_peak / 1024**3, 2),
        "planned_allocated_gib": round(planned, 2),
        "measured_over_planned": round(train_peak / 1024**3 / planned, 2),
        "mfu": round(flops / peak, 3),
        "planned_tokens_per_s": plan["compute"]["tokens_per_second"],
        "planned_mfu": cfg.plan.mfu,
        "generation_tokens_per_s": round(gen_tokens_s, 1),
    }
    del model, optim
    torch.cuda.empty_cache()
    return result


def measure() -> dict:
    return {
        "published": published(),
        "cpu": measure_cpu(),
        "slices": slices(),
        "gpu": _gpu_or_recorded(),
    }


def _gpu_or_recorded() -> dict:
    section = gpu_section(GPU_RECORD)
    return section if "runs" in section else recorded_gpu()


def markdown(result: dict) -> str:
    cpu = result["cpu"]
    fixed = ", ".join(f"{k} {v} MB" for k, v in cpu["overhead_mb"].items())
    lines = [
        "Planner vs measured on this CPU (peak RSS above the post-import baseline, MB). "
        f"Process overhead per stage, measured once on its smallest step: {fixed}.",
        "",
        "| case | stage | params (M) | planned step | + overhead | measured | "
        "measured / (planned + overhead) | (measured - overhead) / planned | s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in cpu["rows"]:
        lines.append(
            f"| {r['case']} | {r['stage']} | {r['params_m']} | {r['predicted_mb']} | "
            f"{round(r['predicted_mb'] + r['overhead_mb'], 1)} | {r['measured_mb']} | "
            f"{r['ratio']} | {r['step_ratio']} | {r['seconds']} |"
        )
    lines += [
        "",
        "Llama-3-8B architecture, 1 layer, random weights, bf16, one SFT step (batch 2 x 128)",
        "",
        "| quant | params (M) | planned MB | measured step MB | measured stage MB (with "
        "loading) | step / planned | s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result.get("slices", []):
        lines.append(
            f"| {r['quant']} | {r['params_m']} | {r['predicted_mb']} | {r['train_mb']} | "
            f"{r['stage_mb']} | {r['ratio']} | {r['seconds']} |"
        )
    lines += [
        "",
        "Planner vs published (planned GiB incl. 0.6 GiB CUDA context + 10% allocator reserve)",
        "",
        "| source | published | checkpointing | planned GiB | planned w/o context+reserve "
        "| planned/published |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in result["published"]:
        lines.append(
            f"| {r['source']} | {r['published']} | {'on' if r['checkpointing'] else 'off'} | "
            f"{r['planned_gib']} | {r['planned_without_context_gib']} | {r['ratio']} |"
        )
    return "\n".join(lines)


GPU_RECORD = REPO / "bench" / "gpu_results.json"


def recorded_gpu() -> dict:
    """The last GPU section measured (on a lent GPU machine), for a bench run without one."""
    if GPU_RECORD.is_file():
        return json.loads(GPU_RECORD.read_text())
    return {"skipped": "no CUDA GPU here and no recorded GPU run"}


def gpu_markdown(gpu: dict) -> str:
    """The GPU section as a table: measured beside planned, per quantization."""
    if "runs" not in gpu:
        return "GPU: " + gpu.get("skipped", "not measured")
    lines = [
        f"GPU: {gpu['device']} (planner's `plan.gpu={gpu['plan_gpu']}`). Llama-3-8B "
        "architecture, random weights, LoRA r=8 on all linears, TRL's fused LM head, "
        "bf16 autocast, AdamW; median of steps 2-6.",
        "",
        "| quant | checkpointing | micro-batch x tokens | tokens/s | MFU | planned tokens/s "
        "(MFU 0.4) | peak allocated GiB | planned GiB | measured / planned "
        "| generation tokens/s (4 x 128) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in gpu["runs"]:
        if "error" in r:
            lines.append(f"| {r['quant']} | | | error: {r['error'][:120]} | | | | | | |")
            continue
        lines.append(
            f"| {r['quant']} | {'on' if r['checkpointing'] else 'off'} | "
            f"{r['micro_batch']} x {r['seq_len']} | {r['tokens_per_s']:.0f} | {r['mfu']} | "
            f"{r['planned_tokens_per_s']:.0f} | {r['max_memory_allocated_gib']} | "
            f"{r['planned_allocated_gib']} | {r['measured_over_planned']} | "
            f"{r['generation_tokens_per_s']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if {"--gpu-all", "--gpu-rl", "--gpu-sft", "--int8-snapshot", "--cpu-generation"} & set(
        sys.argv
    ):
        from bench.bench_gpu_rl import main  # RL pieces, int8 memory history, CPU generation

        sys.exit(main(sys.argv[1:]))
    if "--gpu" in sys.argv:  # the GPU section alone, e.g. on a lent GPU machine
        out = Path(sys.argv[sys.argv.index("--gpu") + 1])
        print(json.dumps(gpu_section(out), indent=2))
        sys.exit(0)
    result = measure()
    (REPO / "bench" / "plan_results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(gpu_markdown(result["gpu"]))
