"""Every Task's reader, fuzzed (hypothesis): rows generated from a valid row of each format
with fields missing, null, of the wrong type, empty, huge or nested, plus files cut short
or holding a byte that is not UTF-8.

The invariant: every input gives records, counted skips, or one MedalignError naming the
file; never another exception, never a hang (a deadline per example), and never a silent
change of the row count (with `on_bad_row=skip`, records + skipped = rows written).
`make test` runs a short budget; `make test-slow` a long one. Examples hypothesis once
found are kept below as regression cases (`@example`).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from medalign.data.loading import load_records  # noqa: E402
from medalign.errors import MedalignError  # noqa: E402
from tests.conftest import dataset_cfg  # noqa: E402

VALID = {
    "medmcqa": {
        "id": "m1",
        "question": "Which vitamin deficiency causes scurvy?",
        "exp": "Vitamin C.",
        "cop": 3,
        "opa": "A",
        "opb": "B12",
        "opc": "C",
        "opd": "D",
        "subject_name": "Biochemistry",
    },
    "medqa": {
        "question": "Which of the following is the most likely cause?",
        "answer": "Graves disease",
        "options": {"A": "Graves disease", "B": "Goitre", "C": "Hashimoto", "D": "Factitious"},
        "meta_info": "step1",
        "answer_idx": "A",
    },
    "pubmedqa": {
        "QUESTION": "Does early mobilisation shorten hospital stay?",
        "CONTEXTS": ["Bed rest is linked to pneumonia.", "We reviewed 412 patients."],
        "LABELS": ["BACKGROUND", "METHODS"],
        "MESHES": ["Hip Fractures"],
        "final_decision": "yes",
        "LONG_ANSWER": "Early mobilisation shortened the stay.",
    },
    "medsafetybench": {
        "harmful_medical_request": "How can I refuse to treat some patients?",
        "safe_response": "I can't help with that.",
    },
    "radqa": {  # one question on REPORT (SQuAD v2 layout), its span checked by offset
        "id": "q1",
        "question": "Is there an effusion?",
        "answers": [{"text": "effusion", "answer_start": 19}],
        "is_impossible": False,
    },
    "mmlu_medical": {
        "question": "Which bone forms the cheek?",
        "A": "Zygomatic",
        "B": "Maxilla",
        "C": "Sphenoid",
        "D": "Nasal",
        "answer": "A",
    },
}
ODD = st.one_of(
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=30),
    st.just(""),
    st.just("x" * 250_000),  # above MAX_RECORD_CHARS once
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.recursive(st.integers(), lambda inner: st.lists(inner, max_size=2), max_leaves=4),
)
REPORT = "Small left pleural effusion. No pneumothorax."


@st.composite
def rows(draw: Any, fmt: str) -> list[dict[str, Any]]:
    """1-5 rows of `fmt`, each field kept, dropped or replaced by an odd value."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        row = dict(VALID[fmt])
        for key in list(row):
            choice = draw(st.sampled_from(["keep", "keep", "keep", "drop", "odd"]))
            if choice == "drop":
                del row[key]
            elif choice == "odd":
                row[key] = draw(ODD)
        out.append(row)
    return out


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def render(fmt: str, data: list[dict[str, Any]], folder: Path) -> Path:
    """The rows in the format's original file layout."""
    if fmt in ("medmcqa", "medqa"):
        path = folder / "train.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in data))
    elif fmt == "pubmedqa":
        path = folder / "ori_pqal.json"
        path.write_text(json.dumps({str(80000000 + k): r for k, r in enumerate(data)}))
    elif fmt == "radqa":
        path = folder / "train.json"
        paragraph = {"context": REPORT, "document_id": "r1", "qas": data}
        path.write_text(json.dumps({"version": "v2.0", "data": [{"paragraphs": [paragraph]}]}))
    elif fmt == "mmlu_medical":
        path = folder / "anatomy_test.csv"
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for r in data:
            writer.writerow([_cell(r.get(k, "")) for k in VALID[fmt] if k in r])
        path.write_text(buffer.getvalue())
    else:  # medsafetybench: pandas-style CSV with an index column
        path = folder / "med_safety_demonstrations_category_1.csv"
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["", *VALID[fmt]])
        for k, r in enumerate(data):
            writer.writerow([k, *[_cell(r.get(c, "")) for c in VALID[fmt]]])
        path.write_text(buffer.getvalue())
    return path


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "cut":
        path.write_bytes(data[: max(1, len(data) * 2 // 3)])
    elif how == "latin1":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + b"\xe9" + data[middle:])


def check(fmt: str, data: list[dict[str, Any]], how: str, on_bad_row: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = render(fmt, data, Path(tmp))
        damage(path, how)
        split = "test" if fmt == "mmlu_medical" else "train"
        cfg = dataset_cfg(fmt, path=str(path), split=split, on_bad_row=on_bad_row)
        try:
            loaded = load_records(cfg)
        except MedalignError as exc:
            assert str(path) in str(exc) or cfg.name in str(exc), str(exc)
            return
        if how == "none" and on_bad_row == "skip":
            counted = len(loaded.records) + sum(loaded.skipped.values())
            assert counted == len(data), (len(loaded.records), loaded.skipped, len(data))


FORMATS = sorted(VALID)
DAMAGE = st.sampled_from(["none", "none", "cut", "latin1"])
BAD_ROW = st.sampled_from(["error", "skip"])


def _fuzz(budget: int):
    @settings(
        max_examples=budget,
        deadline=5000,  # ms per example: a reader that hangs fails here
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,
    )
    @given(data=st.data(), how=DAMAGE, on_bad_row=BAD_ROW)
    @example(data=None, how="latin1", on_bad_row="skip").via("found: a MedSafetyBench byte")
    def run(fmt: str, data: Any, how: str, on_bad_row: str) -> None:
        if data is None:  # the regression example: a valid file with one Latin-1 byte
            check(fmt, [VALID[fmt]] * 3, how, on_bad_row)
            return
        check(fmt, data.draw(rows(fmt)), how, on_bad_row)

    return run


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_reader_gives_records_skips_or_one_clear_error(fmt: str) -> None:
    _fuzz(budget=25)(fmt)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_reader_survives_a_long_fuzz(fmt: str) -> None:
    _fuzz(budget=400)(fmt)


@pytest.mark.parametrize(
    ("fmt", "row", "how"),
    [  # what the fuzzer found, kept as regression cases
        ("medqa", {**VALID["medqa"], "answer_idx": []}, "none"),  # TypeError: unhashable
        ("medsafetybench", VALID["medsafetybench"], "latin1"),  # UnicodeDecodeError
        ("mmlu_medical", {**VALID["mmlu_medical"], "D": "x" * 200_000}, "none"),  # csv.Error
    ],
)
def test_what_the_fuzzer_found(fmt: str, row: dict[str, Any], how: str) -> None:
    for on_bad_row in ("error", "skip"):
        check(fmt, [row, VALID[fmt]], how, on_bad_row)
