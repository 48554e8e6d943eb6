"""A killed Optuna sweep continues its study: what `resume_study` decides from the study
in `<sweep dir>/optuna.db`, and the storage the optuna_lora sweeper is given.

The study tests are `slow` only because `import optuna` takes 3-6 s here (scipy.stats,
cmaes); they train nothing. The end-to-end kill-and-rerun is in
tests/integration/test_sweep_survives.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from medalign.sweep import INTERRUPTED, prepare_sqlite, resume_study
from tests.conftest import CONF


def _study(url: str):
    import optuna

    prepare_sqlite(url)
    return optuna.create_study(study_name="medalign", storage=url, direction="minimize")


@pytest.mark.slow
def test_a_rerun_runs_only_what_is_left_and_retries_the_interrupted_trial(
    tmp_path: Path,
) -> None:
    import optuna

    url = f"sqlite:///{tmp_path}/sweep/optuna.db"
    study = _study(url)
    for value in (0.5, 0.25):  # two finished trials
        trial = study.ask()
        trial.suggest_float("trainer.learning_rate", 1e-4, 1e-2, log=True)
        study.tell(trial, value)
    failed = study.ask()  # a job that failed (NaN): finished, counts as done
    failed.suggest_float("trainer.learning_rate", 1e-4, 1e-2, log=True)
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    killed = study.ask()  # the kill came while this one trained
    lr = killed.suggest_float("trainer.learning_rate", 1e-4, 1e-2, log=True)

    impl = SimpleNamespace(
        storage=url,
        study_name="medalign",
        n_trials=6,
        job_idx=0,
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    assert resume_study(impl) == {"done": 3, "interrupted": 1, "remaining": 3}
    assert (impl.n_trials, impl.job_idx) == (3, 4)  # job directories 0-3 are kept
    trials = optuna.load_study(study_name="medalign", storage=url).get_trials()
    assert trials[3].state == optuna.trial.TrialState.FAIL and trials[3].user_attrs[INTERRUPTED]
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1  # asked first by the next trial: the same parameters again
    retried = optuna.load_study(study_name="medalign", storage=url).ask()
    assert retried.suggest_float("trainer.learning_rate", 1e-4, 1e-2, log=True) == lr

    # killed again while the retried trial ran: the interrupted ones never count as done
    again = SimpleNamespace(storage=url, study_name="medalign", n_trials=6, job_idx=0, sampler=None)
    assert resume_study(again) == {"done": 3, "interrupted": 1, "remaining": 3}
    assert again.job_idx == 5


@pytest.mark.slow
def test_a_new_study_keeps_n_trials_and_an_existing_database_opens(tmp_path: Path) -> None:
    import optuna

    url = f"sqlite:///{tmp_path}/new/optuna.db"
    impl = SimpleNamespace(storage=url, study_name="medalign", n_trials=4, job_idx=0, sampler=None)
    assert resume_study(impl)["remaining"] == 4 and (impl.n_trials, impl.job_idx) == (4, 0)
    assert (tmp_path / "new" / "optuna.db").is_file()
    study = optuna.create_study(study_name="medalign", storage=url, load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    prepare_sqlite(url)  # idempotent on a database in use
    assert len(optuna.load_study(study_name="medalign", storage=url).trials) == 2


def test_the_optuna_lora_sweeper_stores_its_study_in_the_sweep_dir(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["hydra/sweeper=optuna_lora", f"hydra.sweep.dir={tmp_path}/s"],
            return_hydra_config=True,
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.medalign_sweeper.ResumableOptunaSweeper"
    assert sweeper.storage == f"sqlite:///{tmp_path}/s/optuna.db"
    assert sweeper.study_name == "medalign"
