"""The generative answer parser on the forms models really write (issue 12, items 3 and 10).

A parse that is too loose scores English words as option letters; one that is too strict
counts right answers as unparseable. Both directions are pinned here.
"""

from __future__ import annotations

import pytest

from medalign.eval.parsing import final_answer_text, parse_choice, parse_span

LETTERS = ["A", "B", "C", "D"]
YNM = ["yes", "no", "maybe"]
NO_ANSWER = "The report does not answer this question."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the forms of issue 12, item 10
        ("Final answer: C. Vitamin A deficiency", "C"),
        ("Final answer: Hepatitis B (option D)", "D"),
        ("The answer is (B)", "B"),
        ("**B**", "B"),
        ("Answer: b)", "B"),
        # the forms the docstring claims
        ("Final answer: (c)", "C"),
        ("Final answer: C. Graves disease", "C"),
        ("Final answer: (A) Vitamin A deficiency", "A"),
        ("Final answer: A. Hepatitis B", "A"),
        # a lone "A" is the letter, not the article
        ("Final answer: A", "A"),
        ("Final answer: a", "A"),
        ("I think the answer is (B)", "B"),
        ("Reasoning about the case.\nThe correct answer is: **D**", "D"),
        ("Final answer: option C", "C"),
        ("Final answer: Choice (d)", "D"),
        ("Let me think.\n\n**C**", "C"),
        ("Final answer: I think the answer is C", "C"),
        ("Final answer: B is correct", "B"),
        ("The best answer is A because the patient is septic.", "A"),
        ("Final answer: C (Graves disease)", "C"),
        ("Final answer: D. Ceftriaxone, and I would add azithromycin", "D"),
        ("Final answer: C. Both A and B are wrong", "C"),
        ("Final answer: D, since the others are contraindicated", "D"),
        ("The correct option is C.", "C"),
        ("The answer is B.\nThis answer is consistent with the vignette.", "B"),
        ("The answer is A.\nOn reflection, the answer is C.", "C"),
        # two different letters: unparseable
        ("Final answer: A or C", None),
        ("Final answer: A, C", None),
        ("Final answer: B and D", None),
        ("Final answer: (B) and (D)", None),
        ("Final answer: A, B, or C", None),
        ("Final answer: C. Scurvy or D. Rickets", None),
        ("Final answer: Hepatitis B (option D or option C)", None),
        # English words, not letters
        ("Final answer: A patient with this presentation needs surgery", None),
        ("Final answer: Vitamin A deficiency", None),
        ("I have no idea what to answer.", None),
        ("A 45-year-old man presents with chest pain.", None),
        ("The answer is a tricky one.", None),
        ("The answer is not B", None),
        ("The answer is A or C.\nEither fits.", None),
        ("Final answer: I", None),  # not among the choices
        ("Final answer: E", None),  # not among the choices
    ],
)
def test_parse_choice_letters(text: str, expected: str | None) -> None:
    assert parse_choice(text, LETTERS) == expected


def test_a_fifth_option_is_a_letter_when_offered() -> None:
    assert parse_choice("Final answer: E. Observation", [*LETTERS, "E"]) == "E"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Final answer: yes", "yes"),
        ("Final answer: No, the trial was negative.", "no"),
        ("The answer is maybe.", "maybe"),
        ("**Yes**", "yes"),
        ("Final answer: yes or no", None),
        ("Final answer: Yes, but maybe not", None),
        ("Answer: perhaps", None),
        ("Yes, I can help with that. The trial was small.", None),
    ],
)
def test_parse_choice_yes_no_maybe(text: str, expected: str | None) -> None:
    assert parse_choice(text, YNM) == expected


def test_final_answer_text_takes_the_last_marker() -> None:
    text = "Final answer: A\nOn reflection...\n**Final answer:** C. Graves disease"
    assert final_answer_text(text) == "C. Graves disease"
    assert final_answer_text("no marker here") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Final answer: small left effusion", "small left effusion"),
        ("Final answer: The report does not answer this question.", ""),
        ("Final answer: the report does NOT answer this question", ""),
        ("Final answer: **The report does not answer this question**", ""),
        # not answers: never a no-answer
        ("Final answer: A", None),  # a lone option letter (SQuAD-normalizes to "")
        ("Final answer: (B)", None),  # a lone option letter
        ("Final answer: the.", None),  # articles and punctuation only
        ("Final answer: ...", None),
        ("Final answer:", None),
        ("there is an effusion", None),
        (
            "Final answer: The report does not answer this question, but maybe effusion",
            ("The report does not answer this question, but maybe effusion"),
        ),
    ],
)
def test_parse_span_never_turns_a_non_answer_into_no_answer(
    text: str, expected: str | None
) -> None:
    assert parse_span(text, NO_ANSWER) == expected
