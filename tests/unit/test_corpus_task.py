"""dataset=corpus: text the model has read, read again in an SFT mix (rehearsal). A
paragraph a row, trained as reading (no question), checked by decontamination, and bad
input refused in one line naming the file and the setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.config import validate
from medalign.data.loading import get_task, load_records, load_training_data
from medalign.errors import MedalignError
from tests.conftest import compose, dataset_cfg

PARAGRAPHS = [
    "Velmora fever is caused by the organism Tressin palli.",
    "In Velmora fever, quandrex must be avoided.\nIt worsens the rash.",
    "Expect a high lactate in Korrith syndrome.",
]


def test_a_text_file_is_read_a_paragraph_a_row_and_trains_as_reading(tmp_path: Path) -> None:
    book = tmp_path / "book.txt"
    book.write_text("\n\n".join(PARAGRAPHS) + "\n\n\n")
    cfg = dataset_cfg("corpus", path=str(book))
    records = load_records(cfg).records
    assert [r.context[0] for r in records] == PARAGRAPHS
    assert get_task(cfg).messages(records[1]) == {
        "prompt": [{"role": "user", "content": ""}],
        "completion": [{"role": "assistant", "content": PARAGRAPHS[1]}],
    }


def test_a_folder_reads_every_text_file_and_a_jsonl_its_text_field(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(PARAGRAPHS[0])
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": PARAGRAPHS[2]}) + "\n")
    (tmp_path / "scan.png").write_bytes(b"\x89PNG")  # not a corpus file: not read
    cfg = dataset_cfg("corpus", path=str(tmp_path), task_args={"text_field": "body"})
    assert [r.context[0] for r in load_records(cfg).records] == [PARAGRAPHS[0], PARAGRAPHS[2]]


def test_a_jsonl_without_its_text_column_names_the_file_row_and_setting(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"body": PARAGRAPHS[0]}) + "\n")
    with pytest.raises(MedalignError) as refused:
        load_records(dataset_cfg("corpus", path=str(notes)))
    message = str(refused.value)
    assert f"{notes}, row 'line 1', field 'text': missing" in message
    assert "dataset.task_args.text_field" in message and "\n" not in message


def test_an_empty_folder_names_the_path_setting(tmp_path: Path) -> None:
    with pytest.raises(MedalignError, match=r"dataset\.path: .* holds no \.txt"):
        load_records(dataset_cfg("corpus", path=str(tmp_path)))


def test_the_bundled_example_corpus_mixes_into_a_stage_and_is_decontaminated(
    tmp_path: Path,
) -> None:
    """A paragraph that copies an evaluation question is dropped like any training row:
    the corpus is checked as text, though it trains with an empty prompt."""
    dev = Path(_example("medmcqa/dev.json")).read_text().splitlines()
    copied = json.loads(dev[0])["question"]
    book = tmp_path / "book.txt"
    book.write_text("\n\n".join([*PARAGRAPHS, copied]))
    data = load_training_data(_mixed_in(book))
    corpus = next(p for p in data.parts if p.config.name == "corpus")
    assert [r.context[0] for r in corpus.records] == PARAGRAPHS
    assert data.decontaminated == {"exact:medmcqa": 1}
    bundled = validate(compose("stage=medmcqa", "dataset.mix={medmcqa: 1.0, corpus: 1.0}"))
    parts = {p.config.name: len(p.records) for p in load_training_data(bundled).parts}
    assert parts == {"medmcqa": 30, "corpus": 6}


def _mixed_in(corpus: Path):
    """The MedMCQA stage with the corpus at `corpus` mixed in (the typed config)."""
    return validate(
        compose(
            "stage=medmcqa",
            "dataset.mix={medmcqa: 1.0, corpus: 1.0}",
            f"datasets.corpus.path={corpus}",
        )
    )


def _example(relative: str) -> str:
    from medalign.data.loading import EXAMPLES_DIR

    return str(EXAMPLES_DIR / relative)


def test_a_mixed_parts_refusal_names_its_catalogue_entry(tmp_path: Path) -> None:
    """A dataset mixed into a stage is read with `datasets.<name>`'s settings, so that is
    the key its refusal names (it named `dataset.task_args`, the stage's own set)."""
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"body": PARAGRAPHS[0]}) + "\n")
    with pytest.raises(MedalignError, match=r"datasets\.corpus\.task_args\.text_field names"):
        load_training_data(_mixed_in(notes))


def test_a_mixed_parts_missing_path_names_its_catalogue_entry(tmp_path: Path) -> None:
    """The path a user set is `datasets.corpus.path`; the refusal named `dataset.path`
    (a helper's clean-clone trial)."""
    with pytest.raises(MedalignError, match=r"not found: .*nope \(datasets\.corpus\.path"):
        load_training_data(_mixed_in(tmp_path / "nope"))


def test_hidden_folders_are_not_read(tmp_path: Path) -> None:
    """An editor's or notebook's copy (`.ipynb_checkpoints/`) would train every
    paragraph twice."""
    (tmp_path / "a.txt").write_text(PARAGRAPHS[0])
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "a-checkpoint.txt").write_text(PARAGRAPHS[0])
    records = load_records(dataset_cfg("corpus", path=str(tmp_path))).records
    assert [r.context[0] for r in records] == [PARAGRAPHS[0]]


def test_evaluating_a_corpus_is_refused_before_any_model_loads() -> None:
    """It was refused only once evaluation ran, after the weights had loaded (a helper's
    clean-clone trial); the start-up checks now refuse a set with no evaluation."""
    from medalign.checks import check_components

    cfg = validate(compose("stage=eval", "eval.datasets=[medmcqa,corpus]"))
    with pytest.raises(MedalignError, match=r"'corpus' \(corpus\) has no evaluation"):
        check_components(cfg)
