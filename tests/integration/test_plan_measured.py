"""The planner against measured memory on this CPU (slow: real training in subprocesses).

Measured: the peak resident memory while `Trainer.train` runs, above the resident memory
after the imports (bench/bench_plan.py's harness: VmHWM reset through
/proc/self/clear_refs, glibc's mmap threshold fixed so freed tensors leave RSS).

- tiny model, SFT: the growth of the peak from micro-batch 1 to 16 against the planned
  growth (the process's fixed overhead, ~50 MB of trainer/data/allocator state the
  planner does not model, cancels in the difference), and the batch-16 peak against the
  plan plus that overhead;
- Llama-3-8B's real layer shapes (GQA, 14336-wide MLP, 128k vocabulary, bf16), one
  layer, random weights: one SFT step under quant=none, int8 and nf4 (bench/RESULTS.md:
  measured / planned 0.77 unadjusted for none, 1.02 for int8 and nf4).
"""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

sys.path.insert(0, str(REPO / "bench"))


@pytest.fixture(scope="module")
def bench():
    import bench_plan

    return bench_plan


def _sft(batch: int) -> list[str]:
    return [
        "stage=medmcqa",
        "trainer.max_steps=2",
        "trainer.max_length=128",
        f"trainer.per_device_train_batch_size={batch}",
    ]


def test_planner_vs_measured_sft_tiny(bench) -> None:
    small, large = _sft(1), _sft(16)
    plan_small = bench.predicted(small, ["plan.seq_len=128"], "sft")["total_gib"] * 1024
    plan_large = bench.predicted(large, ["plan.seq_len=128"], "sft")["total_gib"] * 1024
    got_small = bench.measured(small)["delta_mb"]
    got_large = bench.measured(large)["delta_mb"]
    overhead = got_small - plan_small
    growth = (got_large - got_small) / (plan_large - plan_small)
    assert 0.8 <= growth <= 1.25, (got_small, got_large, plan_small, plan_large)
    assert 0.8 <= got_large / (plan_large + overhead) <= 1.2


@pytest.mark.parametrize("quant", ["none", "int8", "nf4"])
def test_llama3_8b_one_layer_slice_trains_and_matches_plan(bench, quant: str) -> None:
    over = [*bench.SLICE, f"quant={quant}"]
    plan = bench.predicted(over, ["plan.seq_len=128"], "sft")
    assert plan["parameters"]["by_type"]["embedding"] == 128256 * 4096
    got = bench.measured(over)  # raises with the log if the step fails
    planned = plan["total_gib"] * 1024
    if quant == "none":
        # bf16 weights stay memory-mapped from the safetensors file and become resident
        # only when read: the embedding rows beyond the tiny tokenizer's 2048 ids never
        # are on a CPU (a GPU copies them all). Measured: touching the whole embedding
        # adds its full 1002 MiB to RSS.
        planned -= (128256 - 2048) * 4096 * 2 / 1024**2
    ratio = got["delta_mb"] / planned
    assert 0.8 <= ratio <= 1.25, (quant, got, plan["memory_gib"])


def test_llama3_8b_one_layer_slice_evaluates_every_format(tmp_path) -> None:
    """The evaluation code path on the real 128k-vocabulary architecture (nf4): one SFT
    step, then the built-in evaluation of every example set scores every question."""
    import json

    from medalign.run import run
    from tests.conftest import compose

    over = ["model=llama3_8b", "model.builder=random_init", "model.num_layers=1", "quant=nf4"]
    over += ["stage=medqa", "trainer.max_steps=1", "trainer.max_length=176", "logger=none"]
    over += ["trainer.per_device_train_batch_size=2"]  # 176 tokens keep every answer
    over += ["eval.after_train=true", "eval.limit=4", "eval.max_new_tokens=8"]
    metrics = run(compose(*over), tmp_path / "run")
    for name in ("medqa", "medmcqa", "pubmedqa", "mmlu_medical"):
        assert 0.0 <= metrics[f"eval/{name}/acc"] <= 1.0
    assert 0.0 <= metrics["eval/radqa/f1"] <= 1.0
    lines = (tmp_path / "run" / "eval" / "predictions.jsonl").read_text().splitlines()
    by_dataset: dict[str, int] = {}
    for line in lines:
        row = json.loads(line)
        by_dataset[row["dataset"]] = by_dataset.get(row["dataset"], 0) + 1
    assert by_dataset and all(n == 4 for n in by_dataset.values()), by_dataset
