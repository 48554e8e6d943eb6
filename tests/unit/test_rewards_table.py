"""The curriculum's RL-reward table says how its total is made, what a fifth is, and
which changes its test finds (Welch's p, ✱)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medalign.reports.results import rewards_markdown as _rewards_markdown
from tests.results_fixture import finished_rl_stage


def test_reward_table_carries_weights_and_the_size_of_a_fifth(tmp_path: Path) -> None:
    stage_dir = tmp_path / "5-rl"
    metrics = finished_rl_stage(stage_dir)
    manifest = {"stages": [{"name": "rl", "dir": str(stage_dir), "metrics": metrics}]}
    table = _rewards_markdown(manifest)
    rows = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| rl")}
    # a manifest from before the fifths recorded n and intervals says so (issue 36)
    old = "(no interval: not recorded)"
    assert rows["correctness"] == (
        f"| rl | correctness | 1 | n/a | 0.400 {old} | 0.300 {old} | -0.100 ✱ | <0.001 |"
    )
    assert (
        rows["format"]
        == f"| rl | format | 0.2 | n/a | 1.000 {old} | 0.900 {old} | -0.100 | 0.210 |"
    )
    assert rows["total"] == (  # no p: no mark
        f"| rl | total |  | n/a | 0.600 {old} | 0.480 {old} | -0.120 | n/a |"
    )
    assert "rl: 10 logged steps, a fifth is 2 of them" in table
    assert "total = the sum of weight x reward" in table


def test_rl_summary_tests_the_first_fifth_against_the_last() -> None:
    from types import SimpleNamespace

    from medalign.stages.rl import _reward_summary

    rising = [
        {"reward/correctness_mean": 0.1 + 0.8 * (i >= 10) + 0.01 * (i % 3)} for i in range(20)
    ]
    flat = [{"reward/correctness_mean": 0.5 + 0.01 * (i % 3)} for i in range(20)]
    up = _reward_summary(SimpleNamespace(history=rising))
    assert up["reward/correctness_first_fifth"] < up["reward/correctness_last_fifth"]
    assert up["reward/correctness_fifths_p"] < 0.001
    assert _reward_summary(SimpleNamespace(history=flat))["reward/correctness_fifths_p"] > 0.5
    short = _reward_summary(SimpleNamespace(history=rising[:5]))  # a fifth of one step
    assert "reward/correctness_fifths_p" not in short


# A safety reward model's held-out metrics: 30/40 in all, harmful 18/30, calibration 10/10.
SAFETY = {
    "reward/safety_accuracy": 0.75,
    "reward/safety_heldout_pairs": 40,
    "reward/safety_accuracy_harmful": 0.6,
    "reward/safety_heldout_pairs_harmful": 30,
    "reward/safety_accuracy_calibration": 1.0,
    "reward/safety_heldout_pairs_calibration": 10,
}


def test_reward_model_table_gives_n_interval_and_the_test_against_chance() -> None:
    """Each reward model's held-out accuracy, overall and per kind of pair, with n, a Wilson
    interval and an exact binomial p against 0.5 (statsmodels' interval as the reference)."""
    from scipy.stats import binomtest
    from statsmodels.stats.proportion import proportion_confint

    from medalign.reports.reward_models import reward_models_markdown

    metrics = {
        **SAFETY,
        "reward/helpfulness_accuracy": 0.55,
        "reward/helpfulness_heldout_pairs": 20,
    }
    table = reward_models_markdown({"stages": [{"name": "reward", "metrics": metrics}]})
    rows = {tuple(line.split(" | ")[1:3]): line for line in table.splitlines()[5:]}
    low, high = proportion_confint(18, 30, method="wilson")
    harmful = rows[("safety", "harmful")]
    assert f"| 30 | 0.600 [{low:.3f}, {high:.3f}] | {binomtest(18, 30).pvalue:.3f} |" in harmful
    assert harmful.endswith("| not above chance |")  # p 0.36
    assert rows[("safety", "all")].endswith("above chance ✱ |")  # 30/40, p 0.002
    assert "every pair right" in rows[("safety", "calibration")]
    assert rows[("helpfulness", "all")].endswith("| not above chance |")
    assert reward_models_markdown({"stages": [{"name": "medqa", "metrics": {}}]}) == ""


def test_a_reward_model_significantly_below_chance_is_read_as_preferring_the_wrong_answer() -> None:
    """The world's safety model ranked held-out harmful pairs 13/62 right (2026-12-07): a
    model that prefers the rejected answer is not merely "not above chance"; RL against it
    is paid for the answer it should avoid."""
    from medalign.reports.reward_models import reward_models_markdown

    metrics = {**SAFETY, "reward/safety_accuracy_harmful": 13 / 62}
    metrics["reward/safety_heldout_pairs_harmful"] = 62
    table = reward_models_markdown({"stages": [{"name": "reward", "metrics": metrics}]})
    harmful = next(line for line in table.splitlines() if "| harmful |" in line)
    assert (
        "| 0.210 [0.127, 0.326] | <0.001 | below chance ✱: prefers the rejected answer" in harmful
    )
    assert "not above chance" not in harmful


def test_an_objective_with_one_kind_of_pair_gets_one_row() -> None:
    """Helpfulness pairs are all of one kind: its "all" row and its kind row were the same
    numbers twice."""
    from medalign.reports.reward_models import reward_model_rows

    metrics = {
        "reward/helpfulness_accuracy": 0.7,
        "reward/helpfulness_heldout_pairs": 390,
        "reward/helpfulness_accuracy_helpfulness": 0.7,
        "reward/helpfulness_heldout_pairs_helpfulness": 390,
        **SAFETY,
    }
    kinds = [(r["objective"], r["kind"]) for r in reward_model_rows(metrics)]
    assert kinds == [
        ("helpfulness", "all"),
        ("safety", "all"),
        ("safety", "calibration"),
        ("safety", "harmful"),
    ]


def test_each_fifth_mean_carries_its_n_and_interval(tmp_path: Path) -> None:
    """Issue 36: the RL table gave the fifths' means and Welch's p with no n and no
    interval. The RL stage now records each fifth's n (logged steps) and the 95% t
    interval of its mean (the standard error Welch's test uses), and the table shows them;
    a manifest written before says they were not recorded."""
    from types import SimpleNamespace

    from scipy import stats

    from medalign.stages.rl import _reward_summary

    history = [{"reward/correctness_mean": 0.1 * (i % 4) + 0.02 * i} for i in range(20)]
    out = _reward_summary(SimpleNamespace(history=history))
    first = [r["reward/correctness_mean"] for r in history[:4]]
    low, high = stats.t.interval(0.95, 3, loc=sum(first) / 4, scale=stats.sem(first))
    assert out["reward/correctness_first_fifth_n"] == 4
    assert out["reward/correctness_first_fifth_low"] == pytest.approx(low)
    assert out["reward/correctness_first_fifth_high"] == pytest.approx(high)
    assert out["reward/correctness_last_fifth_n"] == 4
    stage_dir = tmp_path / "5-rl"
    stage_dir.mkdir()
    manifest = {"stages": [{"name": "rl", "dir": str(stage_dir), "metrics": out}]}
    table = _rewards_markdown(manifest)
    assert "| n per fifth |" in table
    row = next(line for line in table.splitlines() if line.startswith("| rl | correctness"))
    assert f"| 4 | {out['reward/correctness_first_fifth']:.3f} [{low:.3f}, {high:.3f}] |" in row
    old = {"rl/logged_steps": 10, "reward/format_first_fifth": 1.0}
    old |= {"reward/format_last_fifth": 0.9}
    manifest = {"stages": [{"name": "rl", "dir": str(stage_dir), "metrics": old}]}
    row = next(
        line for line in _rewards_markdown(manifest).splitlines() if line.startswith("| rl |")
    )
    assert "| n/a | 1.000 (no interval: not recorded) | 0.900 (no interval: not recorded) |" in row
