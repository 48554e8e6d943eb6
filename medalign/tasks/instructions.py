"""A generic instruction dataset, declared in YAML alone: a JSONL, JSON or CSV file whose
columns are mapped in `dataset.task_args.columns`.

    python -m medalign stage=sft dataset=instructions dataset.path=notes.jsonl
    python -m medalign stage=sft dataset=instructions dataset.path=qa.csv \\
        "dataset.task_args.columns={prompt: question, completion: reply}"
    python -m medalign stage=medmcqa "dataset.mix={medmcqa: 1, instructions: 0.5}"

Three mappings (give the one your file has; the value is your column's name):
    {instruction: instruction, input: input, output: output}   (Alpaca; input optional)
    {prompt: prompt, completion: completion}
    {messages: messages}      (chat: the last assistant turn is the target)
Used for SFT and mixing; it has no gold answers, so it is not an evaluation set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from medalign.data.files import read_rows, table_file
from medalign.data.records import BadRows, QARecord
from medalign.errors import MedalignError
from medalign.registry import register
from medalign.tasks.base import Messages, Task

MAPPINGS = (
    ("instruction", "input", "output"),
    ("prompt", "completion"),
    ("messages",),
)
OPTIONAL = {"input"}


@register("task", "instructions")
class Instructions(Task):
    name = "instructions"
    dev_split = "validation"  # validation.jsonl/.json/.csv beside train
    arg_defaults: ClassVar[dict[str, Any]] = {"columns": None}  # None: the Alpaca names
    alpaca: ClassVar[dict[str, str]] = {
        "instruction": "instruction",
        "input": "input",
        "output": "output",
    }

    def split_file(self, folder: Path) -> Path:
        return table_file(folder, self.cfg.split)

    @property
    def columns(self) -> dict[str, str]:
        columns = dict(self.args["columns"] or self.alpaca)
        for roles in MAPPINGS:
            if set(columns) == set(roles) or set(columns) == set(roles) - OPTIONAL:
                return columns
        shown = " | ".join("{" + ", ".join(r) + "}" for r in MAPPINGS)
        raise MedalignError(
            f"config {self.key}.task_args.columns={columns}: map one of {shown} to your columns"
        )

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        columns = self.columns
        rows = read_rows(path, bad)
        if rows:
            present = set().union(*(row.keys() for _, row in rows))
            missing = [
                f"{role} -> {col!r}"
                for role, col in columns.items()
                if col not in present and role not in OPTIONAL
            ]
            if missing:
                raise MedalignError(
                    f"{path}: {self.key}.task_args.columns names a column the file does not have "
                    f"({missing[0]}); its columns: {', '.join(sorted(present))}"
                )
        return [r for key, row in rows if (r := self._record(key, row, bad)) is not None]

    def _record(self, key: str, row: dict[str, Any], bad: BadRows) -> QARecord | None:
        columns = self.columns
        if "messages" in columns:
            messages = row.get(columns["messages"])
            if not _is_chat(messages) or messages[-1]["role"] != "assistant":
                bad.reject(key, columns["messages"], "expected a chat list ending in assistant")
                return None
            prompt = "\n\n".join(m["content"] for m in messages[:-1] if m["role"] == "user")
            return QARecord(
                id=key, question=prompt, context=[], answer=messages[-1]["content"],
                meta={"messages": messages},
            )  # fmt: skip
        values = {}
        for role, column in columns.items():
            value = row.get(column)
            if value is None and role in OPTIONAL:
                value = ""
            if not isinstance(value, str) or (role not in OPTIONAL and not value.strip()):
                bad.reject(key, column, "missing or empty text")
                return None
            values[role] = value
        if "prompt" in values:
            prompt = values["prompt"]
        else:
            extra = values.get("input", "").strip()
            prompt = values["instruction"].strip() + (f"\n\n{extra}" if extra else "")
        target = values.get("completion", values.get("output", ""))
        return QARecord(id=key, question=prompt, context=[], answer=target)

    def messages(self, record: QARecord) -> dict[str, Messages]:
        chat = record.meta.get("messages")
        if chat:
            return {"prompt": chat[:-1], "completion": chat[-1:]}
        return super().messages(record)


def _is_chat(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value)
    )
