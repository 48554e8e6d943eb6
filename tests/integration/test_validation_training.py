"""SFT validation on the tiny model: eval/loss logged, early stopping on a rising
validation loss, and the best adapter kept (transformers' mechanisms, real training)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from medalign.run import run
from tests import wandb_log
from tests.conftest import compose

pytestmark = pytest.mark.slow


def _stage(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())["stages"][0]


def _shifted_instructions(root: Path) -> Path:
    """Training answers are digit strings; the dev split (`validation.jsonl`) answers in
    words: a validation set from another distribution, so the more the model learns the
    digits, the higher its validation loss."""
    rng = random.Random(0)
    root.mkdir()
    digits = [" ".join(rng.choices("0123456789", k=24)) for _ in range(16)]
    train = [{"instruction": f"Count {i}", "input": "", "output": d} for i, d in enumerate(digits)]
    words = ["zebra", "violet", "quartz", "jungle", "whisky"]
    dev = [
        {"instruction": f"Say {i}", "input": "", "output": " ".join(rng.choices(words, k=8))}
        for i in range(4)
    ]
    for name, rows in (("train", train), ("validation", dev)):
        (root / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def test_patience_one_stops_on_a_rising_validation_loss_and_keeps_the_best(
    tmp_path: Path,
) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "run"
    metrics = run(
        compose(
            "stage=sft",
            "dataset=instructions",
            f"dataset.path={_shifted_instructions(tmp_path / 'data')}",
            "logger=none",
            "lora.modules_to_save=[lm_head]",  # the tiny model learns the digits in a few steps
            "trainer.max_steps=8",
            "trainer.per_device_train_batch_size=4",
            "trainer.learning_rate=3e-2",
            "trainer.lr_scheduler_type=constant",
            "trainer.logging_steps=1",
            "trainer.eval_steps=1",
            "trainer.early_stopping_patience=1",
        ),
        out,
    )
    v = _stage(out)["validation"]
    assert v["source"] == {"instructions": "split:validation"} and v["rows"] == 4
    losses = dict((step, loss) for step, loss in v["losses"])
    assert metrics["train/steps"] < 8 and v["stopped_early"] is True  # it stopped
    last = max(losses)
    assert losses[last] > v["best_loss"] == min(losses.values())  # on a rise
    assert metrics["train/loss"] < metrics["train/first_loss"]  # while training improved
    assert metrics["eval/best_loss"] == v["best_loss"] and v["kept"] == "best"
    # the adapter kept is the best checkpoint's, not the last step's
    best = v["best_step"]
    assert best < last
    kept = load_file(out / "adapter" / "adapter_model.safetensors")
    saved = load_file(out / "checkpoints" / f"checkpoint-{best}" / "adapter_model.safetensors")
    assert kept.keys() == saved.keys()
    assert all((kept[k] == saved[k]).all() for k in kept)
    assert not (out / "checkpoints" / f"checkpoint-{last}").exists()  # saved only on a best


def test_validation_loss_is_logged_every_n_steps_on_held_out_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    metrics = run(
        compose(
            "stage=medqa",
            "logger=wandb",
            "trainer.max_steps=6",
            "trainer.per_device_train_batch_size=4",
            "trainer.logging_steps=1",
            "trainer.eval_steps=2",
            "trainer.validation_fraction=0.25",
        ),
        out,
    )
    stage = _stage(out)
    v = stage["validation"]
    assert v["source"] == {"medqa": "fraction:0.25"} and v["rows"] == 6
    assert stage["data"]["rows"] == 18  # the 24 example rows less the held-out 6
    assert [step for step, _ in v["losses"]] == [2, 4, 6] and v["stopped_early"] is False
    assert v["kept"] == "last" and metrics["train/steps"] == 6
    wandb_file = next(out.glob("wandb/offline-run-*/*.wandb"))
    for _ in range(60):  # W&B's service may still be writing the offline file
        logged = [row["eval/loss"] for row in wandb_log.history(wandb_file) if "eval/loss" in row]
        if len(logged) >= len(v["losses"]):
            break
        time.sleep(0.5)
    assert logged == pytest.approx([loss for _, loss in v["losses"]])
