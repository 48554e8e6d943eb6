"""A requeued SLURM job resumes: when a job counts as requeued, what it resumes, and the
requeue settings the SLURM launcher gets (no SLURM needed)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from medalign.requeue import requeued, resume_config
from tests.conftest import CONF
from tests.conftest import compose as compose_medalign


def test_only_a_submitit_job_with_an_earlier_attempt_is_requeued(tmp_path: Path) -> None:
    slurm = {"SUBMITIT_EXECUTOR": "slurm"}
    assert not requeued(tmp_path, slurm)  # a first attempt: nothing there yet
    (tmp_path / "manifest.json").write_text("{}")
    assert requeued(tmp_path, slurm)
    assert not requeued(tmp_path, {})  # not under submitit: the usual refusal applies


def test_a_requeued_job_resumes_where_its_stage_can(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    sft = compose_medalign("stage=medmcqa")
    assert resume_config(sft, tmp_path).stage.resume_from == "latest"  # newest complete ckpt
    given = sft.copy()
    OmegaConf.update(given, "stage.resume_from", "/ckpt")
    assert resume_config(given, tmp_path).stage.resume_from == "/ckpt"
    assert sft.stage.resume_from is None  # the job's own config is not changed
    curriculum = resume_config(compose_medalign("experiment=curriculum"), tmp_path)
    assert curriculum.resume == str(tmp_path)
    evaluation = sft.copy()
    OmegaConf.update(evaluation, "stage.kind", "eval")
    assert resume_config(evaluation, tmp_path) == evaluation  # starts again, same directory


def test_the_slurm_launcher_requeues_on_timeout_and_preemption() -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.max_num_timeout == 3 and launcher.signal_delay_s == 120
    assert launcher.partition == "gpu"
