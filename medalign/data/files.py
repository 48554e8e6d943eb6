"""Reading JSON, JSON Lines and CSV with errors that name the file and line.

Every reader decodes the whole file as UTF-8 first, so a stray Latin-1 byte is one
MedalignError naming the file, the line and the byte offset (not a UnicodeDecodeError
from deep inside the csv or json module).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medalign.data.records import BadRows
from medalign.errors import MedalignError

log = logging.getLogger(__name__)
LARGE_FILE = 20_000_000  # bytes: above this a read is announced (a few seconds or more)


def read_text(path: Path) -> str:
    """The file's text; not UTF-8 -> MedalignError with its line and byte offset. A large
    file is announced first, so a long read never sits silent."""
    size = Path(path).stat().st_size
    if size > LARGE_FILE:
        log.info("reading %s (%.0f MB) ...", path, size / 1e6)
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise MedalignError(
            f"{path}: not UTF-8 text at line {line}, byte {exc.start} "
            f"(0x{data[exc.start]:02x}: {exc.reason}); re-save the file as UTF-8"
        ) from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise MedalignError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None


def read_json_or_jsonl(path: Path) -> list[Any]:
    """The rows of a JSON list or a JSON Lines file (told apart by the first character)."""
    text = read_text(path)
    try:
        if text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise MedalignError(f"{path}: not valid JSON or JSON Lines: {exc}") from None


def read_jsonl(path: Path, bad: BadRows) -> list[tuple[str, dict[str, Any]]]:
    """(row key "line N", object) for each non-empty line; invalid lines go to `bad`."""
    rows = []
    for number, line in enumerate(read_text(path).split("\n"), start=1):
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


def table_file(folder: Path, split: str) -> Path:
    """`<split>.jsonl`, `.json` or `.csv` in `folder`, whichever exists (.jsonl if none):
    the layout of datasets declared in YAML (instructions, multiple_choice)."""
    for suffix in (".jsonl", ".json", ".csv"):
        if (folder / f"{split}{suffix}").is_file():
            return folder / f"{split}{suffix}"
    return folder / f"{split}.jsonl"


def read_rows(path: Path, bad: BadRows) -> list[tuple[str, dict[str, Any]]]:
    """(row key, object) of a JSON Lines, JSON list or CSV-with-header file (by suffix):
    the rows of a dataset whose columns a YAML maps. Keys name the line or item."""
    if path.suffix == ".csv":
        return [(f"line {n}", dict(row)) for n, row in read_csv_rows(path, header=True)]
    if path.suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list):
            raise MedalignError(f"{path}: expected a JSON list of objects")
        out = []
        for i, row in enumerate(data, start=1):
            if isinstance(row, dict):
                out.append((f"item {i}", row))
            else:
                bad.reject(f"item {i}", "<row>", f"expected an object, got {json.dumps(row)[:40]}")
        return out
    return read_jsonl(path, bad)


def read_csv_rows(path: Path, header: bool = False) -> list[tuple[int, Any]]:
    """(line number, row) of a CSV file: lists, or dicts keyed by the header row when
    `header`; the number is the line the row starts on (quoted fields may span lines).
    Blank rows are left out; not UTF-8 -> MedalignError naming line and byte."""
    return read_csv_table(path, header)[1]


def read_csv_table(path: Path, header: bool = True) -> tuple[list[str], list[tuple[int, Any]]]:
    """(the header row, `read_csv_rows`' rows); a malformed CSV (a field over the csv
    module's limit, a stray quote) is a MedalignError naming the file and line."""
    import csv
    import io

    reader: Any = csv.reader(io.StringIO(read_text(path), newline=""))
    rows: list[tuple[int, Any]] = []
    names: list[str] | None = None
    start = 1
    try:
        for row in reader:
            if row and header and names is None:
                names = row
            elif row:
                rows.append((start, _as_dict(names, row) if header else row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise MedalignError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    return names or [], rows


def _as_dict(names: list[str] | None, row: list[str]) -> dict[Any, Any]:
    """A row keyed by the header, as csv.DictReader does: missing cells None, extra
    cells in a list under the key None."""
    names = names or []
    out: dict[Any, Any] = {name: (row[i] if i < len(row) else None) for i, name in enumerate(names)}
    if len(row) > len(names):
        out[None] = row[len(names) :]
    return out


@dataclass(frozen=True)
class FileHead:
    """The start of a data file: what a Task's `recognizes` looks at to claim a file as
    its own layout (data/loading.py refuses a file another Task claims)."""

    text: str  # the first 4 KB, bad bytes replaced (the reader reports them properly)
    first_line: str
    first_row: dict[str, Any] | None  # the first line as a JSON object, if it is one


def read_head(path: Path) -> FileHead | None:
    """The first 4 KB of a file, its first line and that line as JSON; None for a folder."""
    if path.is_dir():
        return None
    with path.open("rb") as handle:
        text = handle.read(4096).decode("utf-8", errors="replace")
    first_line = text.lstrip().split("\n", 1)[0].strip()
    try:
        row = json.loads(first_line)
    except json.JSONDecodeError:
        row = None
    return FileHead(text, first_line, row if isinstance(row, dict) else None)
