"""A later stage over unchanged data starts training without reading a row
(data/load_cache.py + the tokenized cache), and ends with the same manifest and loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.run import run
from tests.conftest import compose

FAST = ["stage=medmcqa", "logger=none", "trainer.max_steps=2", "dataset.limit=12"]
CACHE_FIELDS = ("load_cache", "tokenized_cache", "preprocess_s")


def _data(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["stages"][0]["data"]


def test_a_second_stage_over_unchanged_data_reads_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medalign.data.loading as loading

    args = [*FAST, f"preprocess.cache_dir={tmp_path / 'cache'}", "eval.after_train=false"]
    first = run(compose(*args), tmp_path / "first")

    def no_reading(*_: object, **__: object) -> None:
        raise AssertionError("a data file was read")

    with monkeypatch.context() as patch:
        patch.setattr(loading, "load_records", no_reading)
        second = run(compose(*args), tmp_path / "second")
    before, after = _data(tmp_path / "first"), _data(tmp_path / "second")
    assert before["load_cache"]["hit"] is False and after["load_cache"]["hit"] is True
    assert after["load_cache"]["key"] == before["load_cache"]["key"]
    assert after["tokenized_cache"]["hit"] is True
    same = {k: v for k, v in before.items() if k not in CACHE_FIELDS}
    assert {k: v for k, v in after.items() if k not in CACHE_FIELDS} == same
    assert same["rows"] == 12 and same["fingerprint"]
    assert second["train/loss"] == first["train/loss"]

    # the load is remembered but these tokens are not: the rows are read again
    run(compose(*args, "trainer.max_length=512"), tmp_path / "third")
    third = _data(tmp_path / "third")
    assert third["load_cache"]["hit"] is False and third["tokenized_cache"]["hit"] is False
    assert third["fingerprint"] == same["fingerprint"]


def test_a_read_only_cache_folder_is_one_warning_and_training_goes_on(
    tmp_path: Path, caplog
) -> None:
    """Regression (issue 24, defect 4): a read-only preprocess.cache_dir gave two
    tracebacks (OSError: [Errno 30])."""
    import logging

    from tests.conftest import tmpfs

    with tmpfs(tmp_path / "ro", "ro,size=64k") as cache:
        overrides = ["stage=pubmedqa", "logger=none", "dataset.limit=8", "trainer.max_steps=2"]
        overrides += ["eval.after_train=false", f"preprocess.cache_dir={cache}"]
        with caplog.at_level(logging.WARNING):
            run(compose(*overrides), tmp_path / "run")
    assert f"preprocess.cache_dir {cache} cannot be written" in caplog.text
    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done"


def test_a_remembered_load_that_disagrees_with_its_tokenized_entry_is_read_again(
    tmp_path: Path, caplog
) -> None:
    """Issue 24, defect 2: a remembered load is checked against the tokenized entry it
    points to (key, row count), not only against its own checksum."""
    import logging

    from medalign.data import load_cache

    args = [*FAST, f"preprocess.cache_dir={tmp_path / 'cache'}", "eval.after_train=false"]
    run(compose(*args), tmp_path / "first")
    (path,) = (tmp_path / "cache" / ".loads").glob("*.json")
    entry = json.loads(path.read_text())
    assert entry["summary"]["tokenized"]["rows"] == 12
    entry["summary"]["tokenized"]["rows"] = 999  # a consistent entry that tells another story
    entry["checksum"] = load_cache._checksum(entry["summary"])
    path.write_text(json.dumps(entry))
    with caplog.at_level(logging.WARNING):
        run(compose(*args), tmp_path / "second")
    assert "says 999 rows in tokenized entry" in caplog.text
    data = _data(tmp_path / "second")
    assert data["load_cache"]["hit"] is False and data["rows"] == 12
    assert "tokenized" not in data
