"""Records -> chat-format prompt/completion pairs that TRL's SFTTrainer trains on.

The one place templates are rendered. The prompt comes from `dataset.prompt_template`
(a config string with fields such as {question}, {context}, {options}, {letters}); the
target is an optional rationale followed by `dataset.answer_template`, a fixed final-answer
line that generative evaluation parses. Conversational prompt/completion data lets TRL
render both with the tokenizer's chat template and put the loss on the answer alone.
"""

from __future__ import annotations

import string
from typing import Any

from medalign.config import DatasetConfig
from medalign.data.records import QARecord
from medalign.errors import MedalignError
from medalign.registry import get

Messages = list[dict[str, str]]


def template_fields(record: QARecord, cfg: DatasetConfig) -> dict[str, str]:
    """Fields every template can use, plus the format's own (registered per format)."""
    options = record.options or {}
    letters = list(options)
    fields = {
        "question": record.question,
        "context": "\n".join(record.context),
        "options": "\n".join(f"{k}. {v}" for k, v in options.items()),
        "letters": ", ".join(letters[:-1]) + f" or {letters[-1]}" if letters else "",
    }
    fields.update(get("template_fields", cfg.format)(record))
    return fields


def render_prompt(record: QARecord, cfg: DatasetConfig) -> str:
    fields = template_fields(record, cfg)
    return _render("dataset.prompt_template", cfg.prompt_template, fields, cfg.name)


def answer_text(record: QARecord, cfg: DatasetConfig) -> str:
    """The gold answer as the final line states it: letter, yes/no/maybe, span or no-answer."""
    if isinstance(record.answer, list):
        return record.answer[0] if record.answer else cfg.no_answer
    return record.answer


def target_text(record: QARecord, cfg: DatasetConfig) -> str:
    """Optional rationale, then the fixed final-answer line."""
    fields = {"answer": answer_text(record, cfg)}
    final = _render("dataset.answer_template", cfg.answer_template, fields, cfg.name)
    if cfg.rationale and record.rationale:
        return f"{record.rationale.strip()}\n{final}"
    return final


def to_messages(record: QARecord, cfg: DatasetConfig) -> dict[str, Messages]:
    """One prompt/completion example in chat form."""
    return {
        "prompt": [{"role": "user", "content": render_prompt(record, cfg)}],
        "completion": [{"role": "assistant", "content": target_text(record, cfg)}],
    }


def to_sft_dataset(parts: list[tuple[list[QARecord], DatasetConfig]], seed: int = 0) -> Any:
    """A shuffled `datasets.Dataset` with `prompt` and `completion` columns."""
    from datasets import Dataset

    rows = [to_messages(r, cfg) for records, cfg in parts for r in records]
    dataset = Dataset.from_list(rows)
    return dataset.shuffle(seed=seed) if len(parts) > 1 else dataset


def _render(key: str, template: str, fields: dict[str, Any], dataset: str) -> str:
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise MedalignError(
            f"{key} of dataset {dataset!r}: unknown field {{{unknown[0]}}}; "
            f"available: {', '.join('{' + f + '}' for f in fields)}"
        )
    return template.format(**fields)
