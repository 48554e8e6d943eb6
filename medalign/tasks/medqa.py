"""MedQA USMLE (JSON Lines: question, options {A..E}, answer, answer_idx, meta_info).

Both variants of the official archive are read: `US/{split}.jsonl` (5 options) and
`US/4_options/phrases_no_exclude_{split}.jsonl` (4 options, plus MetaMap phrases); a
folder path picks by `dataset.options` (4, the default and lm-eval's `medqa_4options`,
or 5). Rows may carry a `rationale` (the synthetic world's worked reasoning; the
official files have none), trained on with dataset.rationale=true. `answer` must equal
`options[answer_idx]`, which catches files whose letters were shuffled. The hub copy
`GBaker/MedQA-USMLE-4-options-hf` uses sent1/ending0..3/label and is mapped here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medalign.data.files import FileHead, read_jsonl
from medalign.data.records import BadRows, QARecord
from medalign.registry import register
from medalign.tasks.choice import LetterChoiceTask

LETTERS = "ABCDEFGH"


@register("task", "medqa")
class MedQA(LetterChoiceTask):
    """lm-eval `medqa_4options` prompt; accuracy per USMLE step."""

    name = "medqa"
    rationale_source = "a `rationale` field, which the official files do not have"
    dev_split = "dev"
    reads = frozenset({"options"})
    breakdown_key, breakdown_name = "step", "step"

    @classmethod
    def recognizes(cls, head: FileHead) -> bool:
        """JSON Lines rows with `answer_idx` (or `options` + `answer`), or the hub's
        sent1/ending0.. layout."""
        row = head.first_row
        if row is None:
            return False
        return "answer_idx" in row or ("options" in row and "answer" in row) or "ending0" in row

    def split_file(self, folder: Path) -> Path:
        if self.cfg.options == 5:
            return folder / f"{self.cfg.split}.jsonl"
        return folder / "4_options" / f"phrases_no_exclude_{self.cfg.split}.jsonl"

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        rows = read_jsonl(path, bad)
        return [r for key, row in rows if (r := to_record(key, row, self.cfg, bad)) is not None]

    def read_hub(self, rows: Any, bad: BadRows) -> list[QARecord]:
        records = [
            to_record(f"row {i}", hub_row(dict(row)), self.cfg, bad) for i, row in enumerate(rows)
        ]
        return [r for r in records if r is not None]

    def template_fields(self, record: QARecord) -> dict[str, str]:
        return {**super().template_fields(record), "step": record.meta.get("step") or ""}


def hub_row(row: dict[str, Any]) -> dict[str, Any]:
    """The `-hf` multiple-choice layout (sent1, ending0..N, label) in original field names."""
    if "ending0" not in row:
        return row
    endings = [row[f"ending{i}"] for i in range(len(LETTERS)) if f"ending{i}" in row]
    options = dict(zip(LETTERS, endings, strict=False))
    label = row.get("label")
    letter = LETTERS[label] if isinstance(label, int) and 0 <= label < len(endings) else None
    return {
        "question": row.get("sent1"),
        "options": options,
        "answer_idx": letter,
        "answer": options.get(letter) if letter else None,
        "meta_info": row.get("meta_info"),
    }


def to_record(key: str, row: dict[str, Any], cfg: Any, bad: BadRows) -> QARecord | None:
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        bad.reject(key, "question", "missing or empty")
        return None
    options = row.get("options")
    if not isinstance(options, dict) or len(options) < 2:
        bad.reject(key, "options", "missing, or fewer than two options")
        return None
    if cfg.options is not None and len(options) != cfg.options:
        bad.reject(key, "options", f"expected {cfg.options} options, found {len(options)}")
        return None
    letter = row.get("answer_idx")
    if not isinstance(letter, str) or letter not in options:
        bad.reject(key, "answer_idx", f"{letter!r} is not one of the options {', '.join(options)}")
        return None
    answer = row.get("answer")
    if answer is not None and answer != options[letter]:
        bad.reject(key, "answer", f"{answer!r} is not options[{letter!r}] ({options[letter]!r})")
        return None
    empty = [k for k, v in options.items() if not isinstance(v, str) or not v.strip()]
    if empty:
        bad.reject(key, f"options.{empty[0]}", "null or empty option text")
        return None
    rationale = row.get("rationale")  # the synthetic world's; the official files have none
    return QARecord(
        id=key,
        question=question,
        context=[],
        options=dict(options),
        answer=letter,
        meta={"step": row.get("meta_info"), "answer_text": options[letter]},
        rationale=rationale.strip() if isinstance(rationale, str) and rationale.strip() else None,
    )
