"""SFT throughput: medalign's stage vs a plain TRL SFTTrainer script, and scaling.

Same tiny model, data (MedMCQA examples as chat prompt/completion), LoRA, steps and
batch size; tokens/s counts non-padding tokens (TRL's `num_tokens`). Both unpacked and
packed (padding-free) modes, plus the padding share of unpacked batches. Scaling runs
the medalign stage at 2x/4x width+depth and 2x/4x sequence length, each in its own
process so its peak memory can be read.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEPS, BATCH, REPEATS = 40, 8, 3  # best of REPEATS: these machines are noisy

PLAIN_TRL = r"""
import json, sys, time
from datasets import Dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer
rows, model_dir, packing, steps, batch, out = json.loads(sys.argv[1]), *sys.argv[2:]
args = SFTConfig(output_dir=out, max_steps=int(steps), per_device_train_batch_size=int(batch),
                 learning_rate=2e-3, logging_steps=5, packing=packing == "1",
                 padding_free=packing == "1", bf16=False, use_cpu=True, report_to=[],
                 save_strategy="no", gradient_checkpointing=False, max_length=1024)
trainer = SFTTrainer(model=model_dir, args=args, train_dataset=Dataset.from_list(rows),
                     peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                            target_modules="all-linear", task_type="CAUSAL_LM"))
