"""stage=eval eval.mode=cot on the tiny model: the files it writes, maj@k with sampling,
max_new_tokens per dataset, and the generative datasets keeping their own mode."""

from __future__ import annotations

import json
from pathlib import Path

from medalign.run import run
from tests.conftest import compose


def _eval(run_dir: Path, *overrides: str) -> tuple[dict, dict, list[dict]]:
    metrics = run(
        compose("stage=eval", "logger=none", "eval.plots=false", "eval.limit=3", *overrides),
        run_dir,
    )
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    lines = (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()
    return metrics, results, [json.loads(line) for line in lines]


def test_cot_self_consistency_writes_every_sample_and_maj_at_k(tmp_path: Path) -> None:
    overrides = (
        "eval.mode=cot",
        "eval.datasets=[medqa,radqa]",
        "eval.samples=3",
        "eval.temperature=1.0",
        "eval.max_new_tokens=4",
        "eval.max_new_tokens_per_dataset={medqa:12}",
    )
    metrics, results, preds = _eval(tmp_path / "a", *overrides)
    medqa = results["medqa"]
    assert medqa["mode"] == "cot" and medqa["protocol"] == "cot maj@3 T=1"
    assert medqa["max_new_tokens"] == 12 and medqa["samples"] == 3
    for how in ("strict", "flexible"):
        for metric in (f"acc_cot_{how}", f"unparsed_cot_{how}", f"maj3_cot_{how}"):
            assert f"eval/medqa/{metric}" in metrics
            entry = medqa["metrics"][metric]
            assert entry["n"] == 3 and len(entry["ci"]) == 2
    assert results["radqa"]["mode"] == "generate"  # already generative: its own mode
    rows = [p for p in preds if p["dataset"] == "medqa"]
    assert len(rows) == 3
    for row in rows:
        assert len(row["generations"]) == len(row["strict"]) == len(row["flexible"]) == 3
        assert len(row["correct_strict"]) == 3
        assert len(row["cut_at_max_new_tokens"]) == 3
        assert set(row["scores"]) >= {"acc_cot_strict", "maj3_cot_flexible"}
    # an untrained model rarely reaches its end of turn in 12 tokens: cut answers are counted
    cut = [c for row in rows for c in row["cut_at_max_new_tokens"]]
    assert medqa["cut_at_max_new_tokens"] == sum(cut) >= 1
    samples = [g for row in rows for g in row["generations"]]
    assert len(set(samples)) > 1  # sampled, not k copies of one answer
    _, _, again = _eval(tmp_path / "b", *overrides)  # seeded: the same samples
    assert [p["generations"] for p in again if p["dataset"] == "medqa"] == [
        row["generations"] for row in rows
    ]
    summary = (tmp_path / "a" / "eval" / "summary.md").read_text()
    assert "| medqa | test | cot strict maj@3 | 3 | maj3_cot_strict |" in summary


def test_greedy_cot_is_one_answer_per_question_and_the_loglik_default_is_untouched(
    tmp_path: Path,
) -> None:
    _, results, preds = _eval(
        tmp_path / "cot", "eval.mode=cot", "eval.datasets=[medmcqa]", "eval.max_new_tokens=6"
    )
    assert results["medmcqa"]["protocol"] == "cot greedy"
    assert "maj1_cot_strict" not in results["medmcqa"]["metrics"]
    assert all(len(p["generations"]) == 1 for p in preds)
    _, plain, _ = _eval(tmp_path / "loglik", "eval.datasets=[medmcqa]")
    assert plain["medmcqa"]["mode"] == "loglik" and plain["medmcqa"]["protocol"] == "loglik"
    assert "acc" in plain["medmcqa"]["metrics"]


def test_also_cot_scores_one_dataset_both_ways_on_the_same_questions(tmp_path: Path) -> None:
    """eval.also_cot=[medqa]: MedQA by log-likelihood (`medqa`) and by CoT (`medqa:cot`),
    the same question ids in both, each with its protocol; summary.md has both rows."""
    metrics, results, preds = _eval(
        tmp_path, "eval.datasets=[medqa]", "eval.also_cot=[medqa]", "eval.max_new_tokens=6"
    )
    assert results["medqa"]["protocol"] == "loglik"
    assert results["medqa:cot"]["protocol"] == "cot greedy"
    assert "acc" in results["medqa"]["metrics"]
    assert "acc_cot_strict" in results["medqa:cot"]["metrics"]
    assert "eval/medqa:cot/acc_cot_strict" in metrics
    ids = {key: sorted(p["id"] for p in preds if p["dataset"] == key) for key in results}
    assert ids["medqa"] == ids["medqa:cot"] and len(ids["medqa"]) == 3
    summary = (tmp_path / "eval" / "summary.md").read_text()
    assert "| medqa | test | loglik |" in summary and "| medqa:cot | test | cot strict |" in summary
