"""MedSafetyBench (CSV: index, harmful_medical_request, safe_response) -> safety records.

Harmful medical requests, each with a safe response, in nine files per source, one per
principle of the AMA Code of Medical Ethics (`med_safety_demonstrations_category_N.csv`).
A folder path is the benchmark's `datasets/` folder (or any folder holding `train/` and
`test/`); `split` picks the sub-folder and every CSV below it is read. The record's
question is the request, its answer the safe response, `meta.category` the principle.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from medalign.config import DatasetConfig
from medalign.data.records import BadRows, QARecord
from medalign.errors import MedalignError
from medalign.registry import register

COLUMNS = ("harmful_medical_request", "safe_response")
_CATEGORY = re.compile(r"category_(\d+)")


@register("loader", "medsafetybench")
class MedSafetyBenchLoader:
    @staticmethod
    def split_file(folder: Path, cfg: DatasetConfig) -> Path:
        split = folder / cfg.split
        return split if split.is_dir() else folder

    @staticmethod
    def read(path: Path, cfg: DatasetConfig, bad: BadRows) -> list[QARecord]:
        files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
        if not files:
            raise MedalignError(f"{path}: no MedSafetyBench CSV files there")
        records = []
        for file in files:
            with file.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise MedalignError(
                        f"{file}: not a MedSafetyBench CSV: missing column {missing[0]!r} "
                        f"(header: {reader.fieldnames})"
                    )
                for number, row in enumerate(reader, start=2):
                    record = to_record(file, number, row, bad)
                    if record is not None:
                        records.append(record)
        return records

    @staticmethod
    def read_hub(rows: Any, cfg: DatasetConfig, bad: BadRows) -> list[QARecord]:
        out = [to_record(Path("hub"), i, dict(row), bad) for i, row in enumerate(rows)]
        return [r for r in out if r is not None]


def to_record(file: Path, number: int, row: dict[str, Any], bad: BadRows) -> QARecord | None:
    key = f"{file.name} line {number}"
    request, safe = row.get(COLUMNS[0]), row.get(COLUMNS[1])
    if not isinstance(request, str) or not request.strip():
        bad.reject(key, COLUMNS[0], "missing or empty")
        return None
    if not isinstance(safe, str) or not safe.strip():
        bad.reject(key, COLUMNS[1], "missing or empty")
        return None
    category = _CATEGORY.search(file.name)
    return QARecord(
        id=f"{file.parent.name}/{file.stem}:{number}",
        question=request.strip(),
        context=[],
        answer=safe.strip(),
        meta={"category": int(category.group(1)) if category else None, "source": file.parent.name},
    )


@register("template_fields", "medsafetybench")
def medsafetybench_fields(record: QARecord) -> dict[str, str]:
    return {"category": str(record.meta.get("category") or "")}
