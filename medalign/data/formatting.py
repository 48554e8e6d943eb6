"""Records -> chat-format prompt/completion pairs that TRL's SFTTrainer trains on.

Conversational prompt/completion data lets TRL render both with the tokenizer's chat
template and mask the prompt, so the loss is on the answer alone. Every target ends in
the same `Final answer: X` line that generative evaluation parses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medalign.data.records import QARecord
from medalign.registry import get

FINAL_ANSWER = "Final answer:"
Messages = list[dict[str, str]]
Formatter = Callable[[QARecord], str]


def target_text(record: QARecord, with_rationale: bool) -> str:
    """The assistant's answer: optional rationale, then the fixed final-answer line."""
    answer = record.answer if isinstance(record.answer, str) else "; ".join(record.answer)
    final = f"{FINAL_ANSWER} {answer}"
    if with_rationale and record.rationale:
        return f"{record.rationale.strip()}\n{final}"
    return final


def to_messages(record: QARecord, formatter: str, with_rationale: bool) -> dict[str, Messages]:
    """One prompt/completion example in chat form."""
    prompt = get("formatter", formatter)(record)
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": target_text(record, with_rationale)}],
    }


def to_sft_dataset(records: list[QARecord], formatter: str, with_rationale: bool) -> Any:
    """A `datasets.Dataset` with `prompt` and `completion` columns."""
    from datasets import Dataset

    rows = [to_messages(r, formatter, with_rationale) for r in records]
    return Dataset.from_list(rows)
