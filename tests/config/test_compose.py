"""Every config composes and validates without loading a model; typos fail helpfully."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medalign.checks import check_components
from medalign.config import check_overrides, validate
from medalign.errors import MedalignError
from medalign.registry import names
from medalign.stages.spec import stage_spec
from tests.conftest import REPO, compose, options


def _one_stage_per_kind() -> list[str]:
    """A stage of each kind, plus `dpo` (an RL stage with its own rl option): what crossing
    every experiment needs; the SFT datasets' stages differ only in their dataset."""
    from medalign.stages.spec import stage_yaml_kind

    chosen: dict[str, str] = {}
    for stage in options("stage"):  # a dataset's stage extends stage/sft.yaml: no kind of its own
        chosen.setdefault(stage_yaml_kind(stage) or "sft", stage)
    return sorted({*chosen.values(), "dpo"})


@pytest.mark.parametrize(
    ("stage", "experiment", "debug"),
    [(s, None, None) for s in options("stage")]
    + [(s, None, "fast") for s in options("stage")]
    + [(s, e, "fast") for s in _one_stage_per_kind() for e in options("experiment")],
)
def test_every_stage_and_experiment_validates(
    stage: str, experiment: str | None, debug: str | None
) -> None:
    """Every stage composes alone and with debug=fast, and a stage of every kind with every
    experiment (debug=fast)."""
    overrides = [f"stage={stage}"] + ([f"experiment={experiment}"] if experiment else [])
    overrides += [f"debug={debug}"] if debug else []
    special = {k: k for k in names("stage")}  # a stage named as a kind has that kind
    special |= {"dpo": "rl", "kto": "rl"}  # preference optimization: RL stages of their own
    typed = validate(compose(*overrides))
    needs_models = typed.stage.kind == "rl" and any(
        w and not typed.reward.models.get(n)
        for n, w in typed.reward.weights.items()
        if n in typed.reward.models
    )
    if stage == "compare":  # it reads the runs it compares at start-up: none named here
        with pytest.raises(MedalignError, match="compare.runs is empty"):
            check_components(typed)
    elif needs_models:  # RL alone on a reward-model mix: the models' dirs must be given
        with pytest.raises(MedalignError, match="needs a trained reward model"):
            check_components(typed)
    else:
        check_components(typed)
    if debug:
        assert typed.trainer.max_steps == 5 and typed.logger.name == "none"
    assert typed.stage.kind in names("stage")  # a registered StageSpec's kind
    assert isinstance(typed.stage, stage_spec(typed.stage.kind).schema)
    assert typed.stage.kind == special.get(stage, "sft")  # stage= beats the experiment's


@pytest.mark.parametrize(
    "group",
    [
        *("model", "quant", "lora", "dataset", "logger", "reward", "rl", "debug", "eval"),
        *("plan", "trainer"),
    ],
)
def test_every_group_option_validates(group: str) -> None:
    """Each option validates, so it gives every key of its schema a value (the YAML is
    the one place a value lives: tests/config/test_one_truth.py) and adds none. The stage
    group's options: test_every_stage_and_experiment_validates (each alone, and checked)."""
    for option in options(group):
        validate(compose(f"{group}={option}"))


def test_experiment_curriculum_selects_the_curriculum_stage() -> None:
    assert validate(compose("experiment=curriculum")).stage.kind == "curriculum"


def test_stage_selects_its_dataset() -> None:
    cfg = compose("stage=pubmedqa", "dataset.limit=3")
    assert cfg.dataset.name == "pubmedqa"
    assert cfg.stage.name == "pubmedqa"


def test_overrides_reach_the_typed_config() -> None:
    typed = validate(compose("stage=pubmedqa", "lora.r=16", "trainer.max_steps=7"))
    assert typed.lora.r == 16
    assert typed.trainer.max_steps == 7


def test_real_model_configs_name_their_hub_ids_and_chat_formats() -> None:
    expected = {
        "llama3_8b": ("meta-llama/Meta-Llama-3-8B-Instruct", None),
        "meditron_7b": ("epfl-llm/meditron-7b", "chatml"),
        "biomistral_7b": ("BioMistral/BioMistral-7B", "mistral"),
    }
    for name, (hub_id, template) in expected.items():
        model = validate(compose(f"model={name}")).model
        assert (model.builder, model.path, model.chat_template) == ("hub", hub_id, template)
        assert model.trust_remote_code is False


def test_misspelled_override_names_key_and_valid_keys() -> None:
    with pytest.raises(MedalignError) as err:
        check_overrides(["stage=pubmedqa", "lora.rr=16"])
    message = str(err.value)
    assert "lora.rr" in message and "Did you mean 'r'" in message
    assert "alpha" in message and "target_modules" in message


def test_nested_misspelled_override_is_caught() -> None:
    with pytest.raises(MedalignError, match="model.tiny.hiden_size.*hidden_size"):
        check_overrides(["model.tiny.hiden_size=32"])


def test_valid_overrides_and_group_choices_pass_the_check() -> None:
    check_overrides(["stage=pubmedqa", "lora.r=16", "model.tiny.hidden_size=32", "+x.y=1"])


