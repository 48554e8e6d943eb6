"""A multiple-choice dataset declared in YAML alone: columns for the question, the options
and the answer, mapped in `dataset.task_args` (like lm-eval's task YAML or LLaMA-Factory's
`dataset_info.json`). Trained, evaluated (log-likelihood in lm-eval's prompt style, or
generated), used for RL prompts and reward pairs, and a curriculum stage, like MedQA.

    # conf/dataset/my_exam.yaml   (or a folder on $MEDALIGN_CONFIG_PATH)
    defaults: [_multiple_choice, _self_]
    name: my_exam
    path: /data/my_exam          # train.jsonl / test.jsonl (or .json, .csv), or one file
    task_args:
      question: stem
      options: [opt1, opt2, opt3, opt4]   # option columns, in order ...
      answer: correct                     # ... and the answer: a label, an index or the text

    python -m medalign stage=sft dataset=my_exam
    python -m medalign stage=eval eval.datasets=[my_exam]
    python -m medalign experiment=curriculum "curriculum.order=[pubmedqa,my_exam,medqa]"

`options` is a list of columns (one option each) or one column holding a list or a
{label: text} object. The answer is matched as a label ("B"), an index into the options
(`answer_base`: 0 or 1) or an option's exact text; anything else is a bad row naming the
file, the row and the column.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, ClassVar

from medalign.data.files import read_rows, table_file
from medalign.data.records import BadRows, QARecord
from medalign.errors import MedalignError
from medalign.registry import register
from medalign.tasks.choice import LetterChoiceTask

LABELS = "ABCDEFGHIJ"
ANSWER_KINDS = ("auto", "label", "index", "text")


@register("task", "multiple_choice")
class MultipleChoice(LetterChoiceTask):
    """Lettered options from mapped columns; accuracy per subject when one is mapped."""

    name = "multiple_choice"
    rationale_source = "the column dataset.task_args.explanation names"
    dev_split = "validation"
    arg_defaults: ClassVar[dict[str, Any]] = {
        "question": "question",  # the question's column
        "options": "options",  # a list of option columns, or one list / {label: text} column
        "answer": "answer",  # a label, an index (answer_base) or the option's text
        "answer_base": 0,  # an integer answer counts options from this (0 or 1)
        "answer_is": "auto",  # auto | label | index | text: how to read the answer column
        "labels": None,  # the options' labels; None: A, B, C ... (as many as options)
        "subject": None,  # optional column: per-subject accuracy, {subject} in templates
        "explanation": None,  # optional column: the rationale (dataset.rationale=true)
        "id": None,  # optional column: the question's id (default: its line)
    }
    breakdown_key, breakdown_name = "subject", "subject"

    def __init__(self, cfg: Any, key: str = "dataset") -> None:
        super().__init__(cfg, key)
        if self.args["answer_is"] not in ANSWER_KINDS:
            raise MedalignError(
                f"config {self.key}.task_args.answer_is={self.args['answer_is']} "
                f"(dataset {cfg.name!r}): one of {', '.join(ANSWER_KINDS)}"
            )
        if self.args["answer_base"] not in (0, 1):
            raise MedalignError(
                f"config {self.key}.task_args.answer_base={self.args['answer_base']} "
                f"(dataset {cfg.name!r}): 0 or 1"
            )
        options = self.args["options"]
        if not (isinstance(options, str) or _strings(options)):
            raise MedalignError(
                f"config {self.key}.task_args.options (dataset {cfg.name!r}): a column name or a "
                f"list of column names, got {options!r}"
            )

    def split_file(self, folder: Path) -> Path:
        return table_file(folder, self.cfg.split)

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        rows = read_rows(path, bad)
        if rows:
            self._check_columns(path, rows)
        column = self.args["id"]
        return [
            r
            for key, row in rows
            if (r := self._record(_with_id(key, row.get(column) if column else None), row, bad))
        ]

    def _check_columns(self, path: Path, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """A mapped column no row has is a config mistake, named once (not a bad row each)."""
        present = set().union(*(row.keys() for _, row in rows))
        options = self.args["options"]
        wanted = {
            "question": [self.args["question"]],
            "options": [options] if isinstance(options, str) else list(options),
            "answer": [self.args["answer"]],
            **{k: [self.args[k]] for k in ("subject", "explanation", "id") if self.args[k]},
        }
        for role, columns in wanted.items():
            for column in columns:
                if column not in present:
                    raise MedalignError(
                        f"{path}: {self.key}.task_args.{role} names the column {column!r}, which "
                        f"the file does not have; its columns: {', '.join(sorted(present))}"
                    )

    def _options(self, key: str, row: dict[str, Any], bad: BadRows) -> dict[str, str] | None:
        spec = self.args["options"]
        if isinstance(spec, str):
            value = row.get(spec)
            if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
                with contextlib.suppress(json.JSONDecodeError):  # a CSV cell holding JSON
                    value = json.loads(value)
            if isinstance(value, dict):
                texts, labels = list(value.values()), [str(k) for k in value]
            elif isinstance(value, list):
                texts, labels = value, None
            else:
                bad.reject(key, spec, "expected a list of options or a {label: text} object")
                return None
            column = spec
        else:
            texts, labels, column = [row.get(c) for c in spec], None, None
        labels = labels or list(self.args["labels"] or LABELS[: len(texts)])
        if len(texts) < 2 or len(labels) != len(texts):
            bad.reject(key, column or spec[0], f"{len(texts)} options for labels {labels}")
            return None
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                bad.reject(key, column or spec[i], "missing or empty option text")
                return None
        return dict(zip(labels, texts, strict=True))

    def _answer(self, value: Any, options: dict[str, str]) -> tuple[str | None, str]:
        """(the answer's label, or None and why): read as `answer_is` says; auto tries a
        label, an option's exact text, then an index from answer_base, and refuses a
        value two readings disagree on ("3" among the options 2, 3, 4, 5: the text "3"
        or the option at index 3?), so no gold label is ever guessed."""
        kind = self.args["answer_is"]
        text = str(value).strip() if isinstance(value, str | int) else None
        readings = {}
        if kind in ("auto", "label") and text in options:
            readings["label"] = text
        if kind in ("auto", "text") and isinstance(value, str):
            matches = [k for k, option in options.items() if option.strip() == text]
            if len(matches) == 1:
                readings["text"] = matches[0]
        numeric = isinstance(value, int) or (text or "").lstrip("-").isdigit()
        if kind in ("auto", "index") and numeric and not isinstance(value, bool):
            position = int(text or 0) - self.args["answer_base"]
            if 0 <= position < len(options):
                readings["index"] = list(options)[position]
        found = set(readings.values())
        if len(found) == 1:
            return found.pop(), ""
        if found:
            shown = ", ".join(f"as {how}: {label}" for how, label in readings.items())
            return None, f"{value!r} reads two ways ({shown}); set {self.key}.task_args.answer_is"
        base = self.args["answer_base"]
        labels, indices = (
            f"the labels {', '.join(options)}",
            (f"the indices {base}..{base + len(options) - 1}"),
        )
        expected = {
            "auto": f"{labels}, {indices} or an option's text",
            "label": labels,
            "index": indices,
            "text": "an option's exact text",
        }[kind]
        return None, f"{value!r} is none of {expected}"

    def _record(self, key: str, row: dict[str, Any], bad: BadRows) -> QARecord | None:
        question = row.get(self.args["question"])
        if not isinstance(question, str) or not question.strip():
            bad.reject(key, self.args["question"], "missing or empty")
            return None
        options = self._options(key, row, bad)
        if options is None:
            return None
        answer, why = self._answer(row.get(self.args["answer"]), options)
        if answer is None:
            bad.reject(key, self.args["answer"], why)
            return None
        subject = row.get(self.args["subject"]) if self.args["subject"] else None
        explanation = row.get(self.args["explanation"]) if self.args["explanation"] else None
        given_id = row.get(self.args["id"]) if self.args["id"] else None
        return QARecord(
            id=str(given_id) if given_id not in (None, "") else key.split(" (id ")[0],
            question=question,
            context=[],
            options=options,
            answer=answer,
            rationale=explanation.strip()
            if isinstance(explanation, str) and explanation.strip()
            else None,
            meta={"subject": subject, "row": key},
        )

    def template_fields(self, record: QARecord) -> dict[str, str]:
        return {**super().template_fields(record), "subject": record.meta.get("subject") or ""}

    def breakdowns(
        self, records: list[QARecord], correct: list[float], predicted: list[str | None]
    ) -> dict[str, Any]:
        """Per-subject accuracy only when a subject column is mapped."""
        if not self.args["subject"]:
            return {}
        return super().breakdowns(records, correct, predicted)


def _with_id(key: str, given: Any) -> str:
    """ "line 5 (id q17)": a bad row is named by its line and by its own id."""
    return f"{key} (id {given})" if given not in (None, "") else key


def _strings(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) >= 2
        and all(isinstance(v, str) for v in value)
    )
