"""Data file readers: a bad byte or a cut-off file is a clear error naming file and place."""

from __future__ import annotations

from pathlib import Path

import pytest

from medalign.data import files
from medalign.data.files import read_head, read_json, read_jsonl
from medalign.data.records import BadRows
from medalign.errors import MedalignError

LATIN1 = "Résumé du cas".encode("latin-1")  # é is 0xE9: not UTF-8


def test_a_jsonl_file_not_in_utf8_names_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"q": "' + LATIN1 + b'"}\n')
    with pytest.raises(MedalignError) as info:
        read_jsonl(path, BadRows(path, "error"))
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "byte 26" in message
    assert "UTF-8" in message


def test_a_json_file_not_in_utf8_names_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "ori_pqal.json"
    path.write_bytes(b'{\n "1": {"QUESTION": "' + LATIN1 + b'"}\n}\n')
    with pytest.raises(MedalignError, match=r"ori_pqal.json: not UTF-8 text at line 2, byte 23"):
        read_json(path)


def test_recognizing_a_file_not_in_utf8_does_not_crash(tmp_path: Path) -> None:
    from medalign.tasks.medmcqa import MedMCQA

    path = tmp_path / "dev.jsonl"
    path.write_bytes(b'{"question": "' + LATIN1 + b'", "opa": "x", "cop": 1}\n')
    head = read_head(path)
    assert head is not None and MedMCQA.recognizes(head)


def test_truncated_json_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "radqa.json"
    path.write_text('{"data": [{"paragraphs": [{"context": "x", "qas": [')
    with pytest.raises(MedalignError, match=r"radqa.json: not valid JSON \(line 1, column"):
        read_json(path)


def test_csv_rows_with_header_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "cat_1.csv"
    path.write_text('harmful_medical_request,safe_response\n"a, b",c\n\n"multi\nline",d\nx,y\n')
    rows = files.read_csv_rows(path, header=True)
    assert rows[0] == (2, {"harmful_medical_request": "a, b", "safe_response": "c"})
    assert [n for n, _ in rows] == [2, 4, 6]  # the line each row starts on
    assert files.read_csv_rows(path)[0] == (1, ["harmful_medical_request", "safe_response"])


def test_a_csv_file_not_in_utf8_names_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "cat_2.csv"
    path.write_bytes(b"question,answer\nok,fine\n" + LATIN1 + b",x\n")
    with pytest.raises(MedalignError, match=r"cat_2.csv: not UTF-8 text at line 3, byte 25"):
        files.read_csv_rows(path, header=True)


def test_csv_rows_match_dictreader_for_short_and_long_rows(tmp_path: Path) -> None:
    import csv

    path = tmp_path / "cat_3.csv"
    path.write_text("a,b,c\n1,2\n1,2,3,4\n")
    with path.open(newline="") as handle:
        expected = list(csv.DictReader(handle))
    assert [row for _, row in files.read_csv_rows(path, header=True)] == expected


def test_a_large_file_is_announced_before_it_is_read(tmp_path, caplog, monkeypatch) -> None:
    """Issue 24, defect 5: a run must never sit silent while it reads data."""
    import logging

    from medalign.data import files

    monkeypatch.setattr(files, "LARGE_FILE", 1000)
    path = tmp_path / "big.jsonl"
    path.write_text('{"question": "x"}\n' * 200)
    with caplog.at_level(logging.INFO, logger="medalign.data.files"):
        files.read_text(path)
    assert f"reading {path} (0 MB) ..." in caplog.text