start = time.perf_counter(); trainer.train(); elapsed = time.perf_counter() - start
tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e][-1]
print("RESULT", json.dumps({"tokens": tokens, "seconds": elapsed}))
"""


def _rows_and_model() -> tuple[list[dict], str, list[int]]:
    from medalign.compose import catalogue
    from medalign.config import ModelConfig
    from medalign.data.formatting import to_messages
    from medalign.data.loading import load_records
    from medalign.data.tokenize import tokenize_sft
    from medalign.models.load import load_tokenizer, model_source

    cfg = catalogue("medmcqa")
    rows = [to_messages(r, cfg) for r in load_records(cfg).records]
    source = model_source(ModelConfig())
    from datasets import Dataset
    from trl import SFTConfig

    args = SFTConfig(output_dir=tempfile.mkdtemp(), max_length=None, report_to=[], use_cpu=True)
    tokenizer = load_tokenizer(ModelConfig(), source)
    tokenized, _ = tokenize_sft(Dataset.from_list(rows), tokenizer, args)
    return rows, source, [len(ids) for ids in tokenized["input_ids"]]


def padding_share(lengths: list[int], batch: int, seed: int = 0) -> float:
    """Share of padding positions when random batches are padded to their longest row."""
    order = lengths[:] * 10
    random.Random(seed).shuffle(order)
    real = padded = 0
    for i in range(0, len(order) - batch + 1, batch):
        chunk = order[i : i + batch]
        real += sum(chunk)
        padded += max(chunk) * len(chunk)
    return round(1 - real / padded, 3)


def _child(cmd: list[str]) -> tuple[str, float]:
    """Run `cmd`; return its output and peak resident memory (MB)."""
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(out[-3000:])
    return out, usage.ru_maxrss / 1024


def _plain_trl_once(rows: list[dict], model_dir: str, packing: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out, _ = _child(
            [
                sys.executable,
                "-c",
                PLAIN_TRL,
                json.dumps(rows),
                model_dir,
                "1" if packing else "0",
                str(STEPS),
                str(BATCH),
                tmp,
            ]
        )
    result = json.loads(out.split("RESULT", 1)[1].strip().splitlines()[0])
    return {"tokens_per_s": round(result["tokens"] / result["seconds"], 1)}


def _medalign_once(*overrides: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        _, peak = _child(
            [
                sys.executable,
                "-m",
                "medalign",
                "stage=medmcqa",
                "logger=none",
                f"trainer.max_steps={STEPS}",
                f"trainer.per_device_train_batch_size={BATCH}",
                f"hydra.run.dir={tmp}/run",
                *overrides,
            ]
        )
        metrics = json.loads(Path(tmp, "run", "metrics.json").read_text())
    return {
        "tokens_per_s": metrics["train/tokens_per_s"],
        "seconds": metrics["train/runtime_s"],
        "packing": metrics["train/packing"],
        "peak_rss_mb": round(peak, 1),
    }


def best_of(runs: dict[str, object], repeats: int = REPEATS) -> dict[str, dict]:
    """Run each measurement `repeats` times, interleaved (A B A B ...), keep each one's
    fastest: drift on a shared machine then hits every contender alike."""
    results: dict[str, list[dict]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, once in runs.items():
            results[name].append(once())
    return {name: max(r, key=lambda x: x["tokens_per_s"]) for name, r in results.items()}


def medalign_sft(*overrides: str) -> dict:
    return best_of({"run": lambda: _medalign_once(*overrides)})["run"]


def measure() -> dict:
    rows, model_dir, lengths = _rows_and_model()

    def contender(who: str, packing: bool):
        if who == "trl":
            return lambda: _plain_trl_once(rows, model_dir, packing)
        return lambda: _medalign_once(f"stage.packing={str(packing).lower()}")

    pairs = (("unpacked", False), ("packed", True))
    timed = best_of(
        {
            f"{who}_{mode}": contender(who, packing)
            for mode, packing in pairs
            for who in ("trl", "medalign")
        }
    )
    modes = {
        mode: {"plain_trl": timed[f"trl_{mode}"], "medalign": timed[f"medalign_{mode}"]}
        for mode in ("unpacked", "packed")
    }
    from medalign.stages.sft import packing_mode

    default_packing = packing_mode(_default_cfg())
    default = {
        **modes["packed" if default_packing else "unpacked"]["medalign"],
        "packing": default_packing,
    }
    best_trl = max(m["plain_trl"]["tokens_per_s"] for m in modes.values())
    context = "{question}\n{options}"
    scaling = {
        "tiny (64 x 2 layers)": default,
        "2x width+depth": medalign_sft(
            "model.tiny.hidden_size=128",
            "model.tiny.intermediate_size=384",
            "model.tiny.num_hidden_layers=4",
        ),
        "4x width+depth": medalign_sft(
            "model.tiny.hidden_size=256",
            "model.tiny.intermediate_size=768",
            "model.tiny.num_hidden_layers=8",
        ),
        "2x sequence": medalign_sft(f"dataset.prompt_template='{context}\n{context}'"),
        "4x sequence": medalign_sft(
            f"dataset.prompt_template='{context}\n{context}\n{context}\n{context}'"
        ),
    }
    return {
        "steps": STEPS,
        "batch": BATCH,
        "padding_share_unpacked": padding_share(lengths, BATCH),
        "modes": modes,
        "medalign_default": default,
        "ratio_default_vs_best_plain_trl": round(default["tokens_per_s"] / best_trl, 2),
        "scaling": scaling,
    }


def _default_cfg():
    from medalign.config import validate
    from medalign.curriculum import compose

    return validate(compose(["stage=medmcqa"]))


def markdown(result: dict) -> str:
    lines = [
        f"{result['steps']} steps, batch {result['batch']}, LoRA r=8; non-padding tokens/s, "
        f"best of {result.get('repeats', 1)} interleaved runs. "
        f"Padding share of unpacked batches: {result['padding_share_unpacked']:.0%}.",
        "",
        "| mode | plain TRL | medalign | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, m in result["modes"].items():
        trl, ours = m["plain_trl"]["tokens_per_s"], m["medalign"]["tokens_per_s"]
        lines.append(f"| {name} | {trl:,.0f} | {ours:,.0f} | {ours / trl:.2f}x |")
    d = result["medalign_default"]
    lines += [
        "",
        f"medalign's default on this device (packing={d['packing']}): "
        f"{d['tokens_per_s']:,.0f} tokens/s = **{result['ratio_default_vs_best_plain_trl']}x** "
        "the faster plain-TRL mode.",
        "",
        "| scaling | seconds | tokens/s | peak RSS (MB) |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {s['seconds']} | {s['tokens_per_s']:,.0f} | {s['peak_rss_mb']} |"
        for name, s in result["scaling"].items()
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(measure()))
