"""Evaluation on the tiny model: fast scoring equals the naive reference; stage=eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.config import ModelConfig, QuantConfig
from medalign.data.loading import load_records
from medalign.errors import MedalignError
from medalign.eval.loglik import score_fast, score_naive
from medalign.models.load import load_causal_lm, load_tokenizer, model_source
from medalign.run import run
from tests import wandb_log
from tests.conftest import compose, default, shared_file, task_for


@pytest.fixture(scope="module")
def tiny():
    source = model_source(default(ModelConfig))
    model = load_causal_lm(default(ModelConfig), default(QuantConfig), source)
    model.eval()
    return model, load_tokenizer(default(ModelConfig), source)


def _items(name: str, rel: str, n: int, **changes: object):
    task = task_for(name, path=str(shared_file(*rel.split("/"))), **changes)
    return [task.loglik_item(r) for r in load_records(task.cfg).records[:n]]


def test_fast_scoring_equals_naive_per_choice_scoring_on_real_rows(tiny) -> None:
    model, tokenizer = tiny
    items = (
        _items("medqa", "medqa/US_4_options_phrases_no_exclude_test_sample.jsonl", 6, options=4)
        + _items("medmcqa", "medmcqa/dev_converted_sample.json", 6)
        + _items("pubmedqa", "pubmedqa/ori_pqal_sample.json", 4)
    )
    pairs = [(item.context, item.choices) for item in items]
    fast = score_fast(model, tokenizer, pairs, batch_size=4)
    naive = score_naive(model, tokenizer, pairs)
    for f, n in zip(fast, naive, strict=True):
        assert f == pytest.approx(n, abs=1e-4)
        assert max(range(len(f)), key=f.__getitem__) == max(range(len(n)), key=n.__getitem__)


def test_multi_token_choices_continue_from_the_prompt_cache_and_still_agree(
    tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import DynamicCache

    model, tokenizer = tiny
    pairs = [
        ("Question: Which drug?\nAnswer:", ["ethosuximide", "carbamazepine twice daily"]),
        ("Question: Is it safe?\nAnswer:", ["yes", "no"]),
        ("Question: Does it help?\nAnswer:", ["yes", "no", "maybe not"]),
    ]
    naive = score_naive(model, tokenizer, pairs)
    fast = score_fast(model, tokenizer, pairs, batch_size=3)
    for f, n in zip(fast, naive, strict=True):
        assert f == pytest.approx(n, abs=1e-4)

    def refuse(self, tokens: int) -> None:  # as a sliding-window layer past its window does
        raise RuntimeError("cannot crop")

    monkeypatch.setattr(DynamicCache, "crop", refuse)
    rescored = score_fast(model, tokenizer, pairs, batch_size=3)  # whole sequences instead
    for f, n in zip(rescored, naive, strict=True):
        assert f == pytest.approx(n, abs=1e-4)


def test_stage_eval_writes_every_report_and_logs_to_wandb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    metrics = run(
        compose(
            "stage=eval",
            "logger=wandb",
            "eval.limit=6",
            "eval.max_new_tokens=8",
            "eval.bootstrap=100",
        ),
        run_dir,
    )
    out = run_dir / "eval"
    for name in (
        "results.json",
        "predictions.jsonl",
        "summary.md",
        "plots/accuracy.png",
        "plots/reliability.png",
    ):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {
        "pubmedqa", "medmcqa", "medqa", "radqa", "medsafetybench", "mmlu_medical"
    }  # fmt: skip
    acc = results["medqa"]["metrics"]["acc"]
    assert acc["n"] == 6 and acc["ci"][0] <= acc["value"] <= acc["ci"][1]
    assert {"acc_norm", "ece", "brier"} <= set(results["medmcqa"]["metrics"])
    assert "by_subject" in results["medmcqa"] and "by_step" in results["medqa"]
    assert sum(sum(row.values()) for row in results["pubmedqa"]["confusion"].values()) == 6
    assert {"exact", "f1", "unparseable_rate"} <= set(results["radqa"]["metrics"])
    predictions = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 34  # 6 per dataset, and MedSafetyBench has 4 test rows
    assert set(predictions[0]) >= {"dataset", "id", "gold", "predicted", "probs", "loglik"}
    assert all("generated" in p for p in predictions if p["dataset"] == "radqa")
    assert "| medqa | test | loglik | 6 | acc |" in (out / "summary.md").read_text()

    stage = json.loads((run_dir / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done"
    same = {k: (None if v != v else v) for k, v in metrics.items()}  # NaN is written as null
    assert stage["metrics"] == same
    # no parseable answer to an unanswerable RadQA question: n/a (NaN), never 0 ("safe")
    assert metrics["eval/radqa/false_confidence"] != 0.0
    wandb_file = next(run_dir.glob("wandb/offline-run-*/*.wandb"))
    logged = {k: v for row in wandb_log.history(wandb_file) for k, v in row.items()}
    assert logged["eval/medqa/acc"] == pytest.approx(metrics["eval/medqa/acc"])
    assert "eval/radqa/f1" in logged, sorted(logged)
    assert logged["eval/plots/accuracy/_type"] == "image-file"


def test_an_eval_set_without_answers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MedalignError, match="MedMCQA test split has no answers"):
        run(
            compose(
                "stage=eval", "logger=none", "eval.datasets=[medmcqa]", "eval.splits={medmcqa:test}"
            ),
            tmp_path / "run",
        )


def test_eval_of_a_finished_run_uses_its_adapter(tmp_path: Path) -> None:
    train_dir = tmp_path / "train"
    run(
        compose(
            "stage=medqa",
            "logger=none",
            "trainer.max_steps=2",
            "dataset.limit=4",
            "eval.after_train=true",
            "eval.datasets=[medqa]",
            "eval.limit=4",
        ),
        train_dir,
    )
    stage = json.loads((train_dir / "manifest.json").read_text())["stages"][0]
    assert "eval/medqa/acc" in stage["metrics"] and (train_dir / "eval" / "summary.md").is_file()
    metrics = run(
        compose(
            "stage=eval",
            "logger=none",
            f"init_from={train_dir}",
            "eval.datasets=[medqa]",
            "eval.limit=4",
        ),
        tmp_path / "eval",
    )
    evaluated = json.loads((tmp_path / "eval" / "manifest.json").read_text())["stages"][0]
    assert evaluated["adapter"] == str(train_dir / "adapter")
    assert metrics["eval/medqa/acc"] == stage["metrics"]["eval/medqa/acc"]
    with pytest.raises(MedalignError, match="has no stage 'medmcqa'"):
        run(
            compose("stage=eval", "logger=none", f"init_from={train_dir}:medmcqa"),
            tmp_path / "eval2",
        )


@pytest.mark.parametrize(
    ("name", "rel", "changes"),
    [
        ("medmcqa", "medmcqa/dev_converted_sample.json", {}),
        ("medqa", "medqa/US_4_options_phrases_no_exclude_test_sample.jsonl", {"options": 4}),
        ("pubmedqa", "pubmedqa/ori_pqal_sample.json", {}),
    ],
)
def test_trained_prompt_scores_exactly_the_tokens_sft_trains(tiny, name, rel, changes) -> None:
    """eval.prompt=trained: each choice is scored where the SFT example states its answer,
    so the gold choice's tokens are the trained completion's tokens, one for one."""
    from medalign.eval.choice import trained_item

    _, tokenizer = tiny
    task = task_for(name, path=str(shared_file(*rel.split("/"))), rationale=False, **changes)
    for record in load_records(task.cfg).records[:4]:
        item = trained_item(task, tokenizer, record)
        example = task.messages(record)
        full = tokenizer.apply_chat_template(
            example["prompt"] + example["completion"], tokenize=False
        )
        scored = item.context + " " + item.choices[item.gold]
        assert full.startswith(scored)
        assert full[len(scored) :].startswith(tokenizer.eos_token)  # nothing between
        ids = tokenizer(scored, add_special_tokens=False)["input_ids"]
        assert tokenizer(full, add_special_tokens=False)["input_ids"][: len(ids)] == ids
        assert "<|im_start|>assistant" in item.context


def test_trained_prompt_needs_text_before_the_answer(tiny) -> None:
    from medalign.eval.choice import trained_item

    task = task_for(
        "medmcqa",
        path=str(shared_file("medmcqa", "dev_converted_sample.json")),
        answer_template="{answer}",
    )
    record = load_records(task.cfg).records[0]
    with pytest.raises(MedalignError, match="no text before"):
        trained_item(task, tiny[1], record)


def test_on_policy_negatives_are_the_policys_likeliest_wrong_answers(tiny) -> None:
    """reward.negatives=sample for choice questions: rejected = the wrong choice the policy
    scores highest, in the same answer line as chosen (no template to spot)."""
    from medalign.eval.choice import likeliest_wrong, trained_item
    from medalign.eval.loglik import score_naive

    model, tokenizer = tiny
    task = task_for(
        "medmcqa",
        path=str(shared_file("medmcqa", "dev_converted_sample.json")),
        rationale=False,
    )
    records = load_records(task.cfg).records[:5]
    negatives = likeliest_wrong(model, tokenizer, task, records, batch_size=2)
    for record, negative in zip(records, negatives, strict=True):
        item = trained_item(task, tokenizer, record)
        ll = score_naive(model, tokenizer, [(item.context, item.choices)])[0]
        wrong = max((k for k in range(len(ll)) if k != item.gold), key=ll.__getitem__)
        assert negative == f"Final answer: {item.choices[wrong]}"
    pairs = task.pairs(records, "helpfulness", negatives)
    assert len(pairs) == 5
    for pair, record in zip(pairs, records, strict=True):
        assert pair["chosen"][-1]["content"] == f"Final answer: {record.answer}"
        assert pair["rejected"][-1]["content"] != pair["chosen"][-1]["content"]
