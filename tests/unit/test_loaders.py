"""MedMCQA, MedQA and RadQA loaders: real samples, label conventions, bad rows, wrong files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from medalign.data.loading import load_records
from medalign.data.records import BadRows
from medalign.errors import MedalignError
from medalign.tasks.medmcqa import MedMCQA
from tests.conftest import dataset_cfg, shared_file


def _jsonl(tmp_path: Path, rows: list, name: str = "train.json") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# --- MedMCQA -------------------------------------------------------------------------

MCQ = {
    "question": "Drug of choice for absence seizures?",
    "exp": "Ethosuximide.",
    "cop": 4,
    "opa": "Phenytoin",
    "opb": "Carbamazepine",
    "opc": "Phenobarbitone",
    "opd": "Ethosuximide",
    "subject_name": "Pharmacology",
    "topic_name": None,
    "id": "q1",
    "choice_type": "single",
}


def test_medmcqa_examples_load_with_detected_one_indexed_cop() -> None:
    train = load_records(dataset_cfg("medmcqa"))
    dev = load_records(dataset_cfg("medmcqa", split="dev"))
    assert (len(train.records), len(dev.records)) == (30, 10)
    assert set(Counter(r.answer for r in train.records)) == {"A", "B", "C", "D"}
    scurvy = train.records[0]
    assert scurvy.options["C"] == "Vitamin C" and scurvy.answer == "C"


def test_medmcqa_real_dev_rows_have_their_gold_letters() -> None:
    path = shared_file("medmcqa", "dev_converted_sample.json")
    data = load_records(dataset_cfg("medmcqa", path=str(path)))
    assert len(data.records) == 300
    assert Counter(r.answer for r in data.records) == {"A": 96, "B": 88, "C": 63, "D": 53}
    by_id = {r.id: r for r in data.records}
    gonorrhoea = by_id["fb8c4e20-6d34-461e-8e14-45fcd8c662e4"]  # cop 4 in the file
    assert gonorrhoea.answer == "D"
    assert gonorrhoea.options["D"] == "Azithromycin 2 g oral single dose"
    assert by_id["f9ff6912-3b5d-4f69-bd71-598dc46cd041"].answer == "A"


def test_medmcqa_cop_convention_both_ways() -> None:
    """The same rows as hub rows (cop 0-indexed) give the same gold letters."""
    path = shared_file("medmcqa", "dev_converted_sample.json")
    from_file = load_records(dataset_cfg("medmcqa", path=str(path))).records
    hub_rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in hub_rows:
        row["cop"] -= 1
    cfg = dataset_cfg("medmcqa")
    from_hub = MedMCQA(cfg).read_hub(hub_rows, BadRows("hub", "error"))
    assert [r.answer for r in from_hub] == [r.answer for r in from_file]
    # Told the wrong base, every label would shift: the tell-tale is a changed gold letter.
    wrong = load_records(dataset_cfg("medmcqa", path=str(path), cop_base=0, on_bad_row="skip"))
    gold = {r.id: r.answer for r in from_file}
    assert wrong.skipped == {"cop: 4 is outside the options (0..3)": 53}
    assert not [r.id for r in wrong.records if r.answer == gold[r.id]]


def test_medmcqa_ambiguous_cop_must_be_told() -> None:
    path = shared_file("medmcqa", "train.sample.json")  # one row, cop 3
    with pytest.raises(MedalignError, match=r"cannot tell whether field 'cop' is 1-indexed.*\[3\]"):
        load_records(dataset_cfg("medmcqa", path=str(path)))
    record = load_records(dataset_cfg("medmcqa", path=str(path), cop_base=1)).records[0]
    assert record.answer == "C" and "segmented, double-stranded RNA" in record.options["C"]
    assert record.meta["choice_type"] == "multi" and record.rationale.startswith("Rotavirus")


def test_medmcqa_test_split_is_refused() -> None:
    with pytest.raises(MedalignError, match="MedMCQA test split has no answers"):
        load_records(dataset_cfg("medmcqa", split="test"))
    path = shared_file("medmcqa", "test.sample.json")
    with pytest.raises(
        MedalignError, match=r"row 'line 1 \(id [0-9a-f-]+\)', field 'cop': missing answer"
    ):
        load_records(dataset_cfg("medmcqa", path=str(path), cop_base=1))


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({**MCQ, "cop": 7}, "cop", "7 is outside the options (1..4)"),
        ({**MCQ, "question": " "}, "question", "missing or empty"),
        ({k: v for k, v in MCQ.items() if k != "opb"}, "opb", "missing option text"),
        ("{not json", "<json>", "not valid JSON"),
    ],
)
def test_medmcqa_bad_rows(tmp_path: Path, row: object, field: str, problem: str) -> None:
    path = _jsonl(tmp_path, [MCQ, row])
    with pytest.raises(MedalignError) as err:
        load_records(dataset_cfg("medmcqa", path=str(path)))
    row_key = "line 2 (id q1)" if isinstance(row, dict) else "line 2"  # the row's own id too
    assert str(err.value).startswith(f"{path}, row '{row_key}', field '{field}': {problem}")
    kept = load_records(dataset_cfg("medmcqa", path=str(path), on_bad_row="skip"))
    assert len(kept.records) == 1 and sum(kept.skipped.values()) == 1


def test_a_medqa_file_given_to_medmcqa_is_named() -> None:
    path = shared_file("medqa", "US_test_sample.jsonl")
    with pytest.raises(MedalignError, match="this is a medqa file, not medmcqa"):
        load_records(dataset_cfg("medmcqa", path=str(path)))


# --- MedQA ---------------------------------------------------------------------------


def test_medqa_both_real_variants_agree_on_every_answer() -> None:
    four = load_records(
        dataset_cfg(
            "medqa",
            path=str(shared_file("medqa", "US_4_options_phrases_no_exclude_test_sample.jsonl")),
            options=4,
        )
    ).records
    five = load_records(
        dataset_cfg("medqa", path=str(shared_file("medqa", "US_test_sample.jsonl")), options=5)
    ).records
    assert len(four) == len(five) == 300
    assert [r.question for r in four] == [r.question for r in five]
    assert [r.meta["answer_text"] for r in four] == [r.meta["answer_text"] for r in five]
    assert Counter(r.meta["step"] for r in five) == {"step1": 159, "step2&3": 141}
    assert (five[0].answer, four[0].answer) == ("C", "B")
    assert five[0].options["C"] == four[0].options["B"] == "Cholesterol embolization"
    assert (five[1].answer, four[1].answer) == ("D", "C")


def test_medqa_example_folder_picks_the_variant() -> None:
    five = load_records(dataset_cfg("medqa", options=5)).records
    four = load_records(dataset_cfg("medqa", split="test")).records  # 4: the default
    assert len(five) == 24 and len(five[0].options) == 5
    assert len(four) == 8 and all(len(r.options) == 4 for r in four)


QA = {
    "question": "Q?",
    "options": {"A": "x", "B": "y", "C": "z", "D": "w"},
    "answer": "y",
    "answer_idx": "B",
    "meta_info": "step1",
}


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({**QA, "answer_idx": "F"}, "answer_idx", "'F' is not one of the options A, B, C, D"),
        ({**QA, "answer": "z"}, "answer", "'z' is not options['B'] ('y')"),
        ({**QA, "options": {}}, "options", "missing, or fewer than two options"),
        ({**QA, "question": ""}, "question", "missing or empty"),
    ],
)
def test_medqa_bad_rows(tmp_path: Path, row: dict, field: str, problem: str) -> None:
    path = _jsonl(tmp_path, [QA, row], "test.jsonl")
    with pytest.raises(MedalignError) as err:
        load_records(dataset_cfg("medqa", path=str(path)))
    row_key = "line 2"
    assert str(err.value).startswith(f"{path}, row '{row_key}', field '{field}': {problem}")


def test_medqa_wrong_variant_is_caught(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [QA], "test.jsonl")
    with pytest.raises(MedalignError, match="field 'options': expected 5 options, found 4"):
        load_records(dataset_cfg("medqa", path=str(path), options=5))


# --- RadQA ---------------------------------------------------------------------------


def test_radqa_spans_are_recovered_and_unanswerables_kept() -> None:
    path = shared_file("radqa", "SYNTHETIC_radqa_format_fixture.json")
    records = load_records(dataset_cfg("radqa", path=str(path))).records
    assert len(records) == 10 and sum(not r.answer for r in records) == 4
    first = records[0]
    assert first.answer == ["No focal consolidation to suggest pneumonia", "No focal consolidation"]
    report = first.context[0]
    for span, start in zip(first.answer, first.meta["answer_starts"], strict=True):
        assert report[start : start + len(span)] == span
    crossing = next(r for r in records if r.id == "syn0001_2_1_O")
    assert crossing.answer[0] == "small left pleural effusion with\n adjacent atelectasis"
    assert crossing.rationale.endswith("small left pleural effusion with adjacent atelectasis.")


def _radqa(tmp_path: Path, answer: dict) -> Path:
    doc = {
        "data": [
            {
                "paragraphs": [
                    {
                        "context": "IMPRESSION:  Small effusion.",
                        "qas": [
                            {
                                "id": "r1_1",
                                "question": "Effusion?",
                                "answers": [answer],
                                "is_impossible": False,
                            }
                        ],
                    }
                ]
            }
        ]
    }
    path = tmp_path / "train.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def test_radqa_answer_start_must_match_the_context(tmp_path: Path) -> None:
    path = _radqa(tmp_path, {"text": "Small effusion", "answer_start": 3})
    with pytest.raises(MedalignError) as err:
        load_records(dataset_cfg("radqa", path=str(path)))
    assert str(err.value).startswith(
        f"{path}, row 'r1_1', field 'answer_start': 3 does not match the context: "
        "expected 'Small effusion', found 'RESSION:  Smal'"
    )
    ok = _radqa(tmp_path, {"text": "Small effusion", "answer_start": 13})
    assert load_records(dataset_cfg("radqa", path=str(ok))).records[0].answer == ["Small effusion"]


def test_radqa_example_has_train_and_test() -> None:
    train = load_records(dataset_cfg("radqa")).records
    test = load_records(dataset_cfg("radqa", split="test")).records
    assert (len(train), len(test)) == (48, 16)
    assert any(not r.answer for r in train) and any(r.answer for r in train)


def test_missing_split_file_names_path_and_split(tmp_path: Path) -> None:
    with pytest.raises(
        MedalignError, match=rf"file not found: {tmp_path}/dev.json \(dataset.path, split 'dev'\)"
    ):
        load_records(dataset_cfg("radqa", path=str(tmp_path), split="dev"))


def test_medqa_hub_hf_layout_maps_to_the_original_fields() -> None:
    from medalign.tasks.medqa import MedQA

    row = {
        "sent1": "Q?",
        "ending0": "x",
        "ending1": "y",
        "ending2": "z",
        "ending3": "w",
        "label": 2,
    }
    record = MedQA(dataset_cfg("medqa")).read_hub([row], BadRows("hub", "error"))[0]
    assert record.options == {"A": "x", "B": "y", "C": "z", "D": "w"} and record.answer == "C"


def test_limit_with_seed_takes_a_reproducible_random_subset() -> None:
    a = load_records(dataset_cfg("medmcqa", limit=5, seed=1)).records
    b = load_records(dataset_cfg("medmcqa", limit=5, seed=1)).records
    first = load_records(dataset_cfg("medmcqa", limit=5)).records
    assert [r.id for r in a] == [r.id for r in b] != [r.id for r in first]


def test_malformed_rows_of_each_format_are_named_not_tracebacks(tmp_path: Path) -> None:
    """Issue 13: these gave AttributeError / TypeError / a wrong message."""
    radqa = tmp_path / "radqa.json"
    radqa.write_text(json.dumps({"data": [{"paragraphs": [
        {"context": "No effusion.", "qas": ["What?", {"id": "q2", "question": "Effusion?",
                                                     "answers": ["effusion"]}]}
    ]}]}))  # fmt: skip
    with pytest.raises(MedalignError, match="field 'qas': expected a question object"):
        load_records(dataset_cfg("radqa", path=str(radqa)))
    with pytest.raises(MedalignError, match="no usable rows"):  # both rows skipped, counted
        load_records(dataset_cfg("radqa", path=str(radqa), on_bad_row="skip"))

    pubmed = tmp_path / "ori_pqal.json"
    row = {"QUESTION": "Q?", "CONTEXTS": ["c"], "LABELS": 5, "final_decision": "yes"}
    pubmed.write_text(json.dumps({"1": row}))
    with pytest.raises(MedalignError, match="field 'LABELS': expected a list of strings"):
        load_records(dataset_cfg("pubmedqa", path=str(pubmed), split="all"))

    medmcqa = tmp_path / "train.json"
    good = {"id": "ok1", "question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d",
            "cop": 4}  # fmt: skip
    medmcqa.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "x9", "cop": "b"}))
    with pytest.raises(MedalignError, match=r"line 2 \(id x9\).*field 'cop': 'b' is not an option"):
        load_records(dataset_cfg("medmcqa", path=str(medmcqa)))


def test_an_empty_medmcqa_file_says_it_has_no_rows(tmp_path) -> None:
    """Regression (issue 24, defect 8): an empty file was answered "cannot tell whether
    field 'cop' is 1-indexed ... from the values []"."""
    path = tmp_path / "dev.json"
    path.write_text("\n")
    with pytest.raises(MedalignError, match=rf"{path}: .*no rows") as err:
        load_records(dataset_cfg("medmcqa", path=str(path)))
    assert "cop" not in str(err.value)


