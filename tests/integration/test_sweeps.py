"""Multirun sweeps, Optuna, the submitit launcher, two-process DDP, every experiment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medalign.config import validate
from medalign.run import run
from tests import wandb_log
from tests.conftest import REPO, compose, options

TINY = ["stage=medmcqa", "trainer.max_steps=2", "dataset.limit=4"]


def _medalign(*args: str, env: dict | None = None, launcher: list[str] | None = None) -> str:
    result = subprocess.run(
        [*(launcher or [sys.executable, "-m", "medalign"]), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


@pytest.mark.slow  # kill/resume, sweeps and DDP run in `make test-slow`
def test_multirun_jobs_are_wandb_runs_of_one_group(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    _medalign(
        "-m",
        *TINY,
        "lora.r=4,8",
        "sweep.metric=train/loss",
        "logger=wandb",
        f"hydra.sweep.dir={sweep}",
        env={"WANDB_MODE": "offline"},
    )
    jobs = sorted(p for p in sweep.iterdir() if (p / "manifest.json").is_file())
    assert [p.name for p in jobs] == ["0_medmcqa", "1_medmcqa"]
    infos, configs = [], []
    for job in jobs:
        run_file = next(job.glob("wandb/offline-run-*/*.wandb"))
        infos.append(wandb_log.run_info(run_file))
        configs.append(wandb_log.run_config(run_file))
    assert infos[0]["group"] == infos[1]["group"] == f"sweep-{sweep.name}"
    assert {i["name"] for i in infos} == {
        "dataset.limit=4,lora.r=4,stage=medmcqa,sweep.metric=train/loss,trainer.max_steps=2",
        "dataset.limit=4,lora.r=8,stage=medmcqa,sweep.metric=train/loss,trainer.max_steps=2",
    }
    assert [c["lora.r"] for c in configs] == [4, 8]  # flattened resolved config
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert len(summary["jobs"]) == 2 and all(j["status"] == "done" for j in summary["jobs"])


@pytest.mark.slow  # kill/resume, sweeps and DDP run in `make test-slow`
def test_a_failed_job_does_not_stop_the_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # dataset.limit=0 fails while running (no rows); lora.r=x fails at start-up (not an int)
    _medalign(
        "-m",
        *TINY,
        "dataset.limit=0,4",
        "lora.r=8,x",
        "logger=none",
        "sweep.metric=train/loss",
        f"hydra.sweep.dir={sweep}",
    )
    jobs = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
    swept = ("dataset.limit=", "lora.r=")
    status = {" ".join(o for o in j["overrides"] if o.startswith(swept)): j["status"] for j in jobs}
    assert status == {
        "dataset.limit=0 lora.r=8": "failed",
        "dataset.limit=0 lora.r=x": "failed",
        "dataset.limit=4 lora.r=8": "done",
        "dataset.limit=4 lora.r=x": "failed",
    }


@pytest.mark.slow  # kill/resume, sweeps and DDP run in `make test-slow`
def test_optuna_runs_three_trials_and_records_the_best(tmp_path: Path) -> None:
    sweep = tmp_path / "optuna"
    _medalign(
        "-m",
        "hydra/sweeper=optuna_lora",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.direction=minimize",
        "sweep.direction=minimize",
        *TINY,
        "logger=none",
        "sweep.metric=train/loss",
        f"hydra.sweep.dir={sweep}",
    )
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {
        "trainer.learning_rate",
        "lora.r",
        "lora.alpha",
        "lora.dropout",
    }  # trainer.max_steps is swept too, but fixed here by the command line
    space = yaml.safe_load((REPO / "conf" / "hydra" / "sweeper" / "optuna_lora.yaml").read_text())
    assert "trainer.max_steps" in space["params"]  # issue 12 item 12: no dead dimension
    assert not any("epochs" in key for key in space["params"])
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert len(summary["jobs"]) == 3
    if summary["best"] is None:  # the trials tie (issue 21: then no job is named best)
        tied = [j for j in summary["jobs"] if j["label"] in summary["tied"]]
        assert len(tied) >= 2
        assert all(j["metric"] == pytest.approx(best["best_value"]) for j in tied)
    else:
        assert summary["best"]["metric"] == pytest.approx(best["best_value"])


@pytest.mark.slow  # kill/resume, sweeps and DDP run in `make test-slow`
def test_submitit_local_runs_a_job_to_completion(tmp_path: Path) -> None:
    sweep = tmp_path / "submitit"
    _medalign(
        "-m", "hydra/launcher=submitit_local", *TINY, "logger=none", f"hydra.sweep.dir={sweep}"
    )
    manifest = json.loads((sweep / "0_medmcqa" / "manifest.json").read_text())
    assert manifest["stages"][0]["status"] == "done"
    assert list(sweep.glob(".submitit/*/*_result.pkl"))  # ran through the submitit executor


@pytest.mark.slow  # kill/resume, sweeps and DDP run in `make test-slow`
def test_two_cpu_processes_train_one_synchronized_adapter(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    accelerate = str(Path(sys.executable).with_name("accelerate"))
    scratch = tmp_path / "ranks"
    scratch.mkdir()
    run_dir = tmp_path / "runs" / "ddp"
    _medalign(
        "--config_file",
        str(REPO / "medalign" / "accelerate" / "cpu_ddp.yaml"),
        "-m",
        "medalign",
        *TINY,
        "trainer.max_steps=4",
        "logger=wandb",
        f"hydra.run.dir={run_dir}",
        launcher=[accelerate, "launch"],
        env={"WANDB_MODE": "offline", "MEDALIGN_RANK_DIR": str(scratch)},
    )
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["ddp"]  # one run directory
    assert len(list(run_dir.glob("wandb/offline-run-*"))) == 1  # one W&B run
    (rank1,) = list(scratch.iterdir())
    ours = json.loads((run_dir / "manifest.json").read_text())["stages"][0]
    theirs = json.loads((rank1 / "manifest.json").read_text())["stages"][0]
    assert ours["world_size"] == theirs["world_size"] == 2
    assert (run_dir / "config.yaml").read_text() == (rank1 / "config.yaml").read_text()
    a = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(rank1 / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_validates_and_runs(tmp_path: Path, experiment: str) -> None:
    overrides = [
        f"experiment={experiment}",
        "logger=none",
        "trainer.max_steps=2",
        "dataset.limit=4",
        "eval.limit=2",
        "eval.datasets=[medqa]",
        "eval.bootstrap=0",
        "curriculum.order=[pubmedqa,medmcqa]",
        "curriculum.eval_before=false",
        "trainer.save_steps=0",
    ]
    if experiment == "world":  # a small world of its own, pretraining first
        from medalign.world.render import write_world

        write_world(tmp_path / "world", seed=0, diseases=40)
        overrides += [
            f"data_root={tmp_path / 'world'}",
            *("model=world_small", "model.world.pretrain_steps=0"),  # no cached read first
            "curriculum.order=[pretrain,medqa]",
            "curriculum.stages.pretrain.max_steps=2",
        ]
    validate(compose(*overrides))
    run(compose(*overrides), tmp_path / "run", overrides=overrides)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert all(s["status"] == "done" for s in manifest["stages"])
