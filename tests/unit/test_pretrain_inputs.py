"""stage=pretrain on input that is not a text corpus (issue 37): one line each, naming the
file and what to change, before any model loads (the run recorded as failed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medalign.config import validate
from medalign.data.text_corpus import read_corpus
from medalign.errors import MedalignError
from tests.conftest import REPO, compose


def corpus_error(path: Path, *overrides: str) -> str:
    cfg = validate(compose("stage=pretrain", f"pretrain.path={path}", *overrides))
    with pytest.raises(MedalignError) as refused:
        read_corpus(cfg.pretrain)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_binary_file_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(bytes(range(256)) * 64)
    assert "not UTF-8 text" in corpus_error(weights)


def test_a_file_of_zero_bytes_that_decodes_is_still_not_text(tmp_path: Path) -> None:
    """NUL bytes are valid UTF-8: a sparse or zeroed file read as 'text' would be trained on."""
    zeros = tmp_path / "disk.txt"
    zeros.write_bytes(b"\x00" * 4096)
    message = corpus_error(zeros)
    assert str(zeros) in message and "binary" in message


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    message = corpus_error(tmp_path / "empty")
    assert "holds no .txt" in message


def test_a_folder_of_non_text_files_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (folder / "weights.safetensors").write_bytes(bytes(100))
    message = corpus_error(folder)
    assert "holds no .txt" in message


def test_a_jsonl_without_its_text_column_names_the_setting(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"body": "Velmora fever is caused by Tressin."}) + "\n")
    message = corpus_error(notes)
    assert f"{notes}, row 'line 1', field 'text': missing" in message
    assert "pretrain.text_field" in message


def test_a_broken_jsonl_row_hints_at_what_pretrain_reads(tmp_path: Path) -> None:
    """The loaders' hint, dataset.on_bad_row=skip, is not read by stage=pretrain."""
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"text": "ok"}\n{"text": "cut')
    message = corpus_error(notes)
    assert "line 2" in message and "on_bad_row" not in message


@pytest.mark.slow  # a subprocess CLI run; the refusal itself is tested in-process
def test_the_command_line_says_it_in_one_line_and_keeps_no_run(tmp_path: Path) -> None:
    zeros = tmp_path / "disk.txt"
    zeros.write_bytes(b"\x00" * 4096)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "medalign",
            "stage=pretrain",
            "logger=none",
            f"pretrain.path={zeros}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "binary" in done.stderr
    # refused before anything was trained: the run leaves no directory (issue 36)
    assert not (tmp_path / "run").exists()


def test_a_pretraining_job_shorter_than_logging_steps_has_a_first_loss(tmp_path: Path) -> None:
    from medalign.run import run

    text = tmp_path / "notes.txt"
    text.write_text(
        "\n\n".join(f"Velmora fever number {i} is caused by Tressin." for i in range(20))
    )
    overrides = ["stage=pretrain", "logger=none", f"pretrain.path={text}", "trainer.max_steps=2"]
    metrics = run(compose(*overrides, "trainer.max_length=32"), tmp_path / "run")
    assert isinstance(metrics["train/first_loss"], float)
