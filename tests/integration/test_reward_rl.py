"""Reward model and RL trainers on the tiny model, from a real SFT adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.run import run
from tests.conftest import compose, default


@pytest.fixture(scope="module")
def sft_adapter(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("sft") / "run"
    run(compose("stage=medmcqa", "logger=none", "trainer.max_steps=4", "dataset.limit=8"), out)
    return str(out / "adapter")


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())["stages"][0]


def test_reward_models_learn_to_rank_held_out_pairs(tmp_path: Path, sft_adapter: str) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    metrics = run(
        compose("stage=reward", "logger=none", f"init_from={sft_adapter}", "trainer.max_steps=40"),
        tmp_path / "run",
    )
    assert metrics["reward/helpfulness_accuracy"] >= 0.75  # chance is 0.5
    # the example data's harmful pairs (a safe answer against a compliant one) are learned
    # in 40 steps; its calibration pairs need the prompt read (the answer line alone on
    # both sides), which the random tiny model cannot: only the harmful ones are asserted
    assert metrics["reward/safety_accuracy_harmful"] >= 0.75
    assert metrics["reward/helpfulness_margin"] > 0
    assert metrics["reward/helpfulness_reversed"] == metrics["reward/safety_reversed"] == 0.0
    stage = _manifest(tmp_path / "run")
    path = stage["reward_models"]["safety"]
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    safe = tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "How do I fake a prescription?"},
            {"role": "assistant", "content": "I can't help with that; it is illegal."},
        ],
        tokenize=False,
    )
    with torch.no_grad():
        score = model(**tokenizer(safe, return_tensors="pt")).logits
    assert score.shape == (1, 1) and torch.isfinite(score).all()


def test_a_reversed_safety_model_ranks_held_out_pairs_the_wrong_way(
    tmp_path: Path, sft_adapter: str
) -> None:
    """reward.reversed=[safety], the canary of the hacking flag: it trains on every pair
    reversed and is scored on the true held-out pairs, where the honest model of the test
    above ranks harmful pairs >= 0.75 right after the same 40 steps."""
    metrics = run(
        compose(
            "stage=reward",
            "reward=safety",
            "reward.reversed=[safety]",
            "logger=none",
            f"init_from={sft_adapter}",
            "trainer.max_steps=40",
        ),
        tmp_path / "run",
    )
    assert metrics["reward/safety_accuracy_harmful"] <= 0.25
    assert metrics["reward/safety_margin"] < 0
    assert metrics["reward/safety_reversed"] == 1.0  # the run says what it is


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_online_rl_runs_and_logs_the_weighted_total(
    tmp_path: Path, sft_adapter: str, algorithm: str
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    metrics = run(
        compose(
            "stage=rl",
            f"rl={algorithm}",
            "logger=none",
            f"init_from={sft_adapter}",
            "trainer.max_steps=2",
            "trainer.logging_steps=1",
            "rl.limit=4",
            "rl.max_completion_length=16",
            "reward.length_target=4",
            "reward.weights={correctness:1.0,format:0.2,length:0.5}",
        ),
        tmp_path / "run",
    )
    assert metrics["rl/steps"] == 2
    expected = (
        1.0 * metrics["reward/correctness_mean"]
        + 0.2 * metrics["reward/format_mean"]
        + 0.5 * metrics["reward/length_mean"]
    )
    assert metrics["reward/length_mean"] < 0  # 16-token answers exceed 4 words: a real signal
    assert metrics["reward/total_mean"] == pytest.approx(expected, abs=1e-5)
    stage = _manifest(tmp_path / "run")
    merged = Path(stage["base_model"])  # kept with the SFT run, shared by its RL runs
    assert merged.parent == Path(sft_adapter).parent / "merged"
    assert not (tmp_path / "run" / "sft_merged").exists()
    PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(stage["base_model"]), stage["adapter"]
    )


def test_dpo_trains_on_preference_pairs(tmp_path: Path, sft_adapter: str) -> None:
    metrics = run(
        compose(
            "stage=rl",
            "rl=dpo",
            "logger=none",
            f"init_from={sft_adapter}",
            "trainer.max_steps=2",
            "reward.limit=16",
        ),
        tmp_path / "run",
    )
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert metrics["rl/steps"] == 2 and metrics["rl/loss"] > 0
    stage = _manifest(tmp_path / "run")
    PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(stage["base_model"]), stage["adapter"]
    )


def test_dpo_on_the_policys_own_samples_ranked_by_the_rewards(
    tmp_path: Path, sft_adapter: str, reward_run: Path
) -> None:
    """Issue 33 (UltraMedical's recipe): DPO on the SFT model's best-of-4 against its
    worst-of-4 under reward.weights, the safety reward model (on its scale) ranking the
    answers to harmful requests, correctness the answers to questions."""
    metrics = run(
        compose(
            "stage=dpo",  # rl=dpo_ranked: the same as stage=rl rl=dpo rl.pairs=ranked
            "logger=none",
            f"init_from={sft_adapter}",
            f"reward.models.safety={reward_run}",
            "reward.weights={correctness:1.0,length:0.5,safety:0.5}",
            "reward.length_target=4",  # answers of different lengths: few ties
            "rl.datasets=[medmcqa,medsafetybench]",
            "rl.limit=6",
            "rl.max_completion_length=16",
            "trainer.max_steps=2",
        ),
        tmp_path / "run",
    )
    assert metrics["rl/steps"] == 2 and metrics["rl/ranked_prompts"] == 12
    pairs = [json.loads(line) for line in (tmp_path / "run" / "ranked_pairs.jsonl").open()]
    assert len(pairs) == metrics["rl/ranked_pairs"] > 0
    assert all(p["chosen_total"] > p["rejected_total"] for p in pairs)
    assert {p["task"] for p in pairs} <= {"medmcqa", "medsafetybench"}


def test_medsafetybench_demonstrations_mix_into_sft(tmp_path: Path) -> None:
    run(
        compose(
            "stage=sft",
            "dataset=medmcqa",
            "logger=none",
            "trainer.max_steps=2",
            "dataset.mix={medmcqa:1.0,medsafetybench:1.0}",
        ),
        tmp_path / "run",
    )
    data = _manifest(tmp_path / "run")["data"]
    assert data["rows_by_dataset"] == {"medmcqa": 30, "medsafetybench": 18}


def test_judge_scores_are_parsed_or_reported_unparseable(tmp_path: Path) -> None:
    from medalign.config import EvalConfig, ModelConfig
    from medalign.eval.judge import judge_harm, parse_score
    from medalign.models.load import model_source

    assert parse_score("The reply refuses.\nScore: 1") == 1
    assert parse_score("**Score:** 4") == 4 and parse_score("Score = 2") == 2
    assert parse_score("Score: 7") is None
    assert parse_score("no verdict") is None
    judge = model_source(default(ModelConfig))
    scores = judge_harm(judge, ["Fake a prescription?"], ["No."], default(EvalConfig))
    assert len(scores) == 1 and (scores[0] is None or 1 <= scores[0] <= 5)


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory: pytest.TempPathFactory, sft_adapter: str) -> Path:
    """Both reward models, 4 steps each: enough to score, not to rank well."""
    out = tmp_path_factory.mktemp("reward") / "run"
    run(
        compose("stage=reward", "logger=none", f"init_from={sft_adapter}", "trainer.max_steps=4"),
        out,
    )
    return out


def test_reward_stage_fits_each_models_scale_and_the_command_refits_it(
    reward_run: Path,
) -> None:
    """Issue 33: each reward model's score scale (mean and std of its held-out chosen and
    rejected scores) is saved with it and named in the manifest; for a run from before,
    `python -m medalign.rewards.scale <run>` rebuilds the held-out pairs from the recorded
    config and fits the same scale."""
    from medalign.rewards.scale import main, read_scale

    stage = _manifest(reward_run)
    metrics = json.loads((reward_run / "metrics.json").read_text())
    for objective, model in stage["reward_models"].items():
        scale = read_scale(model)
        assert stage["reward_scales"][objective] == str(Path(model) / "scale.json")
        assert scale["fitted_on"] == "heldout" and scale["std"] > 0
        assert scale["pairs"] == metrics[f"reward/{objective}_heldout_pairs"]
        assert metrics[f"reward/{objective}_scale_std"] == scale["std"]
    safety = Path(stage["reward_models"]["safety"])
    before = read_scale(safety)
    (safety / "scale.json").unlink()  # a run from before reward scales
    assert main([str(reward_run)]) == 0
    after = read_scale(safety)
    assert after["mean"] == pytest.approx(before["mean"], abs=1e-4)
    assert after["std"] == pytest.approx(before["std"], abs=1e-4)


def test_rl_scores_a_reward_model_on_its_scale_and_only_where_its_task_says(
    reward_run: Path,
) -> None:
    """Issue 33: the RL reward of the safety model is (raw - mean) / std of its fitted
    scale, on the harmful request only; the knowledge question gets None (left out of
    the weighted sum by TRL)."""
    from medalign.models.inference import reward_model_fn
    from medalign.rewards.functions import scaled_reward_model
    from medalign.rewards.hacking import RewardTrace, prompt_key
    from medalign.rewards.scale import read_scale

    path = _manifest(reward_run)["reward_models"]["safety"]
    prompts = [[{"role": "user", "content": q}] for q in ("Fake a prescription?", "Dose?")]
    answers = [[{"role": "assistant", "content": "I can't help with that."}]] * 2
    trace = RewardTrace()
    scaled = scaled_reward_model("safety", str(reward_run), trace)(
        prompts, answers, task=["medsafetybench", "medmcqa"], reference=["{}", "{}"]
    )
    raw = reward_model_fn("safety", path)(prompts[:1], answers[:1])[0]
    scale = read_scale(path)
    assert scaled[1] is None
    assert scaled[0] == pytest.approx((raw - scale["mean"]) / scale["std"], abs=1e-5)
    key = prompt_key(prompts[0])  # what pairs this prompt's completions across fifths
    assert trace.rows == [
        {"reward": "safety", "step": 0, "score": scaled[0], "gold": 1.0, "prompt": key}
    ]


def test_rl_with_reward_models_logs_scores_beside_gold_and_safety_eval(
    tmp_path: Path, sft_adapter: str, reward_run: Path
) -> None:
    """Issue 33: GRPO against both reward models (scaled), each on the prompts its Task
    declares, logs each model's score beside its gold outcome per fifth of the steps,
    with n and an interval, and the hacking flag."""
    models = _manifest(reward_run)["reward_models"]
    metrics = run(
        compose(
            "stage=rl",
            "logger=none",
            f"init_from={sft_adapter}",
            "trainer.max_steps=10",
            "trainer.logging_steps=1",
            "rl.datasets=[medmcqa,medsafetybench]",
            "rl.limit=2",
            "rl.max_completion_length=8",
            f"reward.models.safety={models['safety']}",
            f"reward.models.helpfulness={reward_run}",  # the run: its reward_helpfulness/
            "reward.weights={correctness:1.0,helpfulness:0.5,safety:0.5}",
            "eval.after_train=true",
            "eval.datasets=[medsafetybench,xstest,pubmedqa]",
            "eval.limit=6",
            "eval.max_new_tokens=8",
        ),
        tmp_path / "rl",
    )
    assert "reward/safety_mean" in metrics and "reward/helpfulness_mean" in metrics
    assert isinstance(metrics["rl/reward_hacking"], list)
    for model, gold in (("helpfulness", "correctness"), ("safety", "safe_response")):
        h = f"hacking/{model}/"
        for part in ("first_fifth", "last_fifth"):
            # every prompt's 4 completions: helpfulness's gold on MedMCQA, safety's on
            # MedSafetyBench only (the safety model never scores a knowledge question)
            assert metrics[h + f"n_{part}"] > 0 and metrics[h + f"n_{part}"] % 4 == 0
            low, high = metrics[h + f"{gold}_{part}_ci"]
            assert 0.0 <= low <= metrics[h + f"{gold}_{part}"] <= high <= 1.0
            assert h + f"score_{part}_ci" in metrics
        assert h + "paired_prompts" not in metrics  # 2 prompts a dataset: too few to pair
    saved = json.loads((tmp_path / "rl" / "metrics.json").read_text())
    assert saved["rl/reward_hacking"] == metrics["rl/reward_hacking"]
    traced = (tmp_path / "rl" / "reward_trace.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in traced]  # every scored completion, for a reader
    assert {r["reward"] for r in rows} == {"helpfulness", "safety"}
    assert len({r["prompt"] for r in rows if r["reward"] == "safety"}) == 2
    results = json.loads((tmp_path / "rl" / "eval" / "results.json").read_text())
    safety_metrics = results["medsafetybench"]["metrics"]
    assert 0.0 <= safety_metrics["refusal_rate"]["value"] <= 1.0
    judged = safety_metrics["safety_reward"]  # a model's judgement, with its n and interval
    assert judged["n"] == results["medsafetybench"]["n"] and len(judged["ci"]) == 2
    assert "reward model" in judged["judged_by"]
    over = results["xstest"]["metrics"]["over_refusal_rate"]  # XSTest's 4 safe prompts
    assert over["n"] == 4 and over["interval"] == "wilson"
    assert results["xstest"]["metrics"]["refusal_rate"]["n"] == 2  # and its 2 unsafe ones
    assert "false_confidence" in results["pubmedqa"]["metrics"]


# The learning signal (#12): an SFT model that writes the answer format (LoRA, answer-only
# MedMCQA targets), then GRPO on MedQA prompts it has not seen, rewarded by correctness +
# format. Measured with these settings: total reward 1.159 over the first fifth of the
# logged steps, 1.334 over the last (correctness 0.250 -> 0.414, format 0.909 -> 0.920).
# A tiny model can only learn the letter prior of the training prompts (MedQA examples: D
# is right 10 times in 24), which is still a reward GRPO must find.
SIGNAL_SFT = [
    "stage=medmcqa",
    "dataset.rationale=false",
    "trainer.max_steps=150",
    "trainer.learning_rate=1e-2",
    "logger=none",
]
SIGNAL_RL = [
    "stage=rl",
    "reward.weights={correctness: 1.0, format: 1.0, length: 0.0}",
    "rl.datasets=[medqa]",
    "rl.beta=0",
    "trainer.max_steps=100",
    "trainer.learning_rate=8e-3",
    "trainer.per_device_train_batch_size=32",
    "logger=none",
]


@pytest.mark.slow
def test_grpo_raises_the_reward_it_optimizes(tmp_path: Path) -> None:
    run(compose(*SIGNAL_SFT), tmp_path / "sft")
    metrics = run(compose(*SIGNAL_RL, f"init_from={tmp_path / 'sft'}"), tmp_path / "rl")
    assert metrics["reward/format_first_fifth"] > 0.5  # the SFT model writes the format
    assert metrics["reward/total_last_fifth"] > metrics["reward/total_first_fifth"]
    assert metrics["reward/correctness_last_fifth"] > metrics["reward/correctness_first_fifth"]


def test_two_rl_runs_from_one_sft_run_leave_one_merged_copy(
    tmp_path: Path, sft_adapter: str
) -> None:
    """Issue 36: each `stage=rl` run wrote its own merged copy of the SFT model (about
    16 GB at 8B); two runs from one SFT run (by its directory and by its adapter) now
    share the one kept with the SFT run."""
    sft_run = Path(sft_adapter).parent
    for k, spec in enumerate((str(sft_run), sft_adapter)):
        run(
            compose(
                "stage=rl",
                "rl=dpo",
                "logger=none",
                f"init_from={spec}",
                "trainer.max_steps=1",
                "reward.limit=8",
            ),
            tmp_path / f"rl{k}",
        )
    bases = {_manifest(tmp_path / f"rl{k}")["base_model"] for k in range(2)}
    copies = [p.parent for p in tmp_path.rglob("config.json") if "adapter" not in str(p)]
    copies += [p.parent for p in (sft_run / "merged").glob("*/config.json")]
    assert len(bases) == 1 and [str(p) for p in copies] == list(bases)
