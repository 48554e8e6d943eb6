"""The synthetic clinical world (issue 22): deterministic, read by the real Tasks, its test
questions about facts the corpus states but no training question asks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.config import validate
from medalign.data.loading import eval_dataset_config, load_records, load_training_data
from medalign.world.knowledge import NOTICE, build_world
from medalign.world.render import write_world
from tests.conftest import compose, tree_digest


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(out, seed=0, diseases=300)
    return out


def test_the_same_seed_writes_the_same_bytes(world: Path, tmp_path: Path) -> None:
    write_world(tmp_path / "again", seed=0, diseases=300)
    assert tree_digest(tmp_path / "again") == tree_digest(world)
    write_world(tmp_path / "other", seed=1, diseases=300)
    assert tree_digest(tmp_path / "other") != tree_digest(world)


def test_every_format_loads_through_its_real_task_with_500_questions_to_evaluate(
    world: Path,
) -> None:
    cfg = validate(compose(f"data_root={world}"))
    sizes = {}
    for name in ("pubmedqa", "medmcqa", "medqa", "radqa", "medsafetybench", "mmlu_medical"):
        dcfg = eval_dataset_config(cfg, name)
        data = load_records(dcfg, str(world), split=dcfg.eval_split)
        assert not data.skipped, (name, data.skipped)
        sizes[name] = len(data.records)
    assert all(sizes[n] >= 500 for n in ("pubmedqa", "medmcqa", "medqa")), sizes
    assert NOTICE in (world / "corpus" / "textbook.txt").read_text()
    assert (
        json.loads(
            (world / "medqa/4_options/phrases_no_exclude_test.jsonl").read_text().splitlines()[0]
        )["world"]
        == NOTICE
    )


@pytest.mark.parametrize("stage", ["pubmedqa", "medmcqa", "medqa", "radqa"])
def test_no_test_question_is_in_training(world: Path, stage: str) -> None:
    cfg = validate(compose(f"stage={stage}", f"data_root={world}"))
    data = load_training_data(cfg)  # decontaminated against every evaluation set
    summary = data.summary()
    assert summary["decontaminated"] == 0 and not summary["decontamination_unchecked"]
    held_out = {d.name for d in build_world(0, 300).held_out}
    text = " ".join(r.question + " ".join(r.context) for r in data.records)
    assert not [name for name in held_out if f"{name} " in text or f"{name}." in text]


def test_every_fact_is_in_the_corpus_in_several_phrasings(world: Path) -> None:
    corpus = (world / "corpus" / "textbook.txt").read_text()
    for disease in build_world(0, 300).held_out[:20]:
        assert corpus.count(disease.first_line) >= 4  # first-line fact, four phrasings
        assert corpus.count(disease.organism) >= 4


def test_the_textbook_names_both_drugs_of_a_disease_equally_often(world: Path) -> None:
    """The world's tokenizer is trained on the textbook, and a name it reads more often
    becomes fewer tokens: with first-line drugs named 8 times and contraindicated ones 4,
    first-line names were 2.1 tokens against 3.3 (130 of 150 held-out diseases shorter),
    and a reward model on a world model that had read nothing told the safe answer of a
    safety pair by that length alone (26 of 28). Which drug is safe must be a fact to know,
    not a token count. Byte-level BPE reads " name" (after a space) and "name" (opening a
    sentence) as different words, so both forms are counted."""
    corpus = (world / "corpus" / "textbook.txt").read_text()
    for d in build_world(0, 300).diseases:
        assert corpus.count(d.first_line) == corpus.count(d.contraindicated), d
        assert corpus.count(f" {d.first_line}") == corpus.count(f" {d.contraindicated}"), d


def test_radqa_asks_answerable_and_unanswerable_questions_in_one_wording(world: Path) -> None:
    """Unanswerable questions were "Is there ...?", answerable ones "What abnormality is
    described on ...?": the wording told them apart, and calibration pairs on them needed
    no reading of the report. Now only the report tells."""
    import re

    doc = json.loads((world / "radqa" / "test.json").read_text())
    forms: dict[bool, set[str]] = {True: set(), False: set()}
    for paragraph in doc["data"][0]["paragraphs"]:
        for qa in paragraph["qas"]:
            form = re.sub(r"on the [a-z ]+\?$", "on the <place>?", qa["question"])
            forms[qa["is_impossible"]].add(form)
            if qa["is_impossible"]:
                place = qa["question"].split(" on the ", 1)[1].rstrip("?")
                assert place not in paragraph["context"], (qa, paragraph["context"])
    assert forms[True] == forms[False] == {"What abnormality is described on the <place>?"}


def test_no_pubmedqa_answer_is_a_majority_to_learn(world: Path) -> None:
    """Guessing the commonest answer must not look like learning (it scored 0.5 when half
    of the world's answers were yes)."""
    answers = list(json.loads((world / "pubmedqa" / "test_ground_truth.json").read_text()).values())
    shares = {a: answers.count(a) / len(answers) for a in set(answers)}
    assert max(shares.values()) < 0.45, shares


def test_a_small_world_still_has_every_evaluation_split(tmp_path: Path) -> None:
    """24 diseases (model=world_small): every format has questions to evaluate."""
    write_world(tmp_path, seed=0, diseases=24)
    cfg = validate(compose(f"data_root={tmp_path}"))
    for name in ("pubmedqa", "medmcqa", "medqa", "radqa", "medsafetybench", "mmlu_medical"):
        dcfg = eval_dataset_config(cfg, name)
        assert load_records(dcfg, str(tmp_path), split=dcfg.eval_split).records, name
