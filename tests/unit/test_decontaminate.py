from __future__ import annotations

from medalign.config import DatasetConfig
from medalign.data.decontaminate import EvalIndex, split_contaminated
from medalign.data.loading import load_training_data
from medalign.data.records import QARecord
from tests.conftest import dataset_cfg, default, with_dataset

EVAL = [
    QARecord(
        id="e1",
        question="A 45-year-old man who drinks heavily is brought to the emergency department "
        "confused and unsteady with nystagmus. Which of the following should be given first?",
        context=[],
        answer="B",
    )
]


def _train(question: str, id_: str) -> QARecord:
    return QARecord(id=id_, question=question, context=[], answer="A")


def test_catches_exact_and_near_duplicates_and_spares_distinct_questions() -> None:
    index = EvalIndex(13)
    index.add("medqa", EVAL)
    exact = _train(EVAL[0].question.upper().replace(",", ""), "exact")
    near = _train(
        "Case: a 45 year old man who drinks heavily is brought to the emergency department "
        "confused. What now?",
        "near",
    )
    distinct = _train("Which vitamin deficiency causes scurvy in sailors on long voyages?", "d")
    clean, counts = split_contaminated([exact, near, distinct], index)
    assert [r.id for r in clean] == ["d"]
    assert counts == {"exact:medqa": 1, "near:medqa": 1}


def test_training_data_drops_planted_test_rows_and_reports_them() -> None:
    # PubMedQA's example test PMIDs planted into training via split=all.
    planted = dataset_cfg("pubmedqa", split="all", decontaminate_against=["pubmedqa"])
    data = load_training_data(with_dataset(planted))
    assert data.decontaminated == {"exact:pubmedqa": 8}
    rows = data.summary()["decontaminated_rows"]  # and why, row by row
    assert len(rows) == 8 and {r["kind"] for r in rows} == {"exact"}
    assert {r["eval_set"] for r in rows} == {"pubmedqa"} and all(r["overlap"] > 0 for r in rows)
    assert len(data.records) == 22
    kept_cfg = dataset_cfg(
        "pubmedqa", split="all", decontaminate=False, decontaminate_against=["pubmedqa"]
    )
    kept = load_training_data(with_dataset(kept_cfg))
    assert len(kept.records) == 30 and kept.summary()["decontaminated"] == 8


def test_the_example_data_is_clean_against_every_eval_set() -> None:
    for name in ("pubmedqa", "medmcqa", "medqa", "radqa"):
        assert load_training_data(with_dataset(dataset_cfg(name))).decontaminated == {}, name


def test_mix_weights_rows_per_dataset() -> None:
    cfg = dataset_cfg("medmcqa", mix={"medmcqa": 1.0, "medqa": 0.5, "pubmedqa": 2.0}, seed=0)
    data = load_training_data(with_dataset(cfg))
    assert data.summary()["rows_by_dataset"] == {"medmcqa": 30, "medqa": 12, "pubmedqa": 44}
    assert default(DatasetConfig).mix is None