def test_misspelled_key_in_a_yaml_file_fails_validation() -> None:
    cfg = compose("+lora.rank=4")  # as if a YAML file said `rank:` instead of `r:`
    with pytest.raises(MedalignError, match=r"lora\.rank.*Valid keys of 'lora'"):
        validate(cfg)


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(MedalignError, match=r"lora\.r: expected int; Value 'sixteen'"):
        validate(compose("lora.r=sixteen"))


def test_invalid_choice_lists_the_choices() -> None:
    with pytest.raises(
        MedalignError, match=r"dataset\.on_bad_row: 'ignore' is not one of: error, skip"
    ):
        validate(compose("dataset.on_bad_row=ignore"))


def test_unknown_stage_kind_is_rejected() -> None:
    with pytest.raises(MedalignError, match="stage.kind"):
        validate(compose("stage.kind=distill"))


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "medalign", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_reports_a_typo_without_traceback() -> None:
    result = _cli("stage=pubmedqa", "lora.rr=16")
    assert result.returncode == 2
    assert "medalign: error: config lora.rr: unknown key 'rr'" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_unknown_option_lists_available_options() -> None:
    result = _cli("stage=pubmedq", "--cfg", "job")
    assert result.returncode != 0
    assert "stage=pubmedq: no such stage config. Did you mean 'pubmedqa'?" in result.stderr
    assert "The options: chat, compare, curriculum" in result.stderr  # one line, no Hydra dump
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_cli_help_and_cfg_do_not_import_torch() -> None:
    code = (
        "import sys, medalign.cli as cli\n"
        "sys.argv = ['medalign', 'stage=pubmedqa', 'lora.r=16', '--cfg', 'job']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "from medalign.registry import get\nget('stage', 'sft'); get('model_builder', 'tiny')\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets', 'wandb')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert "r: 16" in result.stdout  # the composed config was printed
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_cli_error_is_printed_once_and_the_refused_run_leaves_nothing(tmp_path: Path) -> None:
    """A refused run's error reaches the terminal once (stderr), not also through the
    console log handler; and a refused run writes nothing (issue 24: no directory left
    holding only Hydra's record and a log)."""
    run_dir = tmp_path / "run"
    result = _cli("stage=pubmedqa", "lora.r=0", "logger=none", f"hydra.run.dir={run_dir}")
    assert result.returncode == 1
    terminal = result.stdout + result.stderr
    assert terminal.count("lora.r=0") == 1, terminal
    assert "medalign: error:" in result.stderr
    assert not run_dir.exists()
    # the default layout, runs/<date>/<time>_<stage>: no empty date folder is left either
    result = _cli("stage=pubmedqa", "lora.r=0", "logger=none", cwd=tmp_path / "fresh")
    assert result.returncode == 1
    assert not (tmp_path / "fresh" / "runs").exists() or not any(
        (tmp_path / "fresh" / "runs").iterdir()
    ), list((tmp_path / "fresh" / "runs").rglob("*"))


@pytest.mark.parametrize("name", ["pubmedqa", "medmcqa", "medqa", "radqa"])
@pytest.mark.parametrize("experiment", ["curriculum", "world"])
def test_a_curriculum_sft_stage_composes_as_its_named_stage_did(name: str, experiment: str) -> None:
    """The curriculum composes an SFT stage as `stage=sft dataset=<name>` (any dataset is
    a stage, issue 23); for the datasets with a stage YAML of their own this is exactly
    the config `stage=<name>` gave, so `make curriculum` reproduces its table."""
    from omegaconf import OmegaConf

    world = ["model.world.pretrain_steps=0"] if experiment == "world" else []
    common = [f"experiment={experiment}", *world]
    named = compose(*common, f"stage={name}")
    generic = compose(*common, "stage=sft", f"dataset={name}", f"stage.name={name}")
    assert OmegaConf.to_container(named) == OmegaConf.to_container(generic)


def test_a_new_key_of_an_open_mapping_without_a_plus_is_one_line() -> None:
    """Found by a new-user trial: `reward.weights.<new>=...` and
    `curriculum.stages.<new>.max_steps=...` (both documented as needing Hydra's `+`)
    without the `+` printed Hydra's six-line struct error. One line now, with the form
    that works; a key the mapping has needs no `+`."""
    from medalign.compose import check_choices
    from medalign.errors import MedalignError

    cases = {
        "reward.weights.brevity=0.5": r"\+reward.weights.brevity=0.5",
        "reward.weights={my_pkg.rewards.brevity: 0.5}": r"\+reward.weights=\{my_pkg",
        "curriculum.stages.toy_exam.max_steps=5": r"\+curriculum.stages.toy_exam.max_steps=5",
    }
    for text, form in cases.items():
        with pytest.raises(
            MedalignError, match=rf"has no key .* a new key needs Hydra's \+: {form}"
        ):
            check_choices([text])
    check_choices(["reward.weights.format=0.5", "curriculum.stages.medqa.max_steps=5"])
    check_choices(["+reward.weights.brevity=0.5", "reward.weights={correctness: 1.0}"])
