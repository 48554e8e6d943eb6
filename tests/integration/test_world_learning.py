"""The learning claims on the synthetic world (issue 22), each a paired test that fails
when the learning it claims is broken (a learning rate of 1e-8, or a model that never read
the textbook).

Default suite: a small world (24 diseases, model=world_small with no pretraining, so no
textbook to read first): the PubMedQA stage teaches its format, reading the abstract's
result. Slow: the full world (model=world, pretrained once on its textbook and cached in
the user's cache, as `make curriculum` leaves it): MedMCQA SFT recalls held-out facts the
model has only read, a model that has not read them cannot, a later stage makes the model
forget, replay reduces the forgetting, and GRPO raises the correctness it is rewarded for
(not at lr 1e-8).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from medalign.compare.stats import paired_test
from medalign.run import run
from tests.conftest import compose


def _by_dataset(folder: Path, dataset: str) -> dict[str, float]:
    """Each question's accuracy on `dataset` in the run's predictions.jsonl, by id."""
    rows = (folder / "eval" / "predictions.jsonl").read_text().splitlines()
    return {r["id"]: r["scores"]["acc"] for r in map(json.loads, rows) if r["dataset"] == dataset}


def _paired(base: dict[str, float], other: dict[str, float]) -> dict:
    assert base.keys() == other.keys() and base
    ids = sorted(base)
    return paired_test(np.array([base[i] for i in ids]), np.array([other[i] for i in ids]))


# -- default suite: a stage teaches its format ---------------------------------------------
SMALL = [
    *("experiment=world", "model=world_small", "model.world.pretrain_steps=0"),
    *("logger=none", "eval.datasets=[pubmedqa]"),
]
# 40 steps of 8 (the curriculum's PubMedQA stage: 60 of 16): the small world's reading is
# learned as well (+0.625, p < 1e-7, n 48, on 2026-12-03) at a third of the training time
SMALL_SFT = [
    *(*SMALL, "stage=pubmedqa", "eval.after_train=true"),
    *("trainer.max_steps=40", "trainer.per_device_train_batch_size=8"),
]


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    root = tmp_path_factory.mktemp("small_world")
    plans = {
        "before": [*SMALL, "stage=eval"],
        "sft": SMALL_SFT,
        "sft_lr_broken": [*SMALL_SFT, "trainer.learning_rate=1e-8"],
    }
    out = {}
    for name, overrides in plans.items():
        run(compose(*overrides), root / name)
        out[name] = _by_dataset(root / name, "pubmedqa")
    return out


def test_the_pubmedqa_stage_teaches_reading_the_abstract(small_runs) -> None:
    """Held-out abstracts: the answer follows from the result sentence, and the stage
    learns to read it (a significant paired gain, n = 48)."""
    test = _paired(small_runs["before"], small_runs["sft"])
    assert test["n"] == 48
    assert test["diff"] > 0.3 and test["p"] < 0.001, test


def test_a_broken_learning_rate_teaches_nothing(small_runs) -> None:
    """The same test on a stage that cannot learn (lr 1e-8): not significant."""
    test = _paired(small_runs["before"], small_runs["sft_lr_broken"])
    assert abs(test["diff"]) < 0.05 and test["p"] > 0.05, test


# -- slow: knowledge, forgetting and replay on the full world ------------------------------
FULL = ["experiment=world", "logger=none", "eval.datasets=[medmcqa,pubmedqa]"]
FULL_SFT = [*FULL, "stage=medmcqa", "eval.after_train=true"]


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory: pytest.TempPathFactory):
    """The world model from the user's cache (built there once, about 10 min, if absent)."""
    saved = os.environ["MEDALIGN_CACHE"]
    os.environ["MEDALIGN_CACHE"] = str(Path.home() / ".cache" / "medalign")
    root = tmp_path_factory.mktemp("full_world")
    try:
        plans = {
            "before": ([*FULL, "stage=eval"], None),
            "sft": (FULL_SFT, None),
            "sft_lr_broken": ([*FULL_SFT, "trainer.learning_rate=1e-8"], None),
            "unread_sft": ([*FULL_SFT, "model.world.pretrain_steps=0"], None),
        }
        for name, (overrides, _) in plans.items():
            run(compose(*overrides), root / name)
        for name, replay in (("curriculum", 0.0), ("replay", 0.5)):
            overrides = [
                *FULL,
                "curriculum.order=[pubmedqa,medmcqa]",
                f"curriculum.replay={replay}",
            ]
            run(compose(*overrides), root / name, overrides=overrides)  # each stage composes them
        yield root
    finally:
        os.environ["MEDALIGN_CACHE"] = saved


