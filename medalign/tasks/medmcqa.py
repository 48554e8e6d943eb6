"""MedMCQA (JSON Lines: question, opa..opd, cop, exp, subject_name, ...) -> 4-option records.

`cop` is 1-indexed in the original files and 0-indexed on the hub
(`openlifescienceai/medmcqa`, -1 on test rows). Reading it with the wrong base shifts
every label silently, so the base is told (`dataset.cop_base`) or detected from the
values in the file (a 4 means 1-indexed, a 0 means 0-indexed); a file where the values
cannot tell is an error. The official test split has no answers: it cannot be trained
or scored on, so the dev split is the evaluation set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medalign.data.files import FileHead, read_jsonl
from medalign.data.records import BadRows, QARecord
from medalign.errors import MedalignError
from medalign.registry import register
from medalign.tasks.choice import LetterChoiceTask

LETTERS = ("A", "B", "C", "D")
OPTION_KEYS = ("opa", "opb", "opc", "opd")


@register("task", "medmcqa")
class MedMCQA(LetterChoiceTask):
    """lm-eval `medmcqa` prompt ("Choices:" header); accuracy per subject."""

    name = "medmcqa"
    rationale_source = "`exp`"
    dev_split = "dev"  # also its evaluation split: never validated on
    reads = frozenset({"cop_base"})
    lm_eval_header = "\nChoices:\n"
    breakdown_key, breakdown_name = "subject", "subject"

    @classmethod
    def recognizes(cls, head: FileHead) -> bool:
        """JSON Lines rows with the option columns `opa`.. or the answer `cop`."""
        return head.first_row is not None and ("opa" in head.first_row or "cop" in head.first_row)

    def split_file(self, folder: Path) -> Path:
        _refuse_test_split(self.cfg)
        return folder / f"{self.cfg.split}.json"

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        _refuse_test_split(self.cfg)
        rows = read_jsonl(path, bad)
        base = self.cfg.cop_base
        if base is None:
            base = detect_cop_base(rows, path)
        return [r for key, row in rows if (r := to_record(key, row, base, bad)) is not None]

    def read_hub(self, rows: Any, bad: BadRows) -> list[QARecord]:
        _refuse_test_split(self.cfg)
        base = 0 if self.cfg.cop_base is None else self.cfg.cop_base
        records = [to_record(str(row.get("id")), dict(row), base, bad) for row in rows]
        return [r for r in records if r is not None]

    def template_fields(self, record: QARecord) -> dict[str, str]:
        return {**super().template_fields(record), "subject": record.meta.get("subject") or ""}


def detect_cop_base(rows: list[tuple[str, dict[str, Any]]], path: Path) -> int:
    if not rows:
        raise MedalignError(f"{path}: the file has no rows (an empty MedMCQA file)")
    values = {row.get("cop") for _, row in rows if isinstance(row.get("cop"), int)}
    if values & {0, -1}:
        return 0
    if 4 in values:
        return 1
    raise MedalignError(
        f"{path}: cannot tell whether field 'cop' is 1-indexed (original files) or 0-indexed "
        f"(hub copy) from the values {sorted(values)}; set dataset.cop_base=1 or 0"
    )


def to_record(line: str, row: dict[str, Any], base: int, bad: BadRows) -> QARecord | None:
    key = f"{line} (id {row['id']})" if isinstance(row.get("id"), str) and row["id"] else line
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        bad.reject(key, "question", "missing or empty")
        return None
    options = {}
    for letter, name in zip(LETTERS, OPTION_KEYS, strict=True):
        if not isinstance(row.get(name), str):
            bad.reject(key, name, "missing option text")
            return None
        options[letter] = row[name]
    cop = row.get("cop")
    if cop is None:
        bad.reject(key, "cop", "missing answer (MedMCQA test rows have none)")
        return None
    if not isinstance(cop, int) or isinstance(cop, bool):
        bad.reject(key, "cop", f"{cop!r} is not an option number ({base}..{base + 3})")
        return None
    if not 0 <= cop - base < len(LETTERS):
        bad.reject(key, "cop", f"{cop} is outside the options ({base}..{base + 3})")
        return None
    explanation = row.get("exp")
    return QARecord(
        id=str(row.get("id") or line),
        question=question,
        context=[],
        options=options,
        answer=LETTERS[cop - base],
        rationale=explanation.strip()
        if isinstance(explanation, str) and explanation.strip()
        else None,
        meta={
            "subject": row.get("subject_name"),
            "topic": row.get("topic_name"),
            "choice_type": row.get("choice_type"),
            "row": line,
        },
    )


def _refuse_test_split(cfg: Any) -> None:
    if cfg.split == "test":
        raise MedalignError(
            "dataset.split=test: the MedMCQA test split has no answers, so it can be neither "
            "trained nor scored; use split=dev for evaluation"
        )
