"""The real-data path without traps (issue 36): a missing file names the file expected
and the override, training on an evaluation file or on less than a batch is warned, the
documented layouts are the ones the loader reads, and a run that fails on bad input
before its first step leaves no directory."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from medalign.data.loading import EXAMPLES_DIR, get_task, load_records, load_training_data
from medalign.errors import MedalignError
from tests.conftest import dataset_cfg, with_dataset

DOCS = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


def test_a_missing_file_names_the_file_expected_and_the_override(tmp_path: Path) -> None:
    """`stage=medmcqa data_root=<folder>` with the files under other names."""
    (tmp_path / "medmcqa").mkdir()
    (tmp_path / "medmcqa" / "medmcqa_train.jsonl").write_text("{}\n")
    with pytest.raises(MedalignError) as caught:
        load_records(dataset_cfg("medmcqa"), data_root=str(tmp_path))
    message = str(caught.value)
    assert "should hold train.json for split 'train'" in message
    assert "it holds medmcqa_train.jsonl" in message
    assert "dataset.path=<file>" in message and "datasets.medmcqa.path=<file>" in message
    assert "\n" not in message
    with pytest.raises(MedalignError, match=r"medqa/4_options/phrases_no_exclude_train.jsonl"):
        load_records(dataset_cfg("medqa"), data_root=str(tmp_path))  # no medqa/ at all


def _training(tmp_path: Path, file_name: str, **changes: object):
    target = tmp_path / file_name
    shutil.copy(EXAMPLES_DIR / "medmcqa" / "train.json", target)
    dcfg = dataset_cfg("medmcqa", path=str(target), **changes)
    return with_dataset(dcfg, "stage=medmcqa", "logger=none", "eval.datasets=[]")


@pytest.mark.parametrize("name", ["dev.json", "medmcqa_test_sample.json", "my-val.jsonl"])
def test_training_on_an_evaluation_file_is_warned_by_name(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _training(tmp_path, name)
    with caplog.at_level(logging.WARNING, logger="medalign.data.loading"):
        load_training_data(cfg)
    warned = [r.getMessage() for r in caplog.records if "evaluation split" in r.getMessage()]
    assert len(warned) == 1 and name in warned[0] and "'medmcqa'" in warned[0]


def test_a_training_file_of_a_training_name_is_not_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="medalign.data.loading"):
        load_training_data(_training(tmp_path, "train_latest.json"))
    assert not [r for r in caplog.records if "evaluation split" in r.getMessage()]


def test_fewer_rows_than_one_batch_is_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _training(tmp_path, "train.json", limit=1)
    batch = cfg.trainer.per_device_train_batch_size
    assert batch > 1
    with caplog.at_level(logging.WARNING, logger="medalign.data.loading"):
        load_training_data(cfg)
    (warned,) = [r.getMessage() for r in caplog.records if "fewer than one batch" in r.getMessage()]
    assert f"per_device_train_batch_size={batch}" in warned and "medmcqa (1 from" in warned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medalign.data.loading"):
        (tmp_path / "full").mkdir()
        load_training_data(_training(tmp_path / "full", "train.json", limit=batch))
    assert not [r for r in caplog.records if "fewer than one batch" in r.getMessage()]


def _documented_layouts() -> dict[str, tuple[str, str]]:
    """{dataset: (the first file pattern of its 'layout read' cell, its first split)}."""
    out = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"`\w+`", cells[0]):
            continue
        patterns = re.findall(r"`([^`]*\.(?:jsonl|json|csv))`", cells[1])
        splits = re.findall(r"`(\w+)`", cells[2])
        if patterns and splits:
            out[cells[0].strip("`")] = (patterns[0], splits[0])
    return out


def test_the_documented_layouts_are_the_ones_the_loader_reads(tmp_path: Path) -> None:
    """docs/datasets.md gave MedQA as `US/4_options/...` while the loader read
    `<root>/medqa/4_options/...`: each documented file, made under a data_root, loads."""
    layouts = _documented_layouts()
    assert {"pubmedqa", "medmcqa", "medqa", "radqa", "mmlu_medical"} <= set(layouts)
    for name, (pattern, split) in layouts.items():
        subject = "anatomy"
        relative = pattern.replace("{split}", split).replace("{subject}", subject)
        source = EXAMPLES_DIR / name / relative
        assert source.is_file(), f"docs/datasets.md: {name}: {relative} is not in the examples"
        target = tmp_path / name / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        for beside in ("test_ground_truth.json",):  # "beside the file" (PubMedQA)
            if beside in DOCS.read_text() and (source.parent / beside).is_file():
                shutil.copy(source.parent / beside, target.parent / beside)
        changes: dict = {"split": split}
        if name == "mmlu_medical":
            changes["task_args"] = {"subjects": [subject]}
        dcfg = dataset_cfg(name, **changes)
        loaded = load_records(dcfg, data_root=str(tmp_path))
        assert loaded.records, name
        read = Path(loaded.source)
        expected = get_task(dcfg).split_file(tmp_path / name)
        assert read == expected and (target == read or target.parent == read), name


def test_a_run_that_fails_before_its_first_step_leaves_no_directory(tmp_path: Path) -> None:
    from medalign import guard
    from medalign.run import run as run_stage
    from tests.conftest import compose

    run_dir = tmp_path / "runs" / "2026-12-06" / "20-00-00_medmcqa"
    cfg = compose("stage=medmcqa", "logger=none", f"data_root={tmp_path / 'nowhere'}")
    with pytest.raises(MedalignError, match="file not found"):
        run_stage(cfg, run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"][0]["status"] == "failed"  # what the stage leaves behind
    assert guard.unstarted_run(run_dir)
    guard.discard_refused(run_dir, None)  # what the CLI does with a MedalignError
    assert not run_dir.exists()
    kept = tmp_path / "runs" / "kept"  # a failed run that produced something stays
    with pytest.raises(MedalignError):
        run_stage(cfg, kept)
    (kept / "checkpoints").mkdir()
    assert not guard.unstarted_run(kept)
    guard.discard_refused(kept, None)
    assert (kept / "manifest.json").is_file()


def test_a_resumed_run_that_fails_is_never_removed(tmp_path: Path) -> None:
    from medalign import guard

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stage = {"name": "medmcqa", "status": "failed", "resumed": "2026-12-06T20:00:00"}
    (run_dir / "manifest.json").write_text(json.dumps({"kind": "stage", "stages": [stage]}))
    assert not guard.unstarted_run(run_dir)
    guard.discard_refused(run_dir, None)
    assert run_dir.is_dir()
