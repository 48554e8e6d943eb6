"""The RL curriculum's GPU pieces beside the planner (issue 25), and the generation model
on this CPU.

    timeout 480 python bench/bench_plan.py --gpu-all bench/gpu_rl   # all below, < 10 min
    python bench/bench_plan.py --gpu-all --dry-run /tmp/gpu_all      # CPU, tiny model
    python bench/bench_plan.py --gpu-rl [OUT_DIR]            # H200: about 3 min (planned)
    python bench/bench_plan.py --gpu-rl --dry-run [OUT_DIR]  # CPU, tiny model: same path
    python bench/bench_plan.py --gpu-sft [OUT_DIR]           # plain TRL vs padding-free, Liger
    python bench/bench_plan.py --int8-snapshot [OUT_DIR]     # one int8 LoRA step's memory history
    python bench/bench_plan.py --cpu-generation [OUT_DIR]    # HF generate vs the formula, CPU

--gpu-rl, on the Llama-3-8B architecture with random weights: (1) a reward model
(AutoModelForSequenceClassification, 1 label, nf4, LoRA; Bradley-Terry loss on chosen /
rejected pairs, AdamW) - training tokens/s and torch.cuda.max_memory_allocated; (2)
GRPO-style generation, HF generate batched with the LoRA adapter unmerged, then merged
(bf16), then vLLM if it imports (a child process, its own memory) - generation tokens/s.
Each row carries the planner's prediction beside the measurement; results.json and
RESULTS.md are rewritten after every row, so a cut-short run keeps what it measured.

--int8-snapshot: torch.cuda.memory._record_memory_history around one int8 LoRA step
(8B, 4 x 1024 tokens, checkpointing on: the 4.45x case of formulas.INT8_MEASURED_RATIO);
writes the pickle and the live allocations at the peak grouped by stack frame.

--gpu-sft: bench/bench_gpu_sft.py. --gpu-all: --gpu-rl, --gpu-sft, --int8-snapshot, each
in its own process within its limit (GPU_ALL), rows kept as they come; generation rows
also give the fraction of the memory-bandwidth limit (weights + KV read once per step).

--dry-run: the tiny model on the CPU through the same functions (no CUDA numbers; vLLM
only if importable), so the script is known to run before GPU time is spent on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "medalign" / "conf"
GIB = 1024**3
COMMON = ["logger=none", "eval.after_train=false", "seed=0"]
EIGHT_B = ["model=llama3_8b", "model.builder=random_init"]
# (model overrides, reward pairs x tokens x steps, generation batch x prompt x new tokens)
SIZES = {
    "gpu": {"model": EIGHT_B, "reward": (4, 512, 5), "gen": (16, 128, 128), "int8": (4, 1024)},
    "dry": {"model": ["model=tiny"], "reward": (2, 32, 2), "gen": (4, 16, 8), "int8": (2, 32)},
}


def _cfg(overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from medalign.compose import complete_catalogue, register_resolvers
    from medalign.config import validate

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return validate(complete_catalogue(compose(config_name="config", overrides=overrides)))


def _plan(overrides: list[str], device: str) -> dict:
    from medalign.plan.planner import make_plan

    return make_plan(_cfg([*COMMON, "stage=plan", *overrides]), device=device)


def _planned_allocated(plan: dict) -> float:
    mem = plan["memory_gib"]
    outside = mem.get("cuda_context", 0) + mem.get("allocator_reserve", 0)
    return round(plan["total_gib"] - outside, 2)


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def _peak_gib(cuda: bool) -> float | None:
    if not cuda:
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / GIB, 2)


def _reset(cuda: bool) -> None:
    import gc

    gc.collect()
    if cuda:
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def reward_run(size: dict, cuda: bool, plan_gpu: str) -> dict:
    """A 1-label classifier on nf4 weights with a LoRA adapter, trained on pairs."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForSequenceClassification

    from medalign.models.load import model_source
    from medalign.models.lora import lora_config
    from medalign.models.quant import bnb_config

    pairs, seq, steps = size["reward"]
    over = [*size["model"], "quant=nf4", f"plan.micro_batch={pairs}", f"plan.seq_len={seq}"]
    over += [f"plan.gpu={plan_gpu}", "plan.for_stage=reward", "plan.gradient_checkpointing=true"]
    plan = _plan(over, "gpu" if cuda else "cpu")
    cfg = _cfg([*COMMON, *size["model"], "quant=nf4"])
    device = torch.cuda.current_device() if cuda else "cpu"
    model = AutoModelForSequenceClassification.from_pretrained(
        model_source(cfg.model),
        num_labels=1,
        dtype=torch.bfloat16 if cuda else torch.float32,
        quantization_config=bnb_config(cfg.quant),
        device_map={"": device},
    )
    model.config.pad_token_id = 0
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, lora_config(cfg.lora, head="reward"))
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(3, 2000, (2 * pairs, seq), device="cuda" if cuda else "cpu")
    _reset(cuda)
    times = []
    for _ in range(steps):
        _sync(cuda)
        start = time.perf_counter()
        scores = model(input_ids=ids).logits.float().squeeze(-1)
        loss = -torch.nn.functional.logsigmoid(scores[:pairs] - scores[pairs:]).mean()
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        _sync(cuda)
        times.append(time.perf_counter() - start)
    step = sorted(times[1:])[len(times[1:]) // 2] if len(times) > 1 else times[0]
    row = {
        "row": "reward model, nf4 + LoRA, checkpointing",
        "pairs_x_tokens": f"{pairs} x {seq}",
        "step_s": round(step, 3),
        "tokens_per_s": round(2 * pairs * seq / step, 1),
        "planned_tokens_per_s": plan["compute"]["tokens_per_second"],
        "max_memory_allocated_gib": _peak_gib(cuda),
        "planned_allocated_gib": _planned_allocated(plan),
        "note": "the planner plans the reward stage unquantized (medalign's RewardTrainer "
        "loads it so); nf4 here measures what quantizing it would save",
    }
    del model, optim
    _reset(cuda)
    return row


def _gen_plan(size: dict, plan_gpu: str, cuda: bool, vllm: bool) -> dict:
    batch, prompt, new = size["gen"]
    over = [*size["model"], "quant=none", "plan.for_stage=rl", f"plan.gpu={plan_gpu}"]
    over += [f"plan.micro_batch={batch}", f"plan.seq_len={prompt + new}"]
    over += [f"rl.max_completion_length={new}", "trainer.gradient_accumulation_steps=1"]
    over += ["rl.use_vllm=true", "rl.vllm_enable_sleep_mode=true"] if vllm else []
    return _plan(over, "gpu" if cuda else "cpu")["compute"]["generation"]


def _generate(model: Any, ids: Any, new: int, cuda: bool) -> float:
    import torch

    with torch.no_grad():
        model.generate(input_ids=ids, max_new_tokens=2, min_new_tokens=2, do_sample=True)  # warm
        _sync(cuda)
        start = time.perf_counter()
        model.generate(input_ids=ids, max_new_tokens=new, min_new_tokens=new, do_sample=True)
        _sync(cuda)
    return ids.shape[0] * new / (time.perf_counter() - start)


def generation_runs(size: dict, cuda: bool, plan_gpu: str, out_dir: Path) -> list[dict]:
    """HF generate with the adapter unmerged, then merged; vLLM in a child if importable."""
    import torch
    from peft import get_peft_model

    from medalign.models.load import load_causal_lm, model_source

    batch, prompt, new = size["gen"]
    cfg = _cfg([*COMMON, *size["model"], "quant=none"])
    source = model_source(cfg.model)
    model = load_causal_lm(cfg.model, cfg.quant, source)
    from medalign.models.lora import lora_config

    model = get_peft_model(model, lora_config(cfg.lora))
    model = model.cuda() if cuda else model
    model.eval()
    ids = torch.randint(3, 2000, (batch, prompt), device="cuda" if cuda else "cpu")
    hf = _gen_plan(size, plan_gpu, cuda, vllm=False)
    rows = []
    for label in ("HF generate, LoRA unmerged", "HF generate, LoRA merged"):
        if label.endswith("LoRA merged"):
            model = model.merge_and_unload()  # peft folds B @ A into the bf16 weights
        _reset(cuda)
        tps = _generate(model, ids, new, cuda)
        rows.append(_gen_row(label, size, tps, hf, _peak_gib(cuda)))
    del model
    _reset(cuda)
    rows.append(_vllm_row(size, source, cuda, plan_gpu, out_dir))
    return rows


def _gen_row(label: str, size: dict, tps: float | None, plan: dict, peak: Any) -> dict:
    batch, prompt, new = size["gen"]
    predicted = plan["generation_tokens_per_second"]
    limit = predicted / plan["bandwidth_efficiency"]  # every step reads weights + KV once
    return {
        "row": label,
        "batch_x_prompt_x_new": f"{batch} x {prompt} x {new}",
        "generation_tokens_per_s": None if tps is None else round(tps, 1),
        "planned_generation_tokens_per_s": predicted,
        "measured_over_planned": None if tps is None else round(tps / predicted, 3),
        "bandwidth_limit_tokens_per_s": round(limit, 1),
        "fraction_of_bandwidth_limit": None if tps is None else float(f"{tps / limit:.3g}"),
        "max_memory_allocated_gib": peak,
    }


VLLM_CHILD = r"""
import json, sys, time
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt
import random
path, batch, prompt, new, share = sys.argv[1], *map(int, sys.argv[2:5]), float(sys.argv[5])
llm = LLM(model=path, dtype="bfloat16", gpu_memory_utilization=share, max_model_len=prompt + new,
          seed=0)
random.seed(0)
prompts = [TokensPrompt(prompt_token_ids=[random.randrange(3, 2000) for _ in range(prompt)])
           for _ in range(batch)]
params = SamplingParams(max_tokens=new, min_tokens=new, temperature=1.0, ignore_eos=True)
llm.generate(prompts[:1], SamplingParams(max_tokens=2))
start = time.perf_counter()
llm.generate(prompts, params)
print("RESULT", json.dumps({"tokens_per_s": batch * new / (time.perf_counter() - start)}))
"""


def _vllm_row(size: dict, source: str, cuda: bool, plan_gpu: str, out_dir: Path) -> dict:
    import importlib.util

    plan = _gen_plan(size, plan_gpu, cuda, vllm=True)
    row = _gen_row("vLLM (colocate-sized share 0.3, bf16)", size, None, plan, None)
    if importlib.util.find_spec("vllm") is None or not cuda:
        row["skipped"] = "vllm not importable" if cuda else "CPU dry run: vLLM needs CUDA"
        return row
    batch, prompt, new = size["gen"]
    env_args = [source, str(batch), str(prompt), str(new), "0.3"]
    proc = subprocess.run(
        [sys.executable, "-c", VLLM_CHILD, *env_args], capture_output=True, text=True, timeout=150
    )
    (out_dir / "vllm_child.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
    if proc.returncode or "RESULT" not in proc.stdout:
        row["error"] = (proc.stderr or proc.stdout)[-500:]
        return row
    tps = json.loads(proc.stdout.split("RESULT", 1)[1].strip().splitlines()[0])["tokens_per_s"]
    return {**row, **_gen_row(row["row"], size, tps, plan, None)}


def gpu_rl(out_dir: Path, dry_run: bool = False) -> dict:
    """Reward-model training and generation rows, written as they come."""
    import torch

    from bench.bench_plan import _gpu_name, _plan_gpu

    cuda = torch.cuda.is_available() and not dry_run
    if not cuda and not dry_run:
        return {"skipped": "no CUDA GPU here (torch.cuda.is_available() is False); --dry-run"}
    size = SIZES["gpu" if cuda else "dry"]
    plan_gpu = _plan_gpu(_gpu_name()) if cuda else "h200"
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "device": _gpu_name() if cuda else "cpu (dry run: tiny model, no CUDA figures)",
        "plan_gpu": plan_gpu,
        "model": size["model"],
        "rows": [],
    }
    steps = [lambda: [reward_run(size, cuda, plan_gpu)]]
    steps.append(lambda: generation_runs(size, cuda, plan_gpu, out_dir))
    for step in steps:
        start = time.perf_counter()
        try:
            rows = step()
        except Exception as exc:  # noqa: BLE001 - recorded; the next piece still runs
            rows = [{"row": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]}]
        for row in rows:
            row.setdefault("wall_s", round(time.perf_counter() - start, 1))
            print(json.dumps(row), flush=True)
        result["rows"] += rows
        _write(out_dir, result)
    return result


