"""Decontamination on boilerplate-heavy vignettes (issue 12, item 5).

USMLE-style questions share long stock phrases ("Which of the following is the most
appropriate next step in the management of this patient?"). A shared 13-gram of such a
phrase is not a copy: distinct questions must be kept, a lightly edited copy dropped.
"""

from __future__ import annotations

import dataclasses

import pytest

from medalign.config import DatasetConfig
from medalign.data.decontaminate import EvalIndex, decontaminate, split_contaminated
from medalign.data.records import QARecord
from medalign.errors import MedalignError
from tests.conftest import default

STEM = (
    " Which of the following is the most appropriate next step in the management of this patient?"
)
ED = " is brought to the emergency department by his wife because of "
VIGNETTES = [
    "A 67-year-old man" + ED + "sudden weakness of the left arm that began two hours ago. "
    "He has hypertension treated with amlodipine and smoked one pack daily for forty years. "
    "His blood pressure is 182/104 mm Hg. A noncontrast CT scan of the head shows no "
    "hemorrhage. His speech is slurred and the left nasolabial fold is flattened." + STEM,
    "A 54-year-old man" + ED + "crushing substernal chest pain radiating to the jaw for "
    "forty minutes. He is diaphoretic and nauseated. An electrocardiogram shows ST-segment "
    "elevations in leads II, III and aVF. Aspirin was given by the paramedics. His "
    "right ventricular leads also show elevation and he becomes hypotensive." + STEM,
    "A 23-year-old man" + ED + "confusion after a week of polyuria and polydipsia. His "
    "breath has a fruity odor and his respirations are deep. Serum glucose is 612 mg/dL, "
    "bicarbonate 9 mEq/L, and urine ketones are strongly positive. Potassium is "
    "5.9 mEq/L and he has not been taking his insulin." + STEM,
    "A 71-year-old man" + ED + "black tarry stools since yesterday and lightheadedness on "
    "standing. He takes naproxen daily for knee osteoarthritis. His pulse is 118/min and "
    "hemoglobin is 7.9 g/dL; two large-bore intravenous lines are placed. Nasogastric "
    "lavage returns coffee-ground material." + STEM,
    "A 45-year-old man" + ED + "a seizure at home followed by persistent drowsiness. He "
    "drinks a pint of vodka daily and stopped drinking three days ago. He is tremulous, "
    "diaphoretic and visually hallucinating insects on the walls. His pulse is "
    "128/min and temperature 38.4 C." + STEM,
    "A 38-year-old man" + ED + "shortness of breath and pleuritic chest pain after a "
    "transatlantic flight. His left calf is swollen and tender. Pulse oximetry shows 89% "
    "on room air and his pulse is 124/min; he has no history of bleeding. Serum "
    "creatinine is normal." + STEM,
]


def _rec(id_: str, question: str) -> QARecord:
    return QARecord(id=id_, question=question, context=[], answer="A")


FILLERS = [  # more eval rows with the same stock phrases, so they are boilerplate there
    f"A {age}-year-old man" + ED + f"{complaint}." + STEM
    for age, complaint in [
        (30, "a painful swollen knee after a fall from his bicycle"),
        (62, "a three-day history of productive cough and high fever"),
        (19, "a deep laceration of the palm from broken glass"),
    ]
]
EVAL = [_rec(f"e{i}", q) for i, q in enumerate(VIGNETTES[:4] + FILLERS)]
DISTINCT = [_rec(f"t{i}", q) for i, q in enumerate(VIGNETTES[4:])]
EDITED = _rec(
    "edited",
    VIGNETTES[1]
    .replace("54-year-old", "56-year-old")
    .replace("forty minutes", "thirty minutes")
    .replace("nauseated", "vomiting"),
)
EXACT = _rec("exact", VIGNETTES[2].upper().replace(",", ""))


def test_distinct_questions_sharing_boilerplate_are_kept_and_an_edited_copy_dropped() -> None:
    index = EvalIndex(13)  # the default rule, as dataset.ngram=13 builds it
    index.add("medqa", EVAL)
    clean, counts = split_contaminated([*DISTINCT, EDITED, EXACT], index)
    assert [r.id for r in clean] == ["t0", "t1"]
    assert counts == {"near:medqa": 1, "exact:medqa": 1}


def test_ngrams_frequent_in_the_eval_set_are_ignored() -> None:
    # any remaining shared 13-gram would flag a row: only the boilerplate filter saves them
    index = EvalIndex(13, boilerplate_rows=2, min_overlap=0.0)
    index.add("medqa", EVAL)
    result = decontaminate([*DISTINCT, EDITED], index)
    assert [r.id for r in result.clean] == ["t0", "t1"]
    without = EvalIndex(13, boilerplate_rows=None, min_overlap=0.0)
    without.add("medqa", EVAL)
    assert decontaminate(DISTINCT, without).clean == []  # the old rule flags them all


def test_near_duplicates_need_the_minimum_overlap_fraction() -> None:
    index = EvalIndex(13, boilerplate_rows=None, min_overlap=0.5)
    index.add("medqa", EVAL)
    result = decontaminate([*DISTINCT, EDITED], index)
    assert [r.id for r in result.clean] == ["t0", "t1"]
    (hit,) = result.dropped
    assert (hit.id, hit.kind, hit.eval_set, hit.eval_id) == ("edited", "near", "medqa", "e1")
    assert 0.5 <= hit.overlap < 1.0
    strict = EvalIndex(13, boilerplate_rows=None, min_overlap=min(1.0, hit.overlap + 0.01))
    strict.add("medqa", EVAL)
    assert decontaminate([EDITED], strict).dropped == []


def test_report_counts_per_eval_set_and_why_each_row_was_dropped() -> None:
    index = EvalIndex(13)
    index.add("medqa", EVAL)
    index.add("other", [_rec("o1", VIGNETTES[5])])
    result = decontaminate([*DISTINCT, EDITED, EXACT], index)
    assert result.counts == {"medqa": {"exact": 1, "near": 1}, "other": {"exact": 1, "near": 0}}
    reasons = {r.id: r.as_dict() for r in result.dropped}
    assert reasons["exact"] == {
        "id": "exact",
        "kind": "exact",
        "eval_set": "medqa",
        "eval_id": "e2",
        "overlap": 1.0,
    }
    assert reasons["t1"]["kind"] == "exact" and reasons["t1"]["eval_set"] == "other"
    assert reasons["edited"]["kind"] == "near" and 0.5 <= reasons["edited"]["overlap"] < 1


def test_thresholds_are_dataset_config_keys() -> None:
    cfg = default(DatasetConfig)
    assert cfg.ngram_boilerplate_rows == 5 and cfg.ngram_min_overlap == 0.5
    index = EvalIndex.from_config(dataclasses.replace(cfg, ngram=8, ngram_min_overlap=0.7))
    assert (index.n, index.boilerplate_rows, index.min_overlap) == (8, 5, 0.7)
    with pytest.raises(MedalignError, match="ngram_min_overlap"):
        EvalIndex(13, min_overlap=1.5)
