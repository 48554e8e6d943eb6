"""The rendered prompt and target of one row of each dataset, against the exact text."""

from __future__ import annotations

import pytest

from medalign.data.formatting import to_messages
from medalign.data.loading import get_task, load_records
from medalign.errors import MedalignError
from tests.conftest import dataset_cfg


def _first(name: str, **changes: object):
    cfg = dataset_cfg(name, **changes)
    return load_records(cfg).records[0], cfg


def test_pubmedqa_prompt_and_target() -> None:
    record, cfg = _first("pubmedqa", split="all")
    assert get_task(cfg).prompt(record) == (
        "Abstract:\n"
        "BACKGROUND: Prolonged bed rest after hip fracture surgery is linked to pneumonia and "
        "delirium in older adults.\n"
        "METHODS: We reviewed 412 patients aged 65 or older operated on for hip fracture; 206 "
        "were mobilised within 24 hours and 206 later.\n"
        "RESULTS: Median length of stay was 8 days with early mobilisation and 11 days without "
        "(p<0.001). Pneumonia occurred in 4% versus 9%.\n\n"
        "Question: Does early mobilisation after hip fracture surgery shorten hospital stay?\n"
        "Answer yes, no or maybe."
    )
    assert get_task(cfg).target(record) == (
        "Mobilising patients within 24 hours of hip fracture surgery was associated with a "
        "shorter stay and fewer pneumonias.\nFinal answer: yes"
    )


def test_medmcqa_prompt_and_target() -> None:
    record, cfg = _first("medmcqa")
    assert get_task(cfg).prompt(record) == (
        "Question: Which vitamin deficiency causes scurvy?\nOptions:\nA. Vitamin A\n"
        "B. Vitamin B12\nC. Vitamin C\nD. Vitamin D\n"
        "Answer with the letter of the correct option (A, B, C or D)."
    )
    assert get_task(cfg).target(record) == (
        "Scurvy results from vitamin C deficiency, which impairs collagen hydroxylation and "
        "causes bleeding gums and poor wound healing.\nFinal answer: C"
    )
    answer_only, cfg = _first("medmcqa", rationale=False)
    assert get_task(cfg).target(answer_only) == "Final answer: C"


def test_medqa_prompt_and_target() -> None:
    record, cfg = _first("medqa", options=4)
    prompt = get_task(cfg).prompt(record)
    assert prompt.startswith("Question: A 24-year-old woman comes to the physician")
    assert prompt.endswith(
        "Options:\nA. Graves disease\nB. Toxic multinodular goitre\n"
        "C. Hashimoto thyroiditis\nD. Factitious thyrotoxicosis\n"
        "Answer with the letter of the correct option (A, B, C or D)."
    )
    assert get_task(cfg).target(record) == "Final answer: A"


def test_radqa_prompt_and_targets_answerable_and_not() -> None:
    records = load_records(dataset_cfg("radqa")).records
    cfg = dataset_cfg("radqa")
    answerable = records[0]
    assert get_task(cfg).prompt(answerable) == (
        "Radiology report:\nIMPRESSION:  Moderate right pleural effusion.  Mild cardiomegaly.\n\n"
        "Question: Is there a pleural effusion?\n"
        "Answer with the exact words of the report, or say that the report does not answer it."
    )
    assert get_task(cfg).target(answerable) == (
        "IMPRESSION: Moderate right pleural effusion.\n"
        "Final answer: Moderate right pleural effusion"
    )
    unanswerable = next(r for r in records if not r.answer)
    assert get_task(cfg).target(unanswerable) == (  # the rationale says no sentence answers
        "No sentence of the report answers this question.\n"
        "Final answer: The report does not answer this question."
    )
    assert get_task(dataset_cfg("radqa", rationale=False)).target(unanswerable) == (
        "Final answer: The report does not answer this question."
    )


def test_templates_come_from_config() -> None:
    record, cfg = _first(
        "medmcqa",
        prompt_template="{subject}: {question}",
        answer_template="=> {answer}",
        rationale=False,
    )
    example = to_messages(record, cfg)
    assert (
        example["prompt"][0]["content"] == "Biochemistry: Which vitamin deficiency causes scurvy?"
    )
    assert example["completion"][0] == {"role": "assistant", "content": "=> C"}


def test_unknown_template_field_is_named() -> None:
    record, cfg = _first("medqa", prompt_template="{question} {abstract}")
    with pytest.raises(
        MedalignError,
        match=r"dataset.prompt_template of dataset 'medqa': unknown field \{abstract\}; "
        r"available: \{question\}",
    ):
        get_task(cfg).prompt(record)
