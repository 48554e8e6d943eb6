"""KTO and ORPO train on the tiny model and lower their loss (real TRL trainers).

One batch holds every example (reward.limit=4: 4 pairs per objective), so the first and
the last logged loss are measured on the same rows and their difference is learning,
not a different batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.run import run
from tests.conftest import compose

pytestmark = pytest.mark.slow

COMMON = [
    "stage=rl",
    "logger=none",
    "reward.limit=4",
    "trainer.max_steps=6",
    "trainer.logging_steps=1",
    "trainer.learning_rate=1e-2",
    "trainer.lr_scheduler_type=constant",
]


def _reloads(out: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    stage = json.loads((out / "manifest.json").read_text())["stages"][0]
    PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(stage["base_model"]), stage["adapter"]
    )


def test_kto_on_the_pairs_unpaired_lowers_its_loss(tmp_path: Path) -> None:
    metrics = run(
        compose(*COMMON, "rl=kto", "trainer.per_device_train_batch_size=16"), tmp_path / "run"
    )
    assert metrics["rl/steps"] == 6
    assert metrics["rl/last_loss"] < metrics["rl/first_loss"]
    # the same names as DPO: desirable answers now rewarded above undesirable ones
    assert metrics["rl/reward_margin"] > 0
    assert metrics["rl/chosen_reward"] > metrics["rl/rejected_reward"]
    _reloads(tmp_path / "run")


def test_kto_on_thumbs_up_down_rows(tmp_path: Path) -> None:
    ratings = tmp_path / "ratings.jsonl"
    rows = [
        {"prompt": f"Is a blood pressure of 15{i}/95 high?", "completion": good, "label": label}
        for i in range(4)
        for good, label in (("Yes: above 140/90, recheck it.", "up"), ("No, ignore it.", "down"))
    ]
    ratings.write_text("\n".join(json.dumps(r) for r in rows))
    metrics = run(
        compose(
            *COMMON,
            "rl=kto",
            f"rl.feedback_path={ratings}",
            "trainer.per_device_train_batch_size=8",
        ),
        tmp_path / "run",
    )
    assert metrics["rl/last_loss"] < metrics["rl/first_loss"]
    assert metrics["rl/reward_margin"] > 0


def test_orpo_lowers_its_loss(tmp_path: Path) -> None:
    metrics = run(
        compose(*COMMON, "rl=orpo", "trainer.per_device_train_batch_size=8"), tmp_path / "run"
    )
    assert metrics["rl/steps"] == 6
    assert metrics["rl/last_loss"] < metrics["rl/first_loss"]
    assert {"rl/reward_margin", "rl/reward_accuracy", "rl/nll_loss"} <= set(metrics)
    _reloads(tmp_path / "run")
