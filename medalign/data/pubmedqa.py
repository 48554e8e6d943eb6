"""PubMedQA PQA-L (`ori_pqal.json`) and its hub layout -> yes/no/maybe records.

The file is one JSON object keyed by PMID: QUESTION, CONTEXTS (abstract sections
without the conclusion), LABELS (their section names), MESHES, final_decision (gold)
and LONG_ANSWER (the conclusion, kept as the rationale). The official test split is the
500 PMIDs of `test_ground_truth.json`; when that file sits next to `ori_pqal.json`,
split=train leaves those PMIDs out and split=test keeps only them. The hub copy
`qiaojin/PubMedQA` (config `pqa_labeled`, or `pqa_artificial` for PQA-A) has the same
content with lower-case fields.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from medalign.config import DatasetConfig
from medalign.data.files import read_json
from medalign.data.records import BadRows, QARecord
from medalign.errors import MedalignError
from medalign.registry import register

log = logging.getLogger(__name__)
DECISIONS = ("yes", "no", "maybe")
TEST_IDS_FILE = "test_ground_truth.json"


@register("loader", "pubmedqa")
class PubMedQALoader:
    @staticmethod
    def split_file(folder: Path, cfg: DatasetConfig) -> Path:
        return folder / "ori_pqal.json"

    @classmethod
    def read(cls, path: Path, cfg: DatasetConfig, bad: BadRows) -> list[QARecord]:
        data = read_json(path)
        if not isinstance(data, dict):
            raise MedalignError(
                f"{path}: expected a JSON object keyed by PMID (PQA-L ori_pqal.json layout), "
                f"got a {type(data).__name__}"
            )
        rows = [(str(k), v) for k, v in data.items()]
        return cls._records(_select_split(rows, path, cfg.split), bad)

    @classmethod
    def read_hub(cls, rows: Any, cfg: DatasetConfig, bad: BadRows) -> list[QARecord]:
        return cls._records([hub_row(row) for row in rows], bad)

    @staticmethod
    def _records(rows: list[tuple[str, Any]], bad: BadRows) -> list[QARecord]:
        return [r for key, row in rows if (r := to_record(key, row, bad)) is not None]


def hub_row(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A `qiaojin/PubMedQA` row in the original field names."""
    context = row.get("context") or {}
    return str(row.get("pubid")), {
        "QUESTION": row.get("question"),
        "CONTEXTS": context.get("contexts"),
        "LABELS": context.get("labels"),
        "MESHES": context.get("meshes"),
        "final_decision": row.get("final_decision"),
        "LONG_ANSWER": row.get("long_answer"),
    }


def to_record(key: str, row: Any, bad: BadRows) -> QARecord | None:
    if not isinstance(row, dict):
        bad.reject(key, "<row>", f"expected an object, got {type(row).__name__}")
        return None
    question = row.get("QUESTION")
    if not isinstance(question, str) or not question.strip():
        bad.reject(key, "QUESTION", "missing or empty")
        return None
    contexts = row.get("CONTEXTS")
    if not isinstance(contexts, list) or not contexts:
        bad.reject(key, "CONTEXTS", "missing or empty list of abstract sections")
        return None
    if not all(isinstance(c, str) for c in contexts):
        bad.reject(key, "CONTEXTS", "every entry must be a string")
        return None
    decision = row.get("final_decision")
    if decision not in DECISIONS:
        bad.reject(key, "final_decision", f"{decision!r} is not one of yes/no/maybe")
        return None
    long_answer = row.get("LONG_ANSWER")
    return QARecord(
        id=key,
        question=question.strip(),
        context=list(contexts),
        answer=decision,
        rationale=long_answer.strip() if isinstance(long_answer, str) else None,
        meta={"labels": list(row.get("LABELS") or []), "meshes": list(row.get("MESHES") or [])},
    )


def _select_split(rows: list[tuple[str, Any]], path: Path, split: str) -> list[tuple[str, Any]]:
    if split == "all":
        return rows
    if split not in ("train", "test"):
        raise MedalignError(f"dataset.split: PubMedQA PQA-L has train, test or all, not {split!r}")
    ids_file = path.with_name(TEST_IDS_FILE)
    if not ids_file.is_file():
        if split == "test":
            raise MedalignError(
                f"dataset.split=test: no {TEST_IDS_FILE} next to {path} to define the test PMIDs"
            )
        log.warning("%s: no %s beside it, so test PMIDs cannot be excluded", path, TEST_IDS_FILE)
        return rows
    test_ids = set(read_json(ids_file))
    return [(k, v) for k, v in rows if (k in test_ids) == (split == "test")]


@register("template_fields", "pubmedqa")
def pubmedqa_fields(record: QARecord) -> dict[str, str]:
    """{context}: the abstract sections, each with its label (BACKGROUND: ...)."""
    labels = record.meta.get("labels") or []
    sections = [
        f"{labels[i]}: {text}" if i < len(labels) and labels[i] else text
        for i, text in enumerate(record.context)
    ]
    return {"context": "\n".join(sections)}
