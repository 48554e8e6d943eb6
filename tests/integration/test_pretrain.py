"""stage=pretrain: continued pretraining on raw text (issue 22): a text folder, a JSONL, a
bad file (one clear error naming file and line), and a curriculum that opens with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.errors import MedalignError
from medalign.guard import unstarted_run
from medalign.run import run
from tests.conftest import compose

FACTS = [
    "Velmora fever is caused by the organism Tressin korvii.",
    "The first-line drug for Velmora fever is quorapine.",
    "Patients with Velmora fever show a rash on the palms and a low platelet count.",
    "Quorapine is contraindicated in pregnancy.",
]


def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("\n\n".join(FACTS * 4))
    (folder / "b.txt").write_text("\n\n".join(reversed(FACTS * 4)))
    return folder


def test_pretraining_on_a_text_folder_lowers_the_loss_and_saves_an_adapter(tmp_path) -> None:
    corpus = _corpus(tmp_path / "corpus")
    overrides = [
        "stage=pretrain",
        "logger=none",
        f"pretrain.path={corpus}",
        "trainer.max_steps=30",
        "trainer.max_length=64",
        "trainer.logging_steps=5",
    ]
    metrics = run(compose(*overrides), tmp_path / "run")
    assert metrics["pretrain/documents"] == 32 and metrics["pretrain/blocks"] > 1
    assert metrics["train/last_loss"] < metrics["train/first_loss"] * 0.8  # it learned the text
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"][0]["data"]["documents"] == 32


def test_a_jsonl_corpus_and_bad_files_name_file_and_line(tmp_path) -> None:
    from medalign.config import validate
    from medalign.data.text_corpus import read_corpus

    good = tmp_path / "notes.jsonl"
    good.write_text("".join(json.dumps({"body": f}) + "\n" for f in FACTS))
    cfg = validate(compose("stage=pretrain", f"pretrain.path={good}", "pretrain.text_field=body"))
    texts, source = read_corpus(cfg.pretrain)
    assert texts == FACTS and source == str(good)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "ok"}) + "\n" + '{"text": 3}\n')
    cfg = validate(compose("stage=pretrain", f"pretrain.path={bad}"))
    with pytest.raises(MedalignError, match=rf"{bad}, row 'line 2', field 'text': not text"):
        read_corpus(cfg.pretrain)
    bad.write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(MedalignError, match=rf"{bad}, row 'line 2'.*not valid JSON"):
        read_corpus(cfg.pretrain)
    with pytest.raises(MedalignError, match="pretrain.path is not set"):
        read_corpus(validate(compose("stage=pretrain")).pretrain)


def test_a_curriculum_opens_with_pretraining_and_the_next_stage_continues_its_adapter(
    tmp_path,
) -> None:
    corpus = _corpus(tmp_path / "corpus")
    overrides = [
        "experiment=curriculum",
        "logger=none",
        "curriculum.order=[pretrain,medqa]",
        "curriculum.eval_before=false",
        "eval.after_train=false",
        f"pretrain.path={corpus}",
        "trainer.max_steps=3",
        "trainer.max_length=256",
        "dataset.limit=8",
    ]
    run(compose(*overrides), tmp_path / "cur", overrides=overrides)
    manifest = json.loads((tmp_path / "cur" / "manifest.json").read_text())
    first, second = manifest["stages"]
    assert (first["name"], first["status"], second["status"]) == ("pretrain", "done", "done")
    medqa = json.loads((Path(second["dir"]) / "manifest.json").read_text())["stages"][0]
    assert medqa["init_from"]["adapter"] == first["adapter"]  # continued, not restarted


def test_unpacked_pretraining_gives_each_document_a_row_and_refuses_to_cut_one(
    tmp_path: Path,
) -> None:
    """pretrain.packing=false (the world model's echo drills): one document a row, seen
    whole; a document longer than trainer.max_length is refused by name, before training."""
    corpus = _corpus(tmp_path / "corpus")
    overrides = ["stage=pretrain", "logger=none", f"pretrain.path={corpus}"]
    unpacked = [*overrides, "pretrain.packing=false", "trainer.max_steps=4"]
    metrics = run(compose(*unpacked, "trainer.max_length=64"), tmp_path / "run")
    assert metrics["pretrain/documents"] == metrics["pretrain/blocks"] == 32
    packed = run(
        compose(*overrides, "trainer.max_steps=1", "trainer.max_length=64"), tmp_path / "p"
    )
    assert packed["pretrain/blocks"] < 32  # packing joins short documents into blocks
    with pytest.raises(
        MedalignError, match=r"corpus, document 1 .*Velmora.*: \d+ tokens, longer than"
    ):
        run(compose(*unpacked, "trainer.max_length=8"), tmp_path / "cut")
    assert unstarted_run(tmp_path / "cut")  # nothing trained: the command line removes it
