"""A real SFT stage on the tiny model: training, saving, reloading, tracking, failures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medalign.errors import MedalignError
from medalign.run import run
from tests import wandb_log
from tests.conftest import REPO, compose

FAST = ["trainer.max_steps=4", "trainer.logging_steps=1", "dataset.limit=8"]


def _completion_loss(model, tokenizer, examples: list[dict]) -> float:
    """Mean loss on the answer tokens only, the way SFT trains (prompt masked)."""
    import torch

    model.eval()
    losses = []
    for example in examples:
        prompt = tokenizer.apply_chat_template(
            example["prompt"], tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(
            example["prompt"] + example["completion"], tokenize=False
        )
        ids = tokenizer(full, return_tensors="pt", add_special_tokens=False)["input_ids"]
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        labels = ids.clone()
        labels[:, :n_prompt] = -100
        with torch.no_grad():
            losses.append(float(model(input_ids=ids, labels=labels).loss))
    return sum(losses) / len(losses)


def test_sft_lowers_loss_and_the_adapter_reloads_exactly(tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medalign.data.formatting import to_messages
    from medalign.data.loading import load_records

    cfg = compose(
        "stage=pubmedqa",
        "logger=none",
        "dataset.limit=8",
        "trainer.max_steps=30",
        "trainer.learning_rate=1e-2",
        "trainer.warmup_steps=0",
        "trainer.lr_scheduler_type=constant",
    )
    typed_dataset = cfg.dataset
    from medalign.config import validate

    records = load_records(validate(cfg).dataset).records
    assert typed_dataset.limit == 8 and len(records) == 8
    metrics = run(cfg, tmp_path / "run")

    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    stage = manifest["stages"][0]
    assert stage["status"] == "done" and stage["name"] == "pubmedqa"
    base_dir = stage["base_model"]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    examples = [to_messages(r, validate(cfg).dataset) for r in records]
    texts = [
        tokenizer.apply_chat_template(e["prompt"] + e["completion"], tokenize=False)
        for e in examples
    ]
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    before = _completion_loss(base, tokenizer, examples)
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir), tmp_path / "run" / "adapter"
    )
    after = _completion_loss(tuned, tokenizer, examples)
    assert after < before - 0.5, (before, after)
    assert metrics["train/loss"] < metrics["train/first_loss"]
    assert metrics["train/steps"] == 30

    # Reload a second time: identical logits (the adapter on disk is the trained one).
    again = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir), stage["adapter"]
    )
    enc = tokenizer(texts[:2], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(tuned(**enc).logits, again(**enc).logits)
        assert not torch.allclose(tuned(**enc).logits, base(**enc).logits)


@pytest.mark.parametrize("stage", ["pubmedqa", "medmcqa", "medqa", "radqa"])
def test_every_stage_trains_on_its_own_example_data(tmp_path: Path, stage: str) -> None:
    metrics = run(compose(f"stage={stage}", "logger=none", *FAST), tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]
    assert manifest["status"] == "done" and manifest["name"] == stage
    assert manifest["data"]["rows"] == 8 and manifest["data"]["decontaminated"] == 0
    assert f"examples/{stage}/" in manifest["data"]["source"]
    assert metrics["train/steps"] == 4


def test_yaml_declared_instruction_dataset_trains_and_mixes(tmp_path: Path) -> None:
    """Issue 11: a dataset added with one YAML (dataset=instructions, its column mapping)
    trains on the tiny model and mixes by weight with a medical set."""
    metrics = run(
        compose("stage=sft", "dataset=instructions", "logger=none", *FAST), tmp_path / "alone"
    )
    assert metrics["train/steps"] == 4 and metrics["train/loss"] > 0
    run(
        compose(
            "stage=medmcqa",
            "logger=none",
            "trainer.max_steps=2",
            "dataset.mix={medmcqa: 1.0, instructions: 0.5}",
        ),
        tmp_path / "mixed",
    )
    data = json.loads((tmp_path / "mixed" / "manifest.json").read_text())["stages"][0]["data"]
    assert data["rows_by_dataset"] == {"medmcqa": 30, "instructions": 4}


def test_a_dataset_never_evaluated_mixes_in_from_one_file(tmp_path: Path) -> None:
    """An instruction file has no evaluation split to leak into, so one file given as
    its path is mixed in; it was refused as "read for training and for evaluation"
    because the check asked which file an evaluation would read, not whether one runs."""
    notes = tmp_path / "notes.jsonl"
    rows = [{"prompt": f"Note {i}:", "completion": f"Rest and fluids, day {i}."} for i in range(6)]
    notes.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run(
        compose(
            "stage=medmcqa",
            "logger=none",
            "trainer.max_steps=2",
            "dataset.mix={medmcqa: 1.0, instructions: 1.0}",
            f"datasets.instructions.path={notes}",
            "datasets.instructions.task_args.columns={prompt: prompt, completion: completion}",
        ),
        tmp_path / "run",
    )
    data = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]["data"]
    assert data["rows_by_dataset"] == {"medmcqa": 30, "instructions": 6}


def test_mixed_stage_records_rows_per_dataset(tmp_path: Path) -> None:
    run(
        compose(
            "stage=sft",
            "dataset=medmcqa",
            "logger=none",
            "trainer.max_steps=2",
            "dataset.mix={medmcqa:1.0,medqa:0.5}",
        ),
        tmp_path / "run",
    )
    data = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]["data"]
    assert data["rows_by_dataset"] == {"medmcqa": 30, "medqa": 12}
    assert len(data["source"]) == 2


def test_run_writes_config_metrics_manifest_and_wandb_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", "wandbsecret-0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("HF_TOKEN", "hf_supersecretvalue123")
    run_dir = tmp_path / "run"
    run(compose("stage=pubmedqa", "logger=wandb", *FAST), run_dir)

    manifest = json.loads((run_dir / "manifest.json").read_text())
    stage = manifest["stages"][0]
    assert stage["status"] == "done"
    assert stage["data"]["rows"] == 8 and stage["data"]["skipped"] == {}
    assert len(stage["data"]["fingerprint"]) == 16
    assert stage["wandb_run_id"]
    assert Path(stage["adapter"], "adapter_config.json").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["train/steps"] == 4
    assert "r: 8" in (run_dir / "config.yaml").read_text()

    wandb_files = list(run_dir.glob(f"wandb/offline-run-*-{stage['wandb_run_id']}/*.wandb"))
    assert len(wandb_files) == 1
    # wandb-core writes the file from its own process; give it a moment to land on disk.
    deadline = time.time() + 15
    while True:
        history = wandb_log.history(wandb_files[0])
        losses = [row["train/loss"] for row in history if "train/loss" in row]
        if len(losses) >= 4 or time.time() > deadline:
            break
        time.sleep(0.5)
    assert len(losses) == 4 and all(loss > 0 for loss in losses), history
    assert wandb_log.run_config(wandb_files[0])["lora.r"] == 8

    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"hf_supersecretvalue123" not in data, path
            assert b"wandbsecret-0123456789" not in data, path


def test_bad_data_fails_clearly_and_leaves_no_complete_looking_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"1": {"QUESTION": "q?", "CONTEXTS": ["c"], "final_decision": "x"}}))
    run_dir = tmp_path / "run"
    with pytest.raises(MedalignError, match=rf"{bad}, row '1', field 'final_decision'"):
        run(compose("stage=pubmedqa", "logger=none", f"dataset.path={bad}"), run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"][0]["status"] == "failed"
    assert "final_decision" in manifest["stages"][0]["error"]
    assert not (run_dir / "adapter").exists() and not (run_dir / "metrics.json").exists()


def test_skipped_rows_are_counted_in_the_manifest(tmp_path: Path) -> None:
    rows = {
        str(i): {
            "QUESTION": f"Question {i}?",
            "CONTEXTS": ["Context."],
            "final_decision": "yes",
            "LONG_ANSWER": "Yes.",
        }
        for i in range(4)
    }
    rows["9"] = {"QUESTION": "q?", "CONTEXTS": [], "final_decision": "yes"}
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows))
    run(
        compose(
            "stage=pubmedqa",
            "logger=none",
            "trainer.max_steps=1",
            f"dataset.path={path}",
            "dataset.on_bad_row=skip",
        ),
        tmp_path / "run",
    )
    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done"
    assert stage["data"]["rows"] == 4
    assert stage["data"]["skipped"] == {"CONTEXTS: missing or empty list of abstract sections": 1}


def test_a_finished_run_directory_is_never_reused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run(compose("stage=pubmedqa", "logger=none", "trainer.max_steps=1", "dataset.limit=4"), run_dir)
    adapter = (run_dir / "adapter" / "adapter_model.safetensors").read_bytes()
    with pytest.raises(MedalignError, match="already holds a run"):
        run(compose("stage=pubmedqa", "logger=none", "trainer.max_steps=1"), run_dir)
    assert (run_dir / "adapter" / "adapter_model.safetensors").read_bytes() == adapter
    assert json.loads((run_dir / "manifest.json").read_text())["stages"][0]["status"] == "done"


def test_full_fine_tune_with_lora_none(tmp_path: Path) -> None:
    run(compose("stage=pubmedqa", "logger=none", "lora=none", *FAST), tmp_path / "run")
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    assert not (tmp_path / "run" / "adapter").exists()


def test_continuing_an_adapter_checks_its_lora_settings(tmp_path: Path) -> None:
    first = tmp_path / "first"
    run(compose("stage=pubmedqa", "logger=none", *FAST), first)
    with pytest.raises(MedalignError, match="has r=8, but the config asks for lora.r=16"):
        run(
            compose("stage=pubmedqa", "logger=none", "lora.r=16", f"init_from={first}/adapter"),
            tmp_path / "second",
        )
    run(
        compose("stage=pubmedqa", "logger=none", *FAST, f"init_from={first}/adapter"),
        tmp_path / "third",
    )
    assert (tmp_path / "third" / "adapter" / "adapter_config.json").is_file()


@pytest.mark.slow  # a subprocess CLI run; run() is tested in-process in make test
def test_cli_trains_into_a_new_run_directory(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "medalign",
            "stage=pubmedqa",
            "lora.r=16",
            "logger=none",
            *FAST,
            f"hydra.run.dir={runs}/one",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((runs / "one" / "manifest.json").read_text())
    assert manifest["stages"][0]["status"] == "done"
    adapter_cfg = json.loads((runs / "one" / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 16
    assert (runs / "one" / ".hydra" / "overrides.yaml").is_file()


@pytest.mark.slow
def test_make_curriculum_runs_every_stage_with_evaluation(tmp_path: Path) -> None:
    """`make curriculum` (experiment=world), on the small world so that this session's
    fresh cache builds its model in about 90 s rather than the full one's 10-13 min."""
    args = f"ARGS=logger=none model=world_small hydra.run.dir={tmp_path}/run"
    result = subprocess.run(
        ["make", "curriculum", args], cwd=REPO, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    names = [s["name"] for s in manifest["stages"]]
    assert names == ["before", "pubmedqa", "medmcqa", "medqa", "reward", "rl"]
    assert all(s["status"] == "done" for s in manifest["stages"])
    assert manifest["data_source"].startswith("synthetic world (seed 0, 24 diseases")
    datasets = {"pubmedqa", "medmcqa", "medqa", "radqa", "medsafetybench"}
    assert datasets <= set(manifest["results"]["rl"])
    assert 0 < manifest["stages"][4]["metrics"]["reward/helpfulness_accuracy"] <= 1
    assert "reward/helpfulness_mean" in manifest["stages"][5]["metrics"]
    for stage, steps in zip(manifest["stages"][1:4], (100, 200, 200), strict=True):
        assert stage["metrics"]["train/steps"] == steps
        assert stage["metrics"]["train/loss"] < stage["metrics"]["train/first_loss"]
    assert "## Forgetting" in (tmp_path / "run" / "results.md").read_text()
