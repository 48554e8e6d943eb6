"""Records -> the chat-format prompt/completion dataset TRL's SFTTrainer trains on.

Each record is rendered by its dataset's Task (prompt template, rationale + final-answer
line); conversational prompt/completion rows let TRL apply the tokenizer's chat template
and put the loss on the answer alone.
"""

from __future__ import annotations

from typing import Any

from medalign.config import DatasetConfig
from medalign.data.loading import get_task
from medalign.data.records import Messages, QARecord


def to_messages(record: QARecord, cfg: DatasetConfig) -> dict[str, Messages]:
    """One prompt/completion example in chat form."""
    return get_task(cfg).messages(record)


def sft_rows(parts: list[tuple[list[QARecord], DatasetConfig]]) -> list[dict[str, Messages]]:
    """The prompt/completion rows of every part, in order (not yet shuffled)."""
    rows = []
    for records, cfg in parts:
        task = get_task(cfg)
        rows += [task.messages(r) for r in records]
    return rows


def to_sft_dataset(parts: list[tuple[list[QARecord], DatasetConfig]], seed: int = 0) -> Any:
    """A `datasets.Dataset` with `prompt` and `completion` columns (shuffled when mixed)."""
    from datasets import Dataset

    dataset = Dataset.from_list(sft_rows(parts))
    return dataset.shuffle(seed=seed) if len(parts) > 1 else dataset
