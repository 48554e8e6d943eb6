from __future__ import annotations

from medalign.data.formatting import FINAL_ANSWER, target_text, to_messages
from medalign.data.records import QARecord

RECORD = QARecord(
    id="1",
    question="Does drug X work?",
    context=["We randomised adults.", "It worked."],
    answer="yes",
    rationale="Drug X worked.",
    meta={"labels": ["METHODS", "RESULTS"]},
)


def test_target_ends_with_the_final_answer_line() -> None:
    assert target_text(RECORD, with_rationale=True) == f"Drug X worked.\n{FINAL_ANSWER} yes"
    assert target_text(RECORD, with_rationale=False) == f"{FINAL_ANSWER} yes"


def test_pubmedqa_prompt_holds_labelled_sections_and_question() -> None:
    example = to_messages(RECORD, "pubmedqa", with_rationale=True)
    prompt = example["prompt"][0]["content"]
    assert example["prompt"][0]["role"] == "user"
    assert "METHODS: We randomised adults.\nRESULTS: It worked." in prompt
    assert "Question: Does drug X work?" in prompt
    assert "yes" not in prompt.split("Question:")[0]  # the answer never leaks into the prompt
    assert example["completion"] == [
        {"role": "assistant", "content": f"Drug X worked.\n{FINAL_ANSWER} yes"}
    ]
