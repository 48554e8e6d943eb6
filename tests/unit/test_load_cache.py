"""Remembered loads (data/load_cache.py): keyed by every byte read, never stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medalign.config import validate
from medalign.data.load_cache import load_key, recall, remember
from medalign.data.loading import EXAMPLES_DIR
from tests.conftest import compose


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(EXAMPLES_DIR, root)
    return root


def _key(root: Path, *overrides: str) -> str | None:
    return load_key(validate(compose("stage=medmcqa", f"data_root={root}", *overrides)))


def _touch_bytes(path: Path) -> None:
    path.write_text(path.read_text() + "\n")  # same rows, other bytes


def test_unchanged_files_and_settings_give_the_same_key(data_root: Path) -> None:
    assert _key(data_root) == _key(data_root) is not None


@pytest.mark.parametrize(
    "changed",
    [
        "medmcqa/train.json",  # the training rows
        "medmcqa/dev.json",  # an evaluation set decontamination reads
        "medqa/4_options/phrases_no_exclude_test.jsonl",  # another one
    ],
)
def test_a_changed_byte_in_any_file_read_changes_the_key(data_root: Path, changed: str) -> None:
    before = _key(data_root)
    _touch_bytes(data_root / changed)
    assert _key(data_root) != before


@pytest.mark.parametrize(
    "override",
    [
        "dataset.limit=5",
        "dataset.ngram=8",
        "dataset.decontaminate=false",
        "dataset.on_bad_row=skip",
    ],
)
def test_a_changed_setting_changes_the_key(data_root: Path, override: str) -> None:
    assert _key(data_root, override) != _key(data_root)


def test_hub_data_and_held_out_validation_are_never_remembered(data_root: Path) -> None:
    assert _key(data_root, "dataset.hub_id=openlifescienceai/medmcqa") is None
    assert _key(data_root, "trainer.eval_steps=5") is None  # hold_out() edits the rows


def test_a_damaged_or_foreign_entry_is_not_read(tmp_path: Path, caplog) -> None:
    remember(tmp_path, "k1", {"rows": 3, "fingerprint": "f"})
    assert recall(tmp_path, "k1") == {"rows": 3, "fingerprint": "f"}
    (tmp_path / ".loads" / "k1.json").write_text('{"key": "k1", "summ')  # killed mid-write
    assert recall(tmp_path, "k1") is None
    remember(tmp_path, "k3", {"rows": 1})
    shutil.copy(tmp_path / ".loads" / "k3.json", tmp_path / ".loads" / "k4.json")
    assert recall(tmp_path, "k4") is None  # an entry written for another key
    assert "unreadable" in caplog.text and "not for key k4" in caplog.text
    assert not list((tmp_path / ".loads").glob(".tmp-*"))  # no staging file left behind


def test_an_edited_entry_is_not_believed(tmp_path: Path, caplog) -> None:
    """Regression (issue 24, defect 2): `summary.rows` set to 999 in the entry was logged
    and recorded in the manifest while training used 13 rows."""
    remember(tmp_path, "k1", {"rows": 13, "fingerprint": "f"})
    path = tmp_path / ".loads" / "k1.json"
    entry = json.loads(path.read_text())
    entry["summary"]["rows"] = 999
    path.write_text(json.dumps(entry))
    assert recall(tmp_path, "k1") is None  # the data is read again
    assert "checksum" in caplog.text and not path.exists()  # and the entry removed
