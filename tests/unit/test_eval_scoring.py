"""Answer parsing, SQuAD v2 scores and calibration on hand-checked cases."""

from __future__ import annotations

import pytest

from medalign.eval.metrics import brier, expected_calibration_error, with_ci
from medalign.eval.parsing import parse_choice, parse_span
from medalign.eval.squad import score

LETTERS = ["A", "B", "C", "D"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The vignette describes Graves disease.\nFinal answer: C", "C"),
        ("**Final answer:** C", "C"),
        ("final answer: c", "C"),
        ("Final Answer: (B) Cholesterol embolization", "B"),
        ("Reasoning...\n### Final answer: `D.`", "D"),
        ("Final answer: A or C", None),
        ("Final answer: A, C", None),
        ("I think the answer is C.", "C"),  # "the answer is X" is an answer (issue 12)
        ("Final answer:", None),
        ("Final answer: E", None),  # not among the options
    ],
)
def test_parse_choice_letters(text: str, expected: str | None) -> None:
    assert parse_choice(text, LETTERS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The trial was positive.\nFinal answer: yes", "yes"),
        ("Final answer: **Maybe**", "maybe"),
        ("Final answer: yes or no", None),
        ("No final line here, but yes.", None),
    ],
)
def test_parse_choice_words(text: str, expected: str | None) -> None:
    assert parse_choice(text, ["yes", "no", "maybe"]) == expected


def test_parse_span_and_no_answer() -> None:
    no_answer = "The report does not answer this question."
    assert parse_span("Final answer: small left effusion", no_answer) == "small left effusion"
    assert parse_span("Final answer: The report does not answer this question", no_answer) == ""
    assert parse_span("there is an effusion", no_answer) is None


@pytest.mark.parametrize(
    ("golds", "pred", "em", "f1"),
    [
        (["Small left pleural effusion"], "small left pleural effusion.", 1.0, 1.0),
        (["the left lung"], "Left lung", 1.0, 1.0),  # articles and case are normalized away
        (["small left pleural effusion"], "left pleural effusion seen", 0.0, 0.75),
        (
            ["No focal consolidation", "No focal consolidation to suggest pneumonia"],
            "no focal consolidation",
            1.0,
            1.0,
        ),  # best over references
        ([], "", 1.0, 1.0),  # unanswerable, abstained
        ([], "pneumonia", 0.0, 0.0),  # unanswerable, answered anyway
        (["effusion"], "", 0.0, 0.0),  # answerable, abstained
    ],
)
def test_squad_v2_scores(golds: list[str], pred: str, em: float, f1: float) -> None:
    got_em, got_f1 = score(golds, pred)
    assert got_em == em and got_f1 == pytest.approx(f1)


def test_ece_and_brier_on_a_hand_computed_case() -> None:
    probs = [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]]
    gold = [0, 1, 0, 1]
    # bins: 0.9 (right), 0.8 (wrong), 0.6 (right), 0.7 (right), each alone in its bin:
    # ECE = (|1-0.9| + |0-0.8| + |1-0.6| + |1-0.7|) / 4 = (0.1 + 0.8 + 0.4 + 0.3) / 4 = 0.4
    assert expected_calibration_error(probs, gold) == pytest.approx(0.4)
    # Brier = mean of sum_k (p_k - y_k)^2 = (0.02 + 1.28 + 0.32 + 0.18) / 4 = 0.45
    assert brier(probs, gold) == pytest.approx(0.45)


def test_bootstrap_interval_brackets_the_mean() -> None:
    result = with_ci([1, 0, 1, 1, 0, 1, 0, 1, 1, 1], resamples=500, seed=0)
    assert result["value"] == 0.7 and result["n"] == 10
    assert 0.3 <= result["ci"][0] < 0.7 < result["ci"][1] <= 1.0
