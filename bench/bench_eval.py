"""MCQ evaluation throughput: our log-likelihood scoring vs naive per-choice scoring.

Same tiny model, same questions, one run; the ratio is what matters on a noisy machine.
Reads the real MedQA 4-option sample when ../shared/data is present, else the examples.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from medalign.compose import catalogue
from medalign.config import ModelConfig, QuantConfig
from medalign.data.loading import get_task, load_records
from medalign.eval.loglik import score_fast, score_naive
from medalign.models.load import load_causal_lm, load_tokenizer, model_source

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
REAL = SHARED / "medqa" / "US_4_options_phrases_no_exclude_test_sample.jsonl"


def measure(n: int = 100, batch_size: int = 16) -> dict:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = catalogue("medqa")
    if REAL.is_file():
        cfg = dataclasses.replace(cfg, path=str(REAL), options=4)
    else:
        cfg = dataclasses.replace(cfg, options=4, split="train")
    records = load_records(cfg).records[:n]
    task = get_task(cfg)
    items = [(i.context, i.choices) for i in map(task.loglik_item, records)]
    source = model_source(ModelConfig())
    model = load_causal_lm(ModelConfig(), QuantConfig(), source).eval()
    tokenizer = load_tokenizer(ModelConfig(), source)
    score_fast(model, tokenizer, items[:4], batch_size)  # warm-up
    start = time.perf_counter()
    fast = score_fast(model, tokenizer, items, batch_size)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = score_naive(model, tokenizer, items)
    naive_s = time.perf_counter() - start
    same = sum(
        max(range(4), key=f.__getitem__) == max(range(4), key=g.__getitem__)
        for f, g in zip(fast, naive, strict=True)
    )
    return {
        "data": str(cfg.path or "examples"),
        "questions": len(items),
        "choices": 4,
        "fast_examples_per_s": round(len(items) / fast_s, 1),
        "naive_examples_per_s": round(len(items) / naive_s, 1),
        "speedup": round(naive_s / fast_s, 2),
        "same_predictions": f"{same}/{len(items)}",
    }


def markdown(row: dict) -> str:
    return "\n".join(
        [
            "| questions | medalign ex/s | naive per-choice ex/s | speed-up | same predictions |",
            "|---:|---:|---:|---:|---:|",
            f"| {row['questions']} | {row['fast_examples_per_s']} | "
            f"{row['naive_examples_per_s']} | {row['speedup']}x | {row['same_predictions']} |",
        ]
    )


if __name__ == "__main__":
    print(markdown(measure()))