def test_a_path_that_is_not_a_regular_file_is_refused_at_once(tmp_path) -> None:
    """Regression (issue 24, defect 5): a dataset.path linked to /dev/zero read forever
    without a word. Run in a child process so that the old behaviour fails, not hangs."""
    import subprocess
    import sys

    from tests.conftest import REPO

    link = tmp_path / "train.json"
    link.symlink_to("/dev/zero")
    code = (
        "from medalign.data.loading import load_records\n"
        "from tests.conftest import dataset_cfg\n"
        f"load_records(dataset_cfg('medmcqa', path={str(link)!r}))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("reading a link to /dev/zero did not stop")
    assert f"{link}: not a regular file (a character device)" in done.stderr


def test_a_row_above_the_size_limit_is_refused_or_counted(tmp_path) -> None:
    """Regression (issue 24, defect 5): one 50 MB question ran for 10 minutes in 9.5 GB
    without a message. Rows above MAX_RECORD_CHARS are refused (or skipped, counted)."""
    from medalign.data.loading import MAX_RECORD_CHARS

    path = tmp_path / "dev.json"
    good = {"question": "Which nerve?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 4}
    huge = {**good, "question": "x" * (MAX_RECORD_CHARS + 1)}
    path.write_text("\n".join(json.dumps(r) for r in (good, huge, good)) + "\n")
    with pytest.raises(MedalignError, match=rf"{path}, row 'line 2'.*longer than"):
        load_records(dataset_cfg("medmcqa", path=str(path)))
    loaded = load_records(dataset_cfg("medmcqa", path=str(path), on_bad_row="skip"))
    assert len(loaded.records) == 2 and sum(loaded.skipped.values()) == 1


def test_datasets_whose_split_is_a_folder_still_load() -> None:
    """Regression: the regular-file check refused MedSafetyBench's and MMLU's split
    folders (medsafetybench/test, mmlu_medical/test), which hold their CSV files."""
    assert load_records(dataset_cfg("medsafetybench", split="test")).records
    assert load_records(dataset_cfg("mmlu_medical", split="test")).records


# --- each Task recognizes its own layout (Task.recognizes; no central format list) -----

MEDSAFETY_CSV = "med_safety_demonstrations_category_1.csv"
REAL_FILES = [
    ("pubmedqa", ("pubmedqa", "ori_pqal_sample.json")),
    ("medmcqa", ("medmcqa", "dev.sample.json")),
    ("medqa", ("medqa", "US_test_sample.jsonl")),
    ("medqa", ("medqa", "US_4_options_phrases_no_exclude_test_sample.jsonl")),
    ("radqa", ("radqa", "SYNTHETIC_radqa_format_fixture.json")),
    ("medsafetybench", ("medsafetybench", "train", "gpt4", MEDSAFETY_CSV)),
]


@pytest.mark.parametrize(("owner", "parts"), REAL_FILES)
def test_each_real_file_is_claimed_by_its_own_task_only(owner: str, parts: tuple) -> None:
    from medalign.data.files import read_head
    from medalign.registry import get, names

    head = read_head(shared_file(*parts))
    assert head is not None
    claimed = [name for name in names("task") if get("task", name).recognizes(head)]
    assert claimed == [owner]


def test_a_task_without_a_layout_of_its_own_takes_any_file(tmp_path: Path) -> None:
    """instructions maps whatever columns it is told: a file that looks like MedQA is not
    refused (it used to need `sniffed = False`)."""
    row = {"options": "x", "answer": "y", "instruction": "q", "output": "a"}
    path = _jsonl(tmp_path, [row], name="train.jsonl")
    loaded = load_records(dataset_cfg("instructions", path=str(path)))
    assert len(loaded.records) == 1
