"""SFT on one GPU: a plain TRL SFTTrainer against padding-free and Liger kernels (issue 35).

    python bench/bench_plan.py --gpu-sft [OUT_DIR]            # the 8B architecture, CUDA
    python bench/bench_plan.py --gpu-sft --dry-run [OUT_DIR]  # CPU, tiny model: same path

Same random-weight model (Llama-3-8B architecture; `tiny` in the dry run), the same
sequences (random tokens of mixed lengths, so padding is real), LoRA r=8 on all linears,
bf16 and gradient checkpointing on the GPU: (1) plain (padded batches), (2) padding-free
(TRL's `padding_free=True`), (3) Liger (`use_liger_kernel=True`), (4) both. Each variant
runs in its own process (Liger patches transformers' Llama classes for the process).
Rows: tokens/s (non-padding tokens over the median step after the first), max memory
allocated, and the first step's loss: a variant whose loss differs from plain's is not
loss-preserving and cannot be the default. Liger needs CUDA and liger-kernel: skipped
with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {  # name: (padding_free, liger)
    "plain TRL (padded)": (False, False),
    "padding-free": (True, False),
    "Liger": (False, True),
    "Liger + padding-free": (True, True),
}
SIZES = {"gpu": (4, 1024, 5), "dry": (2, 32, 3)}  # batch, longest sequence, steps

CHILD = r"""
import json, random, statistics, sys, time
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer
model_dir, padding_free, liger, batch, longest, steps, cuda = json.loads(sys.argv[1])
random.seed(0)  # rows come truncated (longest at most): max_length=None, as padding-free needs
lengths = [random.randint(longest // 4, longest) for _ in range(batch * steps)]
rows = [{"input_ids": [random.randrange(3, 2000) for _ in range(n)]} for n in lengths]
times, losses = [], []
class Clock(TrainerCallback):
    def on_step_begin(self, args, state, control, **kw):
        if cuda: torch.cuda.synchronize()
        self.start = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        if cuda: torch.cuda.synchronize()
        times.append(time.perf_counter() - self.start)
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs: losses.append(logs["loss"])
args = SFTConfig(output_dir=sys.argv[2], max_steps=steps, per_device_train_batch_size=batch,
                 learning_rate=1e-4, logging_steps=1, padding_free=padding_free,
                 use_liger_kernel=liger, bf16=cuda, use_cpu=not cuda, report_to=[],
                 save_strategy="no", gradient_checkpointing=cuda, max_length=None,
                 dataloader_drop_last=True, seed=0)
trainer = SFTTrainer(model=model_dir, args=args, train_dataset=Dataset.from_list(rows),
                     peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                            target_modules="all-linear", task_type="CAUSAL_LM"),
                     callbacks=[Clock()])
if cuda: torch.cuda.reset_peak_memory_stats()
trainer.train()
tokens = sum(len(r["input_ids"]) for r in rows) / steps  # per step: every row once
step = statistics.median(times[1:]) if len(times) > 1 else times[0]
peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
print("RESULT", json.dumps({
    "tokens_per_s": round(tokens / step, 1), "step_s": round(step, 3),
    "first_loss": losses[0] if losses else None, "max_memory_allocated_gib": peak}))
"""


def sft_rows(model_dir: str, cuda: bool, out_dir: Path, timeout: float = 150) -> list[dict]:
    """One row per variant, each from its own process; Liger rows skipped without CUDA or
    liger-kernel. `timeout`: seconds per variant."""
    batch, longest, steps = SIZES["gpu" if cuda else "dry"]
    rows = []
    for name, (padding_free, liger) in VARIANTS.items():
        row = {"row": f"SFT {name}", "batch_x_longest": f"{batch} x {longest}"}
        if liger and not cuda:
            rows.append({**row, "skipped": "Liger kernels need CUDA (dry run)"})
            continue
        if liger and importlib.util.find_spec("liger_kernel") is None:
            rows.append({**row, "skipped": "liger-kernel not installed"})
            continue
        spec = [model_dir, padding_free, liger, batch, longest, steps, cuda]
        try:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps(spec), str(out_dir / "sft_out")],
                capture_output=True, text=True, timeout=timeout, cwd=REPO,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            rows.append({**row, "error": f"timed out after {timeout:.0f} s"})
            continue
        log = out_dir / f"sft_{len(rows)}.log"
        log.write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
        if proc.returncode or "RESULT" not in proc.stdout:
            rows.append({**row, "error": (proc.stderr or proc.stdout)[-500:]})
            continue
        measured = proc.stdout.split("RESULT", 1)[1].strip().splitlines()[0]
        rows.append({**row, **json.loads(measured)})
    plain = rows[0].get("first_loss")
    for row in rows:
        if plain is not None and row.get("first_loss") is not None:
            row["loss_matches_plain"] = abs(row["first_loss"] - plain) <= 0.02 * abs(plain)
    return rows


def fastest_loss_preserving(rows: list[dict]) -> str | None:
    """The variant to make the GPU default: the fastest whose loss matches plain's."""
    ok = [r for r in rows if r.get("tokens_per_s") and r.get("loss_matches_plain")]
    return max(ok, key=lambda r: r["tokens_per_s"])["row"] if ok else None


def gpu_sft(out: Path, dry_run: bool) -> dict:
    """bench_gpu_sft.py's variants on the 8B architecture (tiny in the dry run)."""
    import torch

    from bench.bench_gpu_rl import COMMON, SIZES, _cfg
    from bench.bench_plan import _gpu_name
    from medalign.models.load import model_source

    cuda = torch.cuda.is_available() and not dry_run
    if not cuda and not dry_run:
        return {"skipped": "no CUDA GPU here (torch.cuda.is_available() is False); --dry-run"}
    out.mkdir(parents=True, exist_ok=True)
    size = SIZES["gpu" if cuda else "dry"]  # the same model overrides as the RL rows
    source = model_source(_cfg([*COMMON, *size["model"]]).model)
    rows = sft_rows(source, cuda, out)
    result = {"device": _gpu_name() if cuda else "cpu (dry run)", "model": size["model"]}
    result.update(rows=rows, fastest_loss_preserving=fastest_loss_preserving(rows))
    (out / "sft.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
