"""KTO and ORPO without training: registered, their TRL configs and dataset shapes, the
thumbs-up/down file, and the start-up refusals (no model loaded)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from medalign import registry
from medalign.checks import check_components
from medalign.config import validate
from medalign.errors import MedalignError
from tests.conftest import compose


@pytest.fixture(scope="module")
def kto():
    return validate(compose("stage=rl", "rl=kto"))


def _with(cfg, reward: dict | None = None, trainer: dict | None = None, **rl):
    return dataclasses.replace(
        cfg,
        rl=dataclasses.replace(cfg.rl, **rl),
        reward=dataclasses.replace(cfg.reward, **(reward or {})),
        trainer=dataclasses.replace(cfg.trainer, **(trainer or {})),
    )


def test_kto_and_orpo_are_registered_next_to_dpo(kto) -> None:
    assert {"grpo", "rloo", "dpo", "kto", "orpo"} <= set(registry.names("rl_algorithm"))
    assert (kto.rl.algorithm, kto.rl.name, kto.rl.beta) == ("kto", "kto", 0.1)
    check_components(kto)  # the default reward datasets build pairs


def test_the_pairs_unpaired_and_each_trainer_config(kto, tmp_path: Path) -> None:
    import warnings

    from trl import KTOConfig

    with warnings.catch_warnings():  # "You are importing from 'trl.experimental'"
        warnings.simplefilter("ignore")
        from trl.experimental.orpo import ORPOConfig

    from medalign.outputs import RunDir
    from medalign.rewards.feedback import unpaired_rows
    from medalign.rewards.pairs import pair
    from medalign.stages.common import build_config, trainer_args
    from medalign.tracking import Tracker

    pairs = [pair(f"Q{i}?", f"good {i}", f"bad {i}", "test", "unit") for i in range(3)]
    rows = unpaired_rows(pairs, seed=0)
    assert len(rows) == 6 and sorted(r["label"] for r in rows) == [False] * 3 + [True] * 3
    for p in pairs:  # each pair gives one desirable and one undesirable row, same prompt
        mine = {
            r["completion"][0]["content"]: r["label"] for r in rows if r["prompt"] == p["prompt"]
        }
        assert mine == {p["chosen"][0]["content"]: True, p["rejected"][0]["content"]: False}
    assert rows[0]["completion"][0]["role"] == "assistant"  # TRL's conversational shape
    common = trainer_args(kto, RunDir(tmp_path), Tracker())
    kto_args = build_config(KTOConfig, kto, common, beta=0.1, max_length=64)
    assert kto_args.beta == 0.1 and kto_args.train_sampling_strategy == "sequential"
    orpo_args = build_config(ORPOConfig, kto, common, beta=0.2, max_length=64)
    assert orpo_args.beta == 0.2 and orpo_args.learning_rate == kto.trainer.learning_rate


def test_thumbs_up_down_rows_are_read_and_bad_rows_named(tmp_path: Path) -> None:
    from medalign.rewards.feedback import load_feedback

    good = tmp_path / "ratings.jsonl"
    good.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"prompt": "Is 150/95 high?", "completion": "Yes, above 140/90.", "label": "up"},
                {"prompt": "Is 150/95 high?", "completion": "No, it is fine.", "label": False},
                {"prompt": "Dose?", "completion": "Ask your doctor.", "label": 1},
            ]
        )
    )
    rows = load_feedback(str(good))
    assert [r["label"] for r in rows] == [True, False, True]
    assert rows[0]["prompt"] == [{"role": "user", "content": "Is 150/95 high?"}]
    bad = tmp_path / "bad.jsonl"
    meh = {"prompt": "x", "completion": "y", "label": "meh"}
    bad.write_text(
        json.dumps({"prompt": "x", "completion": "y", "label": True}) + "\n" + json.dumps(meh)
    )
    with pytest.raises(
        MedalignError, match=r"bad.jsonl, row 2, field 'label': 'meh' is not a rating"
    ):
        load_feedback(str(bad))
    bad.write_text(json.dumps({"prompt": "x", "label": True}) + "\n{}")
    with pytest.raises(MedalignError, match=r"row 1, field 'completion': missing"):
        load_feedback(str(bad))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"reward": {"datasets": [], "safety_datasets": []}},
            r"rl=kto needs preference data and has none: .*\(empty\).* or thumbs-up/down rows",
        ),
        (
            {"reward": {"datasets": ["instructions"], "safety_datasets": []}},
            r"rl=kto needs preference data and has none: .*\(instructions\)",
        ),
        ({"feedback_path": "/nowhere/ratings.jsonl"}, r"rl.feedback_path: file not found"),
        ({"algorithm": "orpo", "feedback_path": "x.jsonl"}, r"train KTO only \(rl=kto\)"),
        ({"trainer": {"per_device_train_batch_size": 1}}, r"rl=kto: .*batch_size=1.* >= 2"),
    ],
)
def test_kto_without_usable_preference_data_fails_at_start_up(
    kto, changes: dict, message: str
) -> None:
    with pytest.raises(MedalignError, match=message):
        check_components(_with(kto, **changes))


def test_orpo_without_pairs_fails_and_any_pair_source_is_enough(kto, tmp_path: Path) -> None:
    none = {"datasets": [], "safety_datasets": []}
    with pytest.raises(MedalignError, match=r"rl=orpo needs preference data"):
        check_components(_with(kto, reward=none, algorithm="orpo"))
    ratings = tmp_path / "r.jsonl"
    ratings.write_text("")
    check_components(_with(kto, reward=none, feedback_path=str(ratings)))  # KTO: ratings
    check_components(_with(kto, reward={**none, "pairs_path": "pairs.jsonl"}, algorithm="orpo"))


def test_orpo_log_probabilities_are_not_logged_as_dpo_kto_sums() -> None:
    """TRL's ORPO logs per-token mean log-probabilities; DPO and KTO log sums over the
    answer. The same name for both would make a KTO-vs-ORPO comparison silently wrong."""
    from medalign.stages.rl_algorithms import preference_logger
    from medalign.tracking import Tracker

    logs = {"logps/chosen": -0.5, "logps/rejected": -0.9, "rewards/chosen": -0.05}
    summed, per_token = preference_logger(Tracker()), preference_logger(Tracker(), "orpo")
    summed.on_log(None, None, None, logs=logs)
    per_token.on_log(None, None, None, logs=logs)
    assert summed.history[-1]["rl/chosen_logp"] == -0.5
    assert per_token.history[-1] == {
        "rl/chosen_logp_per_token": -0.5,
        "rl/rejected_logp_per_token": -0.9,
        "rl/chosen_reward": -0.05,
    }
