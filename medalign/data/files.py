"""Reading JSON and JSON Lines with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medalign.data.records import BadRows
from medalign.errors import MedalignError


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MedalignError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None


def read_jsonl(path: Path, bad: BadRows) -> list[tuple[str, dict[str, Any]]]:
    """(row key "line N", object) for each non-empty line; invalid lines go to `bad`."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            key = f"line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                bad.reject(key, "<json>", f"not valid JSON (column {exc.colno}): {exc.msg}")
                continue
            if not isinstance(row, dict):
                bad.reject(key, "<row>", f"expected a JSON object, got {type(row).__name__}")
                continue
            rows.append((key, row))
    return rows


def read_csv_rows(path: Path, header: bool = False) -> list[tuple[int, Any]]:
    """(line number, row) of a CSV file: lists, or dicts when `header`; UTF-8 checked."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as handle:
            if header:
                reader: Any = csv.DictReader(handle)
                return [(number, row) for number, row in enumerate(reader, start=2)]
            return [(number, row) for number, row in enumerate(csv.reader(handle), start=1) if row]
    except UnicodeDecodeError as exc:
        raise MedalignError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); re-save it as UTF-8"
        ) from None


def sniff_format(path: Path) -> str | None:
    """Which dataset layout a file is in, from its first record; None if unknown."""
    if path.is_dir():
        return None
    with path.open(encoding="utf-8") as handle:
        head = handle.read(4096)
    first_line = head.lstrip().split("\n", 1)[0].strip()
    if "harmful_medical_request" in first_line:
        return "medsafetybench"
    if first_line == "{":  # a pretty-printed JSON document
        if '"data"' in head and '"paragraphs"' in head:
            return "radqa"
        return "pubmedqa" if '"QUESTION"' in head else None
    try:
        row = json.loads(first_line)
    except json.JSONDecodeError:
        return None
    if not isinstance(row, dict):
        return None
    if "data" in row and "paragraphs" in first_line:
        return "radqa"
    if "opa" in row or "cop" in row:
        return "medmcqa"
    if "answer_idx" in row or ("options" in row and "answer" in row) or "ending0" in row:
        return "medqa"
    if any(isinstance(v, dict) and "QUESTION" in v for v in row.values()):
        return "pubmedqa"
    return None
