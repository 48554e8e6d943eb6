"""PubMedQA PQA-L (`ori_pqal.json`) and its hub layout -> yes/no/maybe records.

The file is one JSON object keyed by PMID: QUESTION, CONTEXTS (abstract sections
without the conclusion), LABELS (their section names), MESHES, final_decision (gold)
and LONG_ANSWER (the conclusion, kept as the rationale). The hub copy
`qiaojin/PubMedQA` (config `pqa_labeled`) has the same content with lower-case fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medalign.data.records import BadRows, QARecord
from medalign.errors import MedalignError
from medalign.registry import register

DECISIONS = ("yes", "no", "maybe")


class PubMedQALoader:
    example_file = "pubmedqa/ori_pqal.json"

    def read_file(self, path: Path) -> list[tuple[str, dict[str, Any]]]:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise MedalignError(
                f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
            ) from None
        if not isinstance(data, dict):
            raise MedalignError(
                f"{path}: expected a JSON object keyed by PMID (PQA-L ori_pqal.json layout), "
                f"got a {type(data).__name__}"
            )
        return [(str(k), v) for k, v in data.items()]

    def hub_rows(self, rows: Any) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for row in rows:
            context = row.get("context") or {}
            out.append(
                (
                    str(row.get("pubid")),
                    {
                        "QUESTION": row.get("question"),
                        "CONTEXTS": context.get("contexts"),
                        "LABELS": context.get("labels"),
                        "MESHES": context.get("meshes"),
                        "final_decision": row.get("final_decision"),
                        "LONG_ANSWER": row.get("long_answer"),
                    },
                )
            )
        return out

    def to_record(self, key: str, row: dict[str, Any], bad: BadRows) -> QARecord | None:
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
        labels = row.get("LABELS") or []
        long_answer = row.get("LONG_ANSWER")
        return QARecord(
            id=key,
            question=question.strip(),
            context=list(contexts),
            answer=decision,
            rationale=long_answer.strip() if isinstance(long_answer, str) else None,
            meta={"labels": list(labels), "meshes": list(row.get("MESHES") or [])},
        )


register("loader", "pubmedqa")(PubMedQALoader())


@register("formatter", "pubmedqa")
def format_pubmedqa(record: QARecord) -> str:
    """Abstract sections (with their labels), then the question and the allowed answers."""
    labels = record.meta.get("labels") or []
    sections = [
        f"{labels[i]}: {text}" if i < len(labels) and labels[i] else text
        for i, text in enumerate(record.context)
    ]
    abstract = "\n".join(sections)
    return (
        f"Abstract:\n{abstract}\n\nQuestion: {record.question}\n"
        "Answer yes, no or maybe, based on the abstract."
    )