def _write(out_dir: Path, result: dict) -> None:
    (out_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "RESULTS.md").write_text(markdown(result) + "\n")


def markdown(result: dict) -> str:
    lines = [
        f"RL pieces on {result['device']} (planner: plan.gpu={result['plan_gpu']}), "
        f"model {' '.join(result['model'])}, random weights.",
        "",
        "| row | shape | measured tokens/s | planned tokens/s | measured / planned "
        "| max_memory_allocated GiB | planned GiB | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        measured = r.get("tokens_per_s", r.get("generation_tokens_per_s"))
        planned = r.get("planned_tokens_per_s", r.get("planned_generation_tokens_per_s"))
        ratio = r.get("measured_over_planned")
        if ratio is None and measured and planned:
            ratio = round(measured / planned, 3)
        note = r.get("error") or r.get("skipped") or r.get("note", "")
        shape = r.get("pairs_x_tokens") or r.get("batch_x_prompt_x_new") or ""
        lines.append(
            f"| {r['row']} | {shape} | {measured} | {planned} | {ratio} | "
            f"{r.get('max_memory_allocated_gib')} | {r.get('planned_allocated_gib', '')} | "
            f"{str(note)[:160]} |"
        )
    return "\n".join(lines)


# --gpu-all: the pieces in order of what the plan most needs, each in its own process
# with a time limit (seconds), so the whole fits in 10 minutes of device time: 465 s of
# work at most (`timeout 480` around it), a minute or two for the machine to start. A
# piece cut short keeps the rows it has written.
GPU_ALL = (("--gpu-rl", 240), ("--gpu-sft", 150), ("--int8-snapshot", 75))


def gpu_all(out: Path, dry_run: bool) -> dict:
    """--gpu-rl, --gpu-sft and --int8-snapshot into `out`, each within its limit."""
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"pieces": []}
    for flag, limit in GPU_ALL:
        limit = max(limit, 900) if dry_run else limit  # the CPU's speed is not the question
        command = [sys.executable, str(REPO / "bench" / "bench_plan.py"), flag, str(out)]
        start = time.perf_counter()
        # its own process group: a piece cut short takes its children (vLLM) with it, so
        # the next piece finds the GPU's memory free
        proc = subprocess.Popen(
            command + (["--dry-run"] if dry_run else []), cwd=REPO, start_new_session=True
        )
        try:
            code = proc.wait(timeout=limit)
            status = "ok" if code == 0 else f"exit {code}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = f"cut at its {limit} s limit"
        wall = round(time.perf_counter() - start, 1)
        result["pieces"].append({"piece": flag, "status": status, "wall_s": wall})
        (out / "gpu_all.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str]) -> int:
    """bench_plan.py's --gpu-all, --gpu-rl, --gpu-sft, --int8-snapshot and
    --cpu-generation (argv: sys.argv[1:])."""
    dry = "--dry-run" in argv
    rest = [a for a in argv if not a.startswith("--")]
    out = Path(rest[0]) if rest else REPO / "bench" / "gpu_rl"
    from bench.bench_cpu_generation import cpu_generation, cpu_generation_markdown
    from bench.bench_int8_snapshot import int8_snapshot

    if "--gpu-all" in argv:
        result = gpu_all(out, dry_run=dry)
    elif "--gpu-rl" in argv:
        result = gpu_rl(out, dry_run=dry)
    elif "--gpu-sft" in argv:
        from bench.bench_gpu_sft import gpu_sft

        result = gpu_sft(out, dry_run=dry)
    elif "--int8-snapshot" in argv:
        result = int8_snapshot(out, dry_run=dry)
    elif "--cpu-generation" in argv:
        result = cpu_generation()
        out.mkdir(parents=True, exist_ok=True)
        (out / "cpu_generation.json").write_text(json.dumps(result, indent=2) + "\n")
        print(cpu_generation_markdown(result))
        return 0
    else:
        return 2
    print(json.dumps(result, indent=2))
    return 0 if "skipped" not in result else 1
