"""A sweep whose objective cannot exist is refused before any job trains, and a job
whose metrics lack `sweep.metric` fails with the names it has (Optuna records a failed
trial) instead of handing the sweeper `None` (a raw traceback after every job trained)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from medalign.config import validate
from medalign.errors import MedalignError
from tests.conftest import compose

OPTUNA = OmegaConf.create({"sweeper": {"_target_": "hydra_plugins.x.OptunaSweeper"}})
BASIC = OmegaConf.create({"sweeper": {"_target_": "hydra._internal.BasicSweeper"}})


def _check(hydra_cfg, *overrides: str) -> None:
    from medalign.sweep import check_sweep_metric

    check_sweep_metric(hydra_cfg, validate(compose("stage=medmcqa", *overrides)))


def test_optuna_without_a_metric_is_refused() -> None:
    with pytest.raises(MedalignError, match="sweep.metric"):
        _check(OPTUNA)
    _check(BASIC)  # a grid sweep needs no objective


def test_an_eval_metric_needs_the_evaluation_that_produces_it() -> None:
    with pytest.raises(MedalignError, match="eval.after_train=true"):
        _check(OPTUNA, "sweep.metric=eval/medmcqa/acc")
    with pytest.raises(MedalignError, match="medmcqq.*eval.datasets"):
        _check(OPTUNA, "sweep.metric=eval/medmcqq/acc", "eval.after_train=true")
    _check(OPTUNA, "sweep.metric=eval/medmcqa/acc", "eval.after_train=true")
    _check(OPTUNA, "sweep.metric=train/loss")


def test_a_metric_the_job_did_not_produce_names_the_ones_it_did() -> None:
    from medalign.sweep import sweep_objective

    metrics = {"eval/medmcqa/acc": 0.3, "train/loss": 7.1, "train/packing": False}
    assert sweep_objective(metrics, "eval/medmcqa/acc") == 0.3
    assert sweep_objective(metrics, None) is None
    with pytest.raises(MedalignError, match="eval/medmcqa/accuracy.*eval/medmcqa/acc"):
        sweep_objective(metrics, "eval/medmcqa/accuracy")
