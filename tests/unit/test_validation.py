"""SFT validation without training: start-up checks, which rows are held out, the
TrainingArguments it sets, and the curriculum's results section (no model loaded)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from medalign.checks import check_components
from medalign.config import validate
from medalign.errors import MedalignError
from tests.conftest import compose


@pytest.fixture(scope="module")
def medqa():
    """stage=medqa composed and validated once (a compose costs ~0.7 s)."""
    return validate(compose("stage=medqa"))


def _with(cfg, dataset: str | None = None, **trainer):
    """`cfg` with trainer keys changed (and another catalogue dataset), start-up checked."""
    changed = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, **trainer))
    if dataset is not None:
        changed = dataclasses.replace(changed, dataset=cfg.datasets[dataset])
    check_components(changed)
    return changed


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        ({"early_stopping_patience": 2}, r"early_stopping_patience=2: needs validation"),
        ({"load_best_model_at_end": True}, r"load_best_model_at_end=True: needs validation"),
        ({"eval_steps": 5, "validation_fraction": 0.0}, r"validation_fraction=0.0: must be in"),
        ({"eval_steps": 5, "validation_fraction": 1.5}, r"must be in \(0, 1\)"),
        ({"eval_steps": 0}, r"trainer.eval_steps=0: must be >= 1"),
        ({"eval_steps": 5, "early_stopping_patience": 0}, r"patience=0: must be >= 1"),
        ({"eval_steps": 100, "max_steps": 60}, r"more than trainer.max_steps=60"),
        (
            {"eval_steps": 4, "save_steps": 10, "early_stopping_patience": 1},
            r"save_steps=10: .* multiple of trainer.eval_steps=4",
        ),
    ],
)
def test_bad_validation_settings_fail_at_start_up(medqa, trainer: dict, message: str) -> None:
    with pytest.raises(MedalignError, match=message):
        _with(medqa, **trainer)


def test_the_keys_are_declared_so_one_override_turns_validation_on() -> None:
    cfg = validate(compose("stage=medqa", "trainer.eval_steps=10"))
    assert cfg.trainer.eval_steps == 10 and cfg.trainer.validation_split == "auto"
    assert cfg.trainer.early_stopping_patience is None


def test_validation_is_off_by_default(medqa) -> None:
    from medalign.stages.validation import validation_args, validation_callbacks

    off = _with(medqa)
    assert validation_args(off) == {} and validation_callbacks(off) == []
    on = _with(medqa, eval_steps=10)
    assert validation_args(on) == {
        "eval_strategy": "steps",
        "eval_steps": 10,
        "per_device_eval_batch_size": on.trainer.per_device_train_batch_size,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
    }
    stop = _with(medqa, eval_steps=10, early_stopping_patience=3)
    args = validation_args(stop)  # patience keeps the best adapter unless told otherwise
    assert args["load_best_model_at_end"] is True and args["save_strategy"] == "best"
    (callback,) = validation_callbacks(stop)
    assert type(callback).__name__ == "EarlyStoppingCallback"
    assert callback.early_stopping_patience == 3
    periodic = _with(medqa, eval_steps=10, save_steps=20, load_best_model_at_end=True)
    assert "save_strategy" not in validation_args(periodic)  # keeps trainer.save_steps


def test_the_sft_config_accepts_the_validation_arguments(medqa, tmp_path: Path) -> None:
    from trl import SFTConfig

    from medalign.outputs import RunDir
    from medalign.stages.common import build_config, trainer_args
    from medalign.stages.validation import validation_args
    from medalign.tracking import Tracker

    cfg = _with(medqa, eval_steps=5, early_stopping_patience=2, max_steps=20)
    common = trainer_args(cfg, RunDir(tmp_path), Tracker())
    args = build_config(SFTConfig, cfg, common, **validation_args(cfg))
    assert args.eval_strategy == "steps" and args.eval_steps == 5
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    assert args.save_strategy == "best" and not args.greater_is_better


def _held(cfg):
    from medalign.data.loading import load_training_data
    from medalign.data.validation import hold_out

    data = load_training_data(cfg)
    return data, hold_out(cfg, data)


def test_a_seeded_fraction_leaves_the_training_rows_with_every_copy(medqa) -> None:
    cfg = _with(medqa, eval_steps=2, validation_fraction=0.25)
    data, held = _held(cfg)
    (val, _), train = held.parts[0], data.parts[0].records
    assert len(val) == 6 and len(train) == 18  # 24 example rows
    assert not {r.id for r in val} & {r.id for r in train}
    assert held.sources == {"medqa": "fraction:0.25"}
    _, again = _held(cfg)
    assert [r.id for r in again.parts[0][0]] == [r.id for r in val]  # seeded
    _, other = _held(dataclasses.replace(cfg, seed=7))
    assert [r.id for r in other.parts[0][0]] != [r.id for r in val]
    # a mix weight of 2 repeats every row: no copy of a held-out row may stay in training
    mixed = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, mix={"medqa": 2.0}))
    data, held = _held(mixed)
    held_ids = {r.id for r in held.parts[0][0]}
    assert held_ids and not held_ids & {r.id for r in data.parts[0].records}
    assert len(data.parts[0].records) == 2 * (24 - len(held_ids))


def _instruction_folder(root: Path, with_validation: bool) -> Path:
    rows = [{"instruction": f"Say {i}", "input": "", "output": f"word {i}"} for i in range(6)]
    root.mkdir()
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    if with_validation:
        (root / "validation.jsonl").write_text(json.dumps({**rows[0], "output": "dev row"}))
    return root


def test_auto_uses_the_dev_split_when_the_dataset_has_one(medqa, tmp_path: Path) -> None:
    folder = _instruction_folder(tmp_path / "with", with_validation=True)
    cfg = _with(medqa, "instructions", eval_steps=2)
    data, held = _held(_at(cfg, folder))
    assert held.sources == {"instructions": "split:validation"}
    assert [r.answer for r in held.parts[0][0]] == ["dev row"]
    assert len(data.parts[0].records) == 6  # nothing taken from training
    bare = _instruction_folder(tmp_path / "without", with_validation=False)
    _, held = _held(_at(cfg, bare))
    assert held.sources == {"instructions": "fraction:0.1"}


def _at(cfg, folder: Path):
    return dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, path=str(folder)))


def test_an_evaluation_split_is_never_the_validation_split(medqa) -> None:
    # MedMCQA's dev split is its evaluation set: auto holds out a fraction instead
    _, held = _held(_with(medqa, "medmcqa", eval_steps=2))
    assert held.sources == {"medmcqa": "fraction:0.1"}
    with pytest.raises(MedalignError, match="validation_split=dev: that is the evaluation split"):
        _held(_with(medqa, "medmcqa", eval_steps=2, validation_split="dev"))
    with pytest.raises(MedalignError, match="validation_split=test: that is the evaluation"):
        _held(_with(medqa, eval_steps=2, validation_split="test"))


def test_the_curriculum_results_show_each_stage_best_validation_loss(medqa, tmp_path: Path) -> None:
    from medalign.reports.results import write_results

    manifest = {
        "stages": [
            {"name": "before", "metrics": {"eval/medqa/acc": 0.25}},
            {
                "name": "medqa",
                "metrics": {"eval/medqa/acc": 0.3},
                "validation": {
                    "losses": [[2, 2.5], [4, 2.25], [6, 2.4]],
                    "best_loss": 2.25,
                    "best_step": 4,
                    "stopped_early": True,
                    "kept": "best",
                },
            },
        ]
    }
    table = {"before": {"medqa": 0.25}, "medqa": {"medqa": 0.3}}
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "kind": "curriculum"}))
    cfg = dataclasses.replace(medqa, logger=dataclasses.replace(medqa.logger, name="none"))
    write_results(tmp_path, table, cfg, manifest)
    text = (tmp_path / "results.md").read_text()
    assert "| medqa | 2.2500 | 4 | 3 | yes | best |" in text
    assert "| before | 2" not in text  # a stage without validation has no row