@pytest.mark.slow
def test_sft_recalls_held_out_facts_the_model_has_only_read(full_runs: Path) -> None:
    test = _paired(
        _by_dataset(full_runs / "before", "medmcqa"), _by_dataset(full_runs / "sft", "medmcqa")
    )
    assert test["n"] == 600
    assert test["diff"] > 0.3 and test["p"] < 0.001, test
    broken = _paired(
        _by_dataset(full_runs / "before", "medmcqa"),
        _by_dataset(full_runs / "sft_lr_broken", "medmcqa"),
    )
    assert broken["p"] > 0.05, broken


@pytest.mark.slow
def test_without_the_textbook_there_is_nothing_to_recall(full_runs: Path) -> None:
    unread = _by_dataset(full_runs / "unread_sft", "medmcqa")
    assert np.mean(list(unread.values())) < 0.35
    test = _paired(unread, _by_dataset(full_runs / "sft", "medmcqa"))
    assert test["diff"] > 0.3 and test["p"] < 0.001, test


@pytest.mark.slow
def test_a_later_stage_forgets_and_replay_keeps_it(full_runs: Path) -> None:
    """PubMedQA, learned first, drops significantly during the MedMCQA stage; with
    curriculum.replay=0.5 the final model keeps significantly more of it."""
    plain, replay = full_runs / "curriculum", full_runs / "replay"
    learned = _by_dataset(plain / "1-pubmedqa", "pubmedqa")
    forgot = _paired(learned, _by_dataset(plain / "2-medmcqa", "pubmedqa"))
    assert forgot["diff"] < 0 and forgot["p"] < 0.001, forgot
    kept = _paired(
        _by_dataset(plain / "2-medmcqa", "pubmedqa"), _by_dataset(replay / "2-medmcqa", "pubmedqa")
    )
    assert kept["diff"] > 0 and kept["p"] < 0.001, kept


# -- slow: GRPO raises the reward it optimizes, on the full world ------------------------
def _after_medmcqa(factory: pytest.TempPathFactory, stage: str, sft: str = "medmcqa"):
    """SFT (`sft`: MedMCQA, or stages in order such as "medmcqa,medqa") then `stage`
    with experiment=world's settings, and the same with that stage's learning rate at
    1e-8, in the user's cache's world model. Yields {stage: metrics, stage_lr_broken:
    metrics}."""
    saved = os.environ["MEDALIGN_CACHE"]
    os.environ["MEDALIGN_CACHE"] = str(Path.home() / ".cache" / "medalign")
    root = factory.mktemp(f"world_{stage}")
    base = [
        *("experiment=world", "logger=none", "eval.datasets=[medmcqa]"),
        *(f"curriculum.order=[{sft},{stage}]", "curriculum.eval_before=false"),
    ]
    try:
        out = {}
        broken = [f"curriculum.stages.{stage}.learning_rate=1e-8"]
        for name, extra in ((stage, []), (f"{stage}_lr_broken", broken)):
            overrides = [*base, *extra]
            run(compose(*overrides), root / name, overrides=overrides)
            manifest = json.loads((root / name / "manifest.json").read_text())
            out[name] = next(s for s in manifest["stages"] if s["name"] == stage)["metrics"]
        yield out
    finally:
        os.environ["MEDALIGN_CACHE"] = saved


@pytest.fixture(scope="module")
def grpo_runs(tmp_path_factory: pytest.TempPathFactory):
    """GRPO where the curriculum runs it, after the MedMCQA and MedQA stages, and at lr
    1e-8: each rl stage's metrics. Right after MedMCQA SFT the policy already answers
    84% of its MedMCQA prompts right at temperature 0.7 (textbook v2): too near the
    ceiling for 60 steps to move it significantly (0.844 -> 0.924, p 0.078); after the
    MedQA stage, which makes it forget part of them, there is room (0.307 -> 0.635)."""
    yield from _after_medmcqa(tmp_path_factory, "rl", sft="medmcqa,medqa")


