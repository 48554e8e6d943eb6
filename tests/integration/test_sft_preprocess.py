"""One tokenization pass, checked against TRL's own preparation; the cache across stages;
evaluation start-up imports (issues 13 and 16). Slow: TRL, the tiny model, subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medalign.run import run
from tests.conftest import REPO, compose, default

pytestmark = pytest.mark.slow


def _sft_config(tmp_path: Path, **changes):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(tmp_path / "out"),
        completion_only_loss=True,
        use_cpu=True,
        bf16=False,
        report_to=[],
        **changes,
    )


def _rows_and_tokenizer():
    from medalign.config import ModelConfig, validate
    from medalign.data.formatting import to_sft_dataset
    from medalign.data.loading import load_training_data
    from medalign.models.load import load_tokenizer, model_source

    cfg = validate(compose("stage=medmcqa"))
    parts = load_training_data(cfg).parts
    source = model_source(default(ModelConfig))
    return (
        to_sft_dataset([(p.records, p.config) for p in parts]),
        load_tokenizer(default(ModelConfig), source),
        source,
    )


@pytest.mark.parametrize("mode", ["keep_start", "keep_end"])
def test_one_pass_equals_trl_and_counts_what_trl_truncates_and_drops(tmp_path, mode) -> None:
    from trl import SFTTrainer

    from medalign.data.tokenize import tokenize_sft

    raw, tokenizer, source = _rows_and_tokenizer()
    whole = SFTTrainer(
        model=source,
        args=_sft_config(tmp_path, max_length=None),
        train_dataset=raw,
        processing_class=tokenizer,
    ).train_dataset
    full_lengths = [len(ids) for ids in whole["input_ids"]]
    prompts = sorted(sum(label == -100 for label in labels) for labels in whole["labels"])
    limit = prompts[len(prompts) // 2]  # half the prompts fill it: TRL drops those rows
    args = _sft_config(tmp_path, max_length=limit, truncation_mode=mode)
    trl_prepared = SFTTrainer(
        model=source, args=args, train_dataset=raw, processing_class=tokenizer
    ).train_dataset
    ours, stats = tokenize_sft(raw, tokenizer, args, num_proc=2)
    assert stats.truncated == sum(n > limit for n in full_lengths) > 0
    assert stats.dropped == len(raw) - len(trl_prepared)
    assert (stats.dropped > 0) == (mode == "keep_start")
    kept = [i for i, labels in enumerate(ours["labels"]) if any(x != -100 for x in labels)]
    assert ours.select(kept)["input_ids"] == trl_prepared["input_ids"]
    assert ours.select(kept)["labels"] == trl_prepared["labels"]


def test_packed_dataset_equals_trl_packing(tmp_path) -> None:
    from trl import SFTTrainer

    from medalign.data.tokenize import tokenize_sft

    raw, tokenizer, source = _rows_and_tokenizer()
    args = _sft_config(tmp_path, max_length=256, packing=True, padding_free=True)
    trl_packed = SFTTrainer(
        model=source, args=args, train_dataset=raw, processing_class=tokenizer
    ).train_dataset
    ours, _ = tokenize_sft(raw, tokenizer, args, num_proc=1)
    for column in ("input_ids", "labels", "seq_lengths"):
        assert ours[column] == trl_packed[column]


FAST = ["logger=none", "trainer.max_steps=2", "dataset.limit=12"]


def test_a_second_stage_over_the_same_data_hits_the_cache(tmp_path, caplog) -> None:
    import logging

    cache = f"preprocess.cache_dir={tmp_path / 'tok'}"
    with caplog.at_level(logging.INFO):
        run(compose("stage=medmcqa", cache, *FAST), tmp_path / "first")
        run(compose("stage=medmcqa", cache, "lora.r=4", *FAST), tmp_path / "second")
    data = [
        json.loads((tmp_path / d / "manifest.json").read_text())["stages"][0]["data"]
        for d in ("first", "second")
    ]
    assert [d["tokenized_cache"]["hit"] for d in data] == [False, True]
    key = data[0]["tokenized_cache"]["key"]
    assert data[1]["tokenized_cache"]["key"] == key
    assert f"tokenized cache hit {key}" in caplog.text
    assert data[0]["tokens"] == data[1]["tokens"] > 0 and data[1]["truncated"] == 0


def test_a_too_short_max_length_stops_before_the_model_loads(tmp_path) -> None:
    from medalign.errors import MedalignError

    with pytest.raises(MedalignError, match=r"would keep no answer token.*trainer.max_length="):
        run(compose("stage=medmcqa", "trainer.max_length=24", *FAST), tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]
    assert manifest["status"] == "failed" and "adapter" not in manifest


PROBE = """
import sys, runpy, atexit, json
def report():
    print("MODULES " + json.dumps({m: m in sys.modules for m in
        ("trl", "matplotlib", "wandb", "peft", "bitsandbytes", "datasets")}))
atexit.register(report)
sys.argv = ["medalign", *sys.argv[1:]]
runpy.run_module("medalign", run_name="__main__")
"""


@pytest.mark.parametrize("plots", [True, False])
def test_stage_eval_imports_no_trl(tmp_path, plots) -> None:
    """stage=eval imports no trl, and of a base model no peft or bitsandbytes (nor W&B
    without a logger, nor matplotlib without plots); the plots come after the results."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "stage=eval", "logger=none", "eval.datasets=[medmcqa]",
         "eval.limit=8", f"eval.plots={str(plots).lower()}", f"hydra.run.dir={run_dir}"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("MODULES ")][-1]
    modules = json.loads(line.removeprefix("MODULES "))
    assert not modules["trl"] and not modules["wandb"]
    assert not modules["peft"] and not modules["bitsandbytes"]  # no adapter to load
    assert modules["matplotlib"] == plots
    results = run_dir / "eval" / "results.json"
    plot_files = list((run_dir / "eval" / "plots").glob("*.png"))
    assert results.is_file() and bool(plot_files) == plots
    if plots:
        assert min(p.stat().st_mtime for p in plot_files) >= results.stat().st_mtime
