"""The PubMedQA PQA-L loader on the bundled example, the real sample, and bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from medalign.config import DatasetConfig
from medalign.data.loading import load_records
from medalign.data.records import BadRows
from medalign.errors import MedalignError
from medalign.tasks.pubmedqa import PubMedQA, official_test_ids, to_record
from tests.conftest import dataset_cfg, default, shared_file


def _write(tmp_path: Path, rows: object, name: str = "ori_pqal.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(rows, indent=4))
    return path


def _row(**changes: object) -> dict:
    row = {
        "QUESTION": "Does drug X lower blood pressure?",
        "CONTEXTS": ["We randomised 100 adults.", "Pressure fell by 10 mmHg."],
        "LABELS": ["METHODS", "RESULTS"],
        "MESHES": ["Hypertension"],
        "final_decision": "yes",
        "LONG_ANSWER": "Drug X lowered blood pressure.",
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v is not None}


def test_bundled_example_loads_every_label_and_keeps_test_pmids_out() -> None:
    train = load_records(dataset_cfg("pubmedqa"))
    test = load_records(dataset_cfg("pubmedqa", split="test"))
    everything = load_records(dataset_cfg("pubmedqa", split="all"))
    assert (len(train.records), len(test.records), len(everything.records)) == (22, 8, 30)
    assert not {r.id for r in train.records} & {r.id for r in test.records}
    assert set(Counter(r.answer for r in train.records)) == {"yes", "no", "maybe"}
    assert all(r.rationale and r.context for r in train.records)


def test_test_pmids_come_from_test_ground_truth(tmp_path: Path) -> None:
    rows = {str(i): _row(QUESTION=f"Question {i}?") for i in range(4)}
    path = _write(tmp_path, rows)
    (tmp_path / "test_ground_truth.json").write_text(json.dumps({"1": "yes", "3": "no"}))
    train = load_records(default(DatasetConfig, path=str(tmp_path)))
    test = load_records(default(DatasetConfig, path=str(path), split="test"))
    assert [r.id for r in train.records] == ["0", "2"]
    assert [r.id for r in test.records] == ["1", "3"]


def test_without_ground_truth_the_official_test_pmids_split_the_file(tmp_path: Path) -> None:
    official = sorted(official_test_ids())
    rows = {pmid: _row(QUESTION=f"Question {pmid}?") for pmid in [*official, "1", "2"]}
    path = _write(tmp_path, rows)
    train = load_records(default(DatasetConfig, path=str(path)))
    test = load_records(default(DatasetConfig, path=str(path), split="test"))
    assert len(official) == 500
    assert sorted(r.id for r in train.records) == ["1", "2"]
    assert sorted(r.id for r in test.records) == official


def test_test_pmids_missing_from_the_data_are_an_error_not_a_silent_drop(tmp_path: Path) -> None:
    """Issue 12 item 7: the official script asserts all and only the test PMIDs."""
    rows = {str(i): _row(QUESTION=f"Question {i}?") for i in range(4)}
    path = _write(tmp_path, rows)
    (tmp_path / "test_ground_truth.json").write_text(json.dumps({"1": "yes", "9": "no"}))
    with pytest.raises(MedalignError, match="1 of the 2 official test PMIDs are not in the data"):
        load_records(default(DatasetConfig, path=str(path), split="test"))
    warned = default(
        DatasetConfig, path=str(path), split="test", task_args={"on_missing_test_ids": "warn"}
    )
    assert [r.id for r in load_records(warned).records] == ["1"]


def test_real_sample_has_the_documented_label_counts() -> None:
    path = shared_file("pubmedqa", "ori_pqal_sample.json")
    data = load_records(default(DatasetConfig, path=str(path)))
    assert len(data.records) == 200
    assert Counter(r.answer for r in data.records) == {"yes": 110, "no": 68, "maybe": 22}
    first = data.records[0]
    assert first.id == "10808977"
    assert first.question.startswith("Can tailored interventions increase mammography")
    assert first.meta["labels"][0] and len(first.meta["labels"]) == len(first.context)
    assert data.skipped == {}


def test_fingerprint_follows_the_data(tmp_path: Path) -> None:
    a = load_records(default(DatasetConfig, path=str(_write(tmp_path, {"1": _row()}, "a.json"))))
    b = load_records(default(DatasetConfig, path=str(_write(tmp_path, {"1": _row()}, "b.json"))))
    c = load_records(
        default(
            DatasetConfig, path=str(_write(tmp_path, {"1": _row(final_decision="no")}, "c.json"))
        )
    )
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_limit_keeps_the_first_rows(tmp_path: Path) -> None:
    rows = {str(i): _row(QUESTION=f"Question {i}?") for i in range(5)}
    data = load_records(default(DatasetConfig, path=str(_write(tmp_path, rows)), limit=2))
    assert [r.id for r in data.records] == ["0", "1"]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(MedalignError, match=rf"file not found: {missing} \(dataset.path"):
        load_records(default(DatasetConfig, path=str(missing)))


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "1": {"QUESTION": "x",\n')
    with pytest.raises(MedalignError, match=rf"{path}: not valid JSON \(line \d+"):
        load_records(default(DatasetConfig, path=str(path)))


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        (_row(QUESTION=None), "QUESTION", "missing or empty"),
        (_row(final_decision="perhaps"), "final_decision", "'perhaps' is not one of yes/no/maybe"),
        (_row(CONTEXTS=[]), "CONTEXTS", "missing or empty list"),
    ],
)
def test_bad_row_names_file_row_and_field(
    tmp_path: Path, row: dict, field: str, problem: str
) -> None:
    path = _write(tmp_path, {"111": _row(), "222": row})
    with pytest.raises(MedalignError) as err:
        load_records(default(DatasetConfig, path=str(path)))
    message = str(err.value)
    assert message.startswith(f"{path}, row '222', field '{field}': {problem}")
    assert "on_bad_row=skip" in message


def test_skip_mode_counts_bad_rows(tmp_path: Path) -> None:
    rows = {
        "1": _row(),
        "2": _row(final_decision="perhaps"),
        "3": _row(CONTEXTS=[]),
        "4": _row(final_decision="unsure"),
    }
    data = load_records(default(DatasetConfig, path=str(_write(tmp_path, rows)), on_bad_row="skip"))
    assert [r.id for r in data.records] == ["1"]
    assert sum(data.skipped.values()) == 3
    assert data.skipped["CONTEXTS: missing or empty list of abstract sections"] == 1


def test_a_file_with_only_bad_rows_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, {"1": _row(final_decision="x")})
    with pytest.raises(MedalignError, match="no usable rows"):
        load_records(default(DatasetConfig, path=str(path), on_bad_row="skip"))


def test_hub_layout_maps_to_the_same_record() -> None:
    hub_row = {
        "pubid": 123,
        "question": "Does drug X lower blood pressure?",
        "context": {
            "contexts": ["We randomised 100 adults.", "Pressure fell by 10 mmHg."],
            "labels": ["METHODS", "RESULTS"],
            "meshes": ["Hypertension"],
        },
        "long_answer": "Drug X lowered blood pressure.",
        "final_decision": "yes",
    }
    bad = BadRows("hub:qiaojin/PubMedQA", "error")
    from_hub = PubMedQA(default(DatasetConfig, split="all")).read_hub([hub_row], bad)
    assert from_hub == [to_record("123", _row(), bad)]


def test_hub_copy_is_split_by_the_official_test_pmids() -> None:
    """Issue 12 item 6: qiaojin/PubMedQA has one split holding all 1,000 labelled rows;
    training on it must not train on the 500 official test PMIDs."""
    test_pmid = sorted(official_test_ids())[0]
    rows = [
        {"pubid": int(pmid), "question": f"Q {pmid}?", "final_decision": "yes",
         "context": {"contexts": ["Some text."], "labels": ["RESULTS"]}}
        for pmid in (test_pmid, "123")
    ]  # fmt: skip
    bad = BadRows("hub", "error")
    assert PubMedQA(default(DatasetConfig, split="train")).hub_split() == "train"
    train = PubMedQA(default(DatasetConfig, split="train")).read_hub(rows, bad)
    test = PubMedQA(
        default(DatasetConfig, split="test", task_args={"on_missing_test_ids": "warn"})
    ).read_hub(rows, bad)
    assert [r.id for r in train] == ["123"]
    assert [r.id for r in test] == [test_pmid]


@pytest.mark.parametrize("mode", ["error", "warn"])
def test_every_test_pmid_missing_is_one_error_whose_hint_works(tmp_path: Path, mode: str) -> None:
    """Issue 37: the error suggested on_missing_test_ids=warn, which fails the same way when
    no test PMID is present (nothing to score). The hint now names what does work."""
    rows = {str(i): _row(QUESTION=f"Question {i}?") for i in range(4)}
    path = _write(tmp_path, rows)
    (tmp_path / "test_ground_truth.json").write_text(json.dumps({"8": "yes", "9": "no"}))
    cfg = default(
        DatasetConfig, path=str(path), split="test", task_args={"on_missing_test_ids": mode}
    )
    with pytest.raises(MedalignError) as refused:
        load_records(cfg)
    message = str(refused.value)
    assert "none of the 2 official test PMIDs" in message
    assert "on_missing_test_ids=warn" not in message
    assert "split=all" in message  # the hint, followed:
    every = load_records(default(DatasetConfig, path=str(path), split="all"))
    assert sorted(r.id for r in every.records) == ["0", "1", "2", "3"]