@pytest.mark.slow
def test_grpo_raises_the_correctness_it_is_rewarded_for(grpo_runs) -> None:
    """The mean correctness reward of GRPO's last fifth of steps is significantly above its
    first fifth (Welch's p, as the run reports it; each fifth is one pass over the same
    prompts); at lr 1e-8 the policy does not move and neither does the reward."""
    m = grpo_runs["rl"]
    first, last = m["reward/correctness_first_fifth"], m["reward/correctness_last_fifth"]
    assert last > first and m["reward/correctness_fifths_p"] < 0.05, m
    broken = grpo_runs["rl_lr_broken"]
    assert broken["reward/correctness_fifths_p"] > 0.05, broken
    gain = broken["reward/correctness_last_fifth"] - broken["reward/correctness_first_fifth"]
    assert abs(gain) < last - first, broken


# -- slow: the reward models rank held-out pairs, neither at chance nor trivially ---------
@pytest.fixture(scope="module")
def reward_runs(tmp_path_factory: pytest.TempPathFactory):
    """Both reward models after MedMCQA SFT, at lr 1e-8, and (`unread`) on the world model
    that read nothing and was taught nothing: each reward stage's metrics."""
    runs = _after_medmcqa(tmp_path_factory, "reward")
    out = next(runs)  # while it is suspended, MEDALIGN_CACHE is the user's cache
    try:
        folder = tmp_path_factory.mktemp("world_reward_unread")
        overrides = [
            *("experiment=world", "logger=none", "stage=reward"),
            *("model.world.pretrain_steps=0", "trainer.max_steps=40"),  # the curriculum's 40
        ]
        run(compose(*overrides), folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        out["unread"] = manifest["stages"][0]["metrics"]
        yield out
    finally:
        runs.close()  # its finally restores MEDALIGN_CACHE


@pytest.mark.slow
def test_reward_models_rank_unseen_pairs_above_chance_and_learn_it(reward_runs) -> None:
    """Helpfulness (on-policy negatives: not all right) and the world's harmful-request
    pairs (both sides the same refusal with the two drugs swapped; right after MedMCQA
    SFT on those diseases the model may rank them all right) are ranked significantly
    above chance on held-out pairs, and significantly better than at lr 1e-8 (a random
    head can prefer one side of every pair alike, so "at chance" is not that control's
    test). The harmful pairs are a knowledge test: on a model that knows nothing of the
    world they are at chance, and significantly below the taught model."""
    from medalign.reports.reward_models import reward_model_rows

    rows = {(r["objective"], r["kind"]): r for r in reward_model_rows(reward_runs["reward"])}
    for key in (("helpfulness", "all"), ("safety", "harmful")):
        assert rows[key]["p_chance"] < 0.01, rows[key]
    assert rows[("helpfulness", "all")]["accuracy"] < 1.0, rows  # on-policy: no template
    broken = {
        (r["objective"], r["kind"]): r for r in reward_model_rows(reward_runs["reward_lr_broken"])
    }
    from scipy.stats import fisher_exact

    def better(a: dict, b: dict) -> None:
        right = [round(r["accuracy"] * r["n"]) for r in (a, b)]
        table = [[right[0], a["n"] - right[0]], [right[1], b["n"] - right[1]]]
        assert right[0] / a["n"] > right[1] / b["n"], (a, b)
        assert fisher_exact(table).pvalue < 0.05, (a, b)

    for key in (("helpfulness", "all"), ("safety", "harmful")):
        better(rows[key], broken[key])
    # Which side of a harmful pair is safe is a fact to know: a model that knows none of
    # the world ranks them at chance (no cue in the text: the textbook names both drugs
    # equally often, so neither is the tokenizer's shorter name), the taught one does not.
    unread = {(r["objective"], r["kind"]): r for r in reward_model_rows(reward_runs["unread"])}
    control = unread[("safety", "harmful")]
    assert control["accuracy"] <= 0.5 or control["p_chance"] > 0.05, control
    better(rows[("safety", "harmful")], unread[("safety", "harmful")])
