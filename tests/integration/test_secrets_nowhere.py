"""Secrets are written nowhere (issue 37): with WANDB_API_KEY and HF_TOKEN set to canary
values, a tiny SFT stage logged to W&B (offline) from a fresh cache writes neither into
any file of its run, its W&B folder or the cache it fills (the tiny model, the tokenized
data, the remembered loads), nor prints them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

WB = "wandbcanary-0123456789abcdef0123456789abcdef0123"
HF = "hf_canaryTOKENvalue0123456789"


@pytest.mark.slow  # a CLI stage with W&B offline and a cache built from nothing
def test_no_secret_in_any_file_the_run_its_wandb_folder_or_the_cache_writes(
    tmp_path: Path,
) -> None:
    cache, wandb_dir, run_dir = tmp_path / "cache", tmp_path / "wandb_dir", tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "WANDB_API_KEY": WB,
        "HF_TOKEN": HF,
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(wandb_dir),
        "MEDALIGN_CACHE": str(cache),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "medalign",
            "stage=pubmedqa",
            "logger=wandb",
            "dataset.limit=8",
            "trainer.max_steps=2",
            "eval.after_train=false",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    written = [p for root in (run_dir, wandb_dir, cache) for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in written)  # W&B did write its folder
    assert any(p.name == "model.safetensors" for p in written)  # and the cache its model
    for path in written:
        data = path.read_bytes()
        for secret in (WB, HF):
            assert secret.encode() not in data, f"{secret} in {path}"
    for secret in (WB, HF):
        assert secret not in done.stdout + done.stderr
