"""The curriculum: handoff, resume after SIGKILL, determinism, isolation, export."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from medalign.errors import MedalignError
from medalign.run import run
from tests.conftest import compose, finish_cli, start_cli, tree_digest

SMALL = [
    "experiment=curriculum",
    "logger=none",
    "curriculum.order=[pubmedqa,medmcqa]",
    "curriculum.eval_before=false",
    "eval.datasets=[medqa]",
    "eval.limit=4",
    "eval.bootstrap=0",
    "dataset.limit=8",
    "trainer.max_steps=30",
    "trainer.logging_steps=5",
    "trainer.save_steps=5",
]


def _adapter(folder: Path):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter" / "adapter_model.safetensors"))


@pytest.mark.slow  # kill/resume, sweeps and DDP run in `make test-slow`
def test_killed_curriculum_resumes_to_the_same_result(tmp_path: Path) -> None:
    import torch

    reference = tmp_path / "reference"
    finish_cli(start_cli(*SMALL, f"hydra.run.dir={reference}"))
    before = tree_digest(reference)
    ref_manifest = json.loads((reference / "manifest.json").read_text())
    assert [s["status"] for s in ref_manifest["stages"]] == ["done", "done"]

    killed = tmp_path / "killed"
    proc = start_cli(*SMALL, f"hydra.run.dir={killed}")
    checkpoint = killed / "1-medmcqa" / "checkpoints" / "checkpoint-10"
    deadline = time.time() + 240
    while not (checkpoint / "trainer_state.json").is_file():
        assert proc.poll() is None, "the run ended before stage 2 reached step 10"
        assert time.time() < deadline, "stage 2 never reached its step-10 checkpoint"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    manifest = json.loads((killed / "manifest.json").read_text())  # readable after a kill
    assert [s["status"] for s in manifest["stages"]] == ["done", "running"]
    stage1 = (killed / "0-pubmedqa" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns

    finish_cli(start_cli(*SMALL, f"resume={killed}", f"hydra.run.dir={tmp_path / 'resume'}"))
    manifest = json.loads((killed / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done", "done"]
    assert (
        killed / "0-pubmedqa" / "adapter" / "adapter_model.safetensors"
    ).stat().st_mtime_ns == stage1
    stage2 = json.loads((killed / "1-medmcqa" / "manifest.json").read_text())["stages"][0]
    assert "checkpoint-" in stage2["resumed_from"]

    # Same seed: the resumed adapter matches the uninterrupted one (CPU float tolerance).
    ours, theirs = _adapter(killed / "1-medmcqa"), _adapter(reference / "1-medmcqa")
    for name, tensor in theirs.items():
        torch.testing.assert_close(ours[name], tensor, atol=1e-4, rtol=1e-3)
    assert manifest["results"]["medmcqa"]["medqa"] == ref_manifest["results"]["medmcqa"]["medqa"]
    # Issue 12 item 9: a resumed stage logs its whole training, not only the resumed steps.
    ref_stage2 = json.loads((reference / "1-medmcqa" / "manifest.json").read_text())["stages"][0]
    ours_m, ref_m = stage2["metrics"], ref_stage2["metrics"]
    assert ours_m["train/num_tokens"] == ref_m["train/num_tokens"]
    assert ours_m["train/loss"] == pytest.approx(ref_m["train/loss"], abs=1e-3)
    assert manifest["status"] == "done"
    assert tree_digest(reference) == before  # a second curriculum never touched the first


def test_same_seed_same_losses(tmp_path: Path) -> None:
    losses = []
    for name in ("a", "b"):
        run(
            compose(
                "stage=medmcqa",
                "logger=none",
                "trainer.max_steps=6",
                "trainer.logging_steps=1",
                "dataset.limit=8",
            ),
            tmp_path / name,
        )
        state = json.loads((tmp_path / name / "manifest.json").read_text())["stages"][0]
        losses.append(state["metrics"]["train/loss"])
    assert losses[0] == losses[1]


def test_lora_mismatch_at_handoff_fails_before_training(tmp_path: Path) -> None:
    overrides = [*SMALL, "trainer.max_steps=2", "curriculum.stages.medmcqa.overrides=['lora.r=16']"]
    with pytest.raises(MedalignError, match="has r=8, but the config asks for lora.r=16"):
        run(compose(*overrides), tmp_path / "run", overrides=overrides)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done", "failed"]
    assert not (tmp_path / "run" / "1-medmcqa" / "checkpoints").exists()


def test_merge_handoff_and_export(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    overrides = [
        *SMALL,
        "trainer.max_steps=3",
        "curriculum.handoff=merge",
        "curriculum.stages.medmcqa.max_steps=2",
    ]
    run(compose(*overrides), tmp_path / "run", overrides=overrides)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    first, second = manifest["stages"]
    assert second["base_model"] == str(tmp_path / "run" / "0-pubmedqa" / "merged")
    assert second["metrics"]["train/steps"] == 2 and first["metrics"]["train/steps"] == 3
    assert set(manifest["results"]) == {"pubmedqa", "medmcqa"}
    assert (tmp_path / "run" / "results.md").is_file() and (
        tmp_path / "run" / "results.png"
    ).is_file()

    run(
        compose("stage=export", "logger=none", f"init_from={tmp_path / 'run'}"), tmp_path / "export"
    )
    model_dir = tmp_path / "export" / "model"
    assert (model_dir / "model.safetensors").is_file()
    card = (model_dir / "README.md").read_text()
    assert "stage **medmcqa**" in card and "| pubmedqa |" in card and "LoRA r=8" in card
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_one_wandb_group_per_curriculum_one_run_per_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests import wandb_log

    monkeypatch.setenv("WANDB_MODE", "offline")
    overrides = [*SMALL, "logger=wandb", "trainer.max_steps=2", "trainer.save_steps=0"]
    run(compose(*overrides), tmp_path / "run", overrides=overrides)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    infos = {}
    for stage in manifest["stages"]:
        files = list(
            Path(stage["dir"]).glob(f"wandb/offline-run-*-{stage['wandb_run_id']}/*.wandb")
        )
        infos[stage["name"]] = wandb_log.run_info(files[0])
    assert {i["group"] for i in infos.values()} == {"run"}
    assert {n: i["job_type"] for n, i in infos.items()} == {
        "pubmedqa": "pubmedqa",
        "medmcqa": "medmcqa",
    }
    summary = list((tmp_path / "run").glob("wandb/offline-run-*/*.wandb"))
    assert wandb_log.run_info(summary[0])["job_type"] == "summary"


def test_resume_replays_the_recorded_config_and_refuses_a_conflicting_override(
    tmp_path: Path,
) -> None:
    overrides = [*SMALL, "curriculum.order=[pubmedqa]", "trainer.max_steps=2"]
    run(compose(*overrides), tmp_path / "run", overrides=overrides)
    recorded = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert recorded["overrides"][-1] == "trainer.max_steps=2" and recorded["status"] == "done"
    changed = [*overrides, f"resume={tmp_path / 'run'}", "lora.r=16"]
    with pytest.raises(MedalignError, match=r"lora.r=16 would change the recorded lora.r=8"):
        run(compose(*changed), tmp_path / "other", overrides=changed)
    again = [f"resume={tmp_path / 'run'}", "experiment=curriculum", "logger=none"]
    table = run(compose(*again), tmp_path / "other", overrides=again)
    assert table == recorded["results"]  # nothing re-ran: every stage was done


def test_replay_mixes_the_earlier_stages_rows_into_a_later_one(tmp_path: Path) -> None:
    """Issue 22: curriculum.replay mixes each earlier SFT stage's dataset into the later
    ones (seeded, decontaminated, counted in the manifest)."""
    overrides = [*SMALL, "trainer.max_steps=2", "eval.after_train=false", "curriculum.replay=0.5"]
    run(compose(*overrides), tmp_path / "run", overrides=overrides)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    first, second = manifest["stages"]
    assert first["data"]["rows_by_dataset"] == {"pubmedqa": 8}
    from medalign.data.loading import load_records
    from tests.conftest import dataset_cfg

    whole = len(load_records(dataset_cfg("pubmedqa")).records)  # the catalogue's train split
    counts = second["data"]["rows_by_dataset"]
    assert counts == {"medmcqa": 8, "pubmedqa": round(0.5 * whole)}  # a seeded half replayed
    assert second["data"]["rows"] == 8 + round(0.5 * whole)
