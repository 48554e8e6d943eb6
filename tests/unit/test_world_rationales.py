"""Rationales as training data (issue 32): the world writes one for every MedQA vignette
and every RadQA question, its textbook states the findings -> disease direction the
rationale's first hop takes, and `dataset.rationale=true` on rows with none is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.config import validate
from medalign.data.loading import eval_dataset_config, load_records, load_training_data
from medalign.errors import MedalignError
from medalign.tasks.radqa import NO_EVIDENCE
from medalign.world.knowledge import build_world
from medalign.world.render import write_world
from tests.conftest import compose, shared_file, task_for


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(out, seed=0, diseases=40)
    return out


def test_the_textbook_states_each_disease_from_its_findings(world: Path) -> None:
    """The inverse lookup a vignette needs (findings -> disease) in four phrasings, as
    many as the forward one: inverse lookups do not emerge from forward statements."""
    corpus = (world / "corpus" / "textbook.txt").read_text()
    for d in build_world(0, 40).diseases:
        f1, f2, f3 = d.findings
        pattern = f"{f2} and {f3}"
        inverse = [
            line
            for line in (p.strip() for p in corpus.split("\n\n"))
            if pattern in line and line.rstrip(".").endswith(d.name) and f1 in line.lower()
        ]
        assert len(inverse) == 4, (d.name, inverse)


def test_every_medqa_vignette_has_a_rationale_through_the_disease_to_its_answer(
    world: Path,
) -> None:
    diseases = {d.name: d for d in build_world(0, 40).diseases}
    for split in ("train", "test"):
        rows = [
            json.loads(line)
            for line in (world / f"medqa/4_options/phrases_no_exclude_{split}.jsonl")
            .read_text()
            .splitlines()
        ]
        for row in rows:
            rationale = row["rationale"]
            named = [n for n in diseases if f" has {n}" in rationale]
            assert len(named) == 1, rationale
            d = diseases[named[0]]
            assert all(f in row["question"] for f in d.findings)  # the hop starts there
            assert d.name not in row["question"]  # the disease is never stated
            assert row["answer"] in rationale  # the second hop ends at the answer
            # the second hop follows the disease at once: the model names it once and
            # never has to copy it from its own answer (experiments/README.md, 2026-12-07)
            assert rationale.count(d.name) == 1, rationale
            hop = rationale.split(f" has {d.name}", 1)[1]
            assert hop.startswith((", which ", ", in which ")) and hop.endswith(".")
            assert hop.index(row["answer"]) < 80, rationale  # the answer right after it


def test_rationale_true_trains_on_the_rationale_then_the_answer_line(world: Path) -> None:
    cfg = validate(
        compose(
            "stage=medqa",
            f"data_root={world}",
            "dataset.rationale=true",
            "dataset.answer_as=text",
            "dataset.decontaminate=false",
        )
    )
    record = load_training_data(cfg).parts[0].records[0]
    target = task_for("medqa", rationale=True, answer_as="text").target(record)
    rationale, final = target.rsplit("\n", 1)
    assert rationale == record.rationale and rationale.startswith("A patient with")
    assert final == f"Final answer: {record.options[record.answer]}"


def test_radqa_unanswerable_questions_have_a_rationale_saying_no_sentence_answers(
    world: Path,
) -> None:
    cfg = validate(compose(f"data_root={world}"))
    dcfg = eval_dataset_config(cfg, "radqa")
    records = load_records(dcfg, str(world), split="test").records
    unanswerable = [r for r in records if not r.answer]
    answerable = [r for r in records if r.answer]
    assert unanswerable and all(r.rationale == NO_EVIDENCE for r in unanswerable)
    assert all(r.answer[0] in r.rationale for r in answerable)  # the report's sentence


def test_rationale_true_on_official_medqa_rows_is_refused_naming_what_they_lack(
    tmp_path: Path,
) -> None:
    sample = shared_file("medqa", "US_4_options_phrases_no_exclude_test_sample.jsonl")
    cfg = validate(
        compose(
            "stage=medqa", f"dataset.path={sample}", "dataset.rationale=true", "eval.datasets=[]"
        )
    )
    with pytest.raises(MedalignError) as caught:
        load_training_data(cfg)
    message = str(caught.value)
    assert "dataset 'medqa'" in message and "rationale" in message
    assert "official files do not have" in message and "dataset.rationale=false" in message
    assert str(sample) in message


def test_rationale_false_on_official_medqa_rows_trains() -> None:
    sample = shared_file("medqa", "US_4_options_phrases_no_exclude_test_sample.jsonl")
    cfg = validate(
        compose(
            "stage=medqa", f"dataset.path={sample}", "dataset.rationale=false", "eval.datasets=[]"
        )
    )
    assert load_training_data(cfg).parts[0].records
