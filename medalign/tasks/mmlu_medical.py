"""MMLU's medical subjects in MMLU's original CSV layout, scored as lm-eval's `mmlu_<subject>`.

    python -m medalign stage=eval eval.datasets=[mmlu_medical]
    python -m medalign stage=eval eval.datasets=[mmlu_medical] \\
        datasets.mmlu_medical.path=/data/mmlu/data

Files: `<split>/<subject>_<split>.csv`, no header, columns question, A, B, C, D, answer
letter (the `data/` folder of the original archive has dev/, val/ and test/). The six
subjects medical LLM papers report are read by default (`task_args.subjects`). The
prompt is lm-eval's: the subject's description line, a blank line, the question
(stripped, as lm-eval's template does), the four options and "Answer:". Results: accuracy
per subject and its macro average over subjects (what the papers tabulate), beside the
overall accuracy over all questions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from medalign.data.files import read_csv_rows
from medalign.data.records import BadRows, QARecord
from medalign.errors import MedalignError
from medalign.registry import register
from medalign.tasks.base import LoglikItem
from medalign.tasks.choice import LetterChoiceTask

SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)
LETTERS = ("A", "B", "C", "D")


@register("task", "mmlu_medical")
class MMLUMedical(LetterChoiceTask):
    name = "mmlu_medical"
    dev_split = "val"
    arg_defaults: ClassVar[dict[str, Any]] = {"subjects": list(SUBJECTS)}
    breakdown_key, breakdown_name = "subject", "subject"

    def split_file(self, folder: Path) -> Path:
        return folder / self.cfg.split

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        subjects = list(self.args["subjects"])
        files = [path] if path.is_file() else [path / f"{s}_{path.name}.csv" for s in subjects]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise MedalignError(
                f"dataset {self.cfg.name!r}: no MMLU file {missing[0]} (expected "
                f"<split>/<subject>_<split>.csv for task_args.subjects={subjects})"
            )
        records = []
        for file in files:
            subject = file.stem.rsplit("_", 1)[0]
            for number, row in read_csv_rows(file):
                record = to_record(file, number, row, subject, bad)
                if record is not None:
                    records.append(record)
        return records

    def read_hub(self, rows: Any, bad: BadRows) -> list[QARecord]:
        """`cais/mmlu` rows: question, subject, choices [4], answer (0-3)."""
        records = []
        for i, row in enumerate(rows):
            choices, answer = row.get("choices") or [], row.get("answer")
            if row.get("subject") not in self.args["subjects"]:
                continue
            flat = [row.get("question"), *choices, LETTERS[answer] if answer in range(4) else None]
            record = to_record(Path("hub"), i, flat, str(row.get("subject")), bad)
            if record is not None:
                records.append(record)
        return records

    def template_fields(self, record: QARecord) -> dict[str, str]:
        subject = str(record.meta["subject"]).replace("_", " ")
        return {**super().template_fields(record), "subject": subject}

    def loglik_item(self, record: QARecord) -> LoglikItem:
        """lm-eval `mmlu_<subject>` (0-shot): description + "\\n\\n" + question.strip()
        + "\\nA. …\\nD. …\\nAnswer:", choices " A".." D"."""
        subject = str(record.meta["subject"]).replace("_", " ")
        description = f"The following are multiple choice questions (with answers) about {subject}."
        options = record.options or {}
        lines = "".join(f"\n{k}. {v}" for k, v in options.items())
        if self.cfg.answer_as == "text":  # lm-eval's mmlu_continuation: no options shown
            return LoglikItem(
                f"{description}\n\nQuestion: {record.question.strip()}\nAnswer:",
                self.choices(record),
                self.choices(record).index(self.gold(record)),
            )
        context = f"{description}\n\n{record.question.strip()}{lines}\nAnswer:"
        return LoglikItem(context, list(LETTERS), LETTERS.index(str(record.answer)))

    def breakdowns(
        self, records: list[QARecord], correct: list[float], predicted: list[str | None]
    ) -> dict[str, Any]:
        """Per-subject accuracy and its macro average (the papers' MMLU-medical number)."""
        out = super().breakdowns(records, correct, predicted)
        per_subject = out["by_subject"]
        macro = sum(v["acc"] for v in per_subject.values()) / len(per_subject)
        out["metrics"] = {"acc_macro": {"value": macro, "n": len(per_subject)}}
        return out

    def example_scores(
        self, records: list[QARecord], correct: list[float]
    ) -> list[dict[str, float]]:
        """acc_macro as a per-question weight: correct x n / (subjects x n_subject), whose
        mean over the questions is the macro average."""
        sizes = Counter(str(r.meta.get("subject")) for r in records)
        scale = len(records) / len(sizes) if sizes else 0.0
        return [
            {"acc_macro": ok * scale / sizes[str(r.meta.get("subject"))]}
            for r, ok in zip(records, correct, strict=True)
        ]


def to_record(
    file: Path, number: int, row: list[Any], subject: str, bad: BadRows
) -> QARecord | None:
    key = f"{file.name} line {number}"
    if len(row) != 6:
        bad.reject(
            key, "<row>", f"expected 6 columns (question, A, B, C, D, answer), got {len(row)}"
        )
        return None
    question, *options, answer = row
    if not isinstance(question, str) or not question.strip():
        bad.reject(key, "question", "missing or empty")
        return None
    for letter, text in zip(LETTERS, options, strict=True):
        if not isinstance(text, str) or not text.strip():
            bad.reject(key, letter, "missing or empty option text")
            return None
    if answer not in LETTERS:
        bad.reject(key, "answer", f"{answer!r} is not one of A, B, C, D")
        return None
    return QARecord(
        id=f"{subject}:{number}",
        question=question,
        context=[],
        options=dict(zip(LETTERS, options, strict=True)),
        answer=answer,
        meta={"subject": subject, "row": key},
    )
