"""The learning claims on the synthetic world (issue 22), each a paired test that fails
when the learning it claims is broken: a small world (40 diseases, model=world_small), its
model pretrained once per test session through the real stage=pretrain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medalign.compare.stats import paired_test
from medalign.run import run
from tests.conftest import compose

pytestmark = pytest.mark.xdist_group("world")  # one worker builds the small world's model

WORLD = ["experiment=world", "model=world_small", "logger=none", "eval.datasets=[medmcqa]"]
SFT = [*WORLD, "stage=medmcqa", "eval.after_train=true", "trainer.max_steps=80"]


def _accuracy(run_dir: Path) -> dict[str, float]:
    rows = (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()
    return {r["id"]: r["scores"]["acc"] for r in map(json.loads, rows)}


def _paired(base: dict[str, float], other: dict[str, float]) -> dict:
    assert base.keys() == other.keys()
    ids = sorted(base)
    return paired_test(np.array([base[i] for i in ids]), np.array([other[i] for i in ids]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    root = tmp_path_factory.mktemp("world_runs")
    plans = {
        "before": [*WORLD, "stage=eval"],
        "sft": SFT,
        "sft_lr_broken": [*SFT, "trainer.learning_rate=1e-8"],
        "unread_before": [*WORLD, "stage=eval", "model.world.pretrain_steps=0"],
        "unread_sft": [*SFT, "model.world.pretrain_steps=0"],
    }
    out = {}
    for name, overrides in plans.items():
        run(compose(*overrides), root / name)
        out[name] = _accuracy(root / name)
    return out


def test_sft_teaches_the_format_and_the_model_recalls_held_out_facts(runs) -> None:
    """MedMCQA SFT on the training diseases raises accuracy on the held-out ones, whose
    facts the model has only read: a significant paired gain over the pretrained model."""
    test = _paired(runs["before"], runs["sft"])
    assert test["n"] == 80
    assert test["diff"] > 0.2 and test["p"] < 0.001, test


def test_a_broken_learning_rate_teaches_nothing(runs) -> None:
    """The same test on a stage that cannot learn (lr 1e-8): no difference."""
    test = _paired(runs["before"], runs["sft_lr_broken"])
    assert abs(test["diff"]) < 0.05 and test["p"] > 0.05, test


def test_without_pretraining_the_facts_are_not_there_to_recall(runs) -> None:
    """The same SFT on the same architecture that never read the textbook: at chance on
    held-out diseases, and significantly below the model that read it."""
    unread = np.mean(list(runs["unread_sft"].values()))
    assert unread < 0.4, unread
    test = _paired(runs["unread_sft"], runs["sft"])
    assert test["diff"] > 0.2 and test["p"] < 0.001, test
