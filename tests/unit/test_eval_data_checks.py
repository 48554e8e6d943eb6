"""Start-up checks of the data evaluation will read (issue 36): a run that evaluates
after training is refused before it trains, naming the override of the set as
evaluation reads it (`datasets.<name>.*`), not the training dataset's (`dataset.*`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.checks import check_components
from medalign.config import validate
from medalign.errors import MedalignError
from medalign.run import run
from medalign.tasks.pubmedqa import official_test_ids
from tests.conftest import compose

EVAL_KEY = "datasets.pubmedqa.task_args.on_missing_test_ids"


def _row(pmid: str) -> dict:
    return {
        "QUESTION": f"Does drug {pmid} lower blood pressure?",
        "CONTEXTS": ["We randomised 100 adults.", "Pressure fell by 10 mmHg."],
        "LABELS": ["METHODS", "RESULTS"],
        "final_decision": "yes",
        "LONG_ANSWER": "It did.",
    }


@pytest.fixture
def short_root(tmp_path: Path) -> Path:
    """A data_root whose pubmedqa/ori_pqal.json lacks 3 of the 500 official test PMIDs
    (no test_ground_truth.json beside it: the official list applies)."""
    pmids = sorted(official_test_ids())[3:] + ["1", "2"]
    folder = tmp_path / "data" / "pubmedqa"
    folder.mkdir(parents=True)
    (folder / "ori_pqal.json").write_text(json.dumps({p: _row(p) for p in pmids}))
    return folder.parent


def test_missing_test_pmids_of_an_eval_set_refuse_the_run_before_training(
    short_root: Path, tmp_path: Path
) -> None:
    """stage=medmcqa eval.after_train=true used to train first and fail in evaluation,
    suggesting dataset.task_args..., which in stage=medmcqa is MedMCQA's."""
    args = ("stage=medmcqa", "eval.after_train=true", f"data_root={short_root}")
    with pytest.raises(MedalignError) as refused:
        check_components(validate(compose(*args)))
    message = str(refused.value)
    assert "3 of the 500 official test PMIDs are not in the data" in message
    assert f"{EVAL_KEY}=warn" in message
    assert " dataset.task_args" not in message
    run_dir = tmp_path / "runs" / "refused"
    with pytest.raises(MedalignError, match=EVAL_KEY):
        run(compose(*args), run_dir)
    assert not run_dir.exists()  # refused before anything was written or loaded


def test_the_named_override_is_the_one_that_lets_the_run_start(short_root: Path) -> None:
    args = ("stage=medmcqa", "eval.after_train=true", f"data_root={short_root}")
    check_components(validate(compose(*args, f"{EVAL_KEY}=warn")))


def test_a_run_that_does_not_evaluate_does_not_read_the_eval_set(short_root: Path) -> None:
    check_components(validate(compose("stage=medmcqa", f"data_root={short_root}")))


def test_the_training_set_names_the_training_override(short_root: Path) -> None:
    """Where the set is read as the training dataset (dataset.split=test), `dataset.*`
    is the key that changes it."""
    from medalign.data.loading import load_records

    cfg = validate(compose("stage=pubmedqa", "dataset.split=test", f"data_root={short_root}"))
    with pytest.raises(MedalignError) as refused:
        load_records(cfg.dataset, cfg.data_root)
    assert "dataset.task_args.on_missing_test_ids=warn" in str(refused.value)
    assert EVAL_KEY not in str(refused.value)
