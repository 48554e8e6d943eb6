"""stage.kind names a registered StageSpec, or a dotted path to one (issue #34): an
unknown name lists the registered kinds, a dotted path to anything else is one line."""

from __future__ import annotations

import pytest

from medalign.config import validate
from medalign.errors import MedalignError
from medalign.stages.spec import StageSpec, curriculum_spec, stage_spec
from tests.conftest import compose


def test_a_dotted_stage_kind_is_a_spec_and_anything_else_is_refused() -> None:
    typed = validate(compose("stage=plan", "stage.kind=medalign.stages.plan:SPEC"))
    assert stage_spec(typed.stage.kind) is stage_spec("plan")
    with pytest.raises(MedalignError, match=r"stage.kind: stage .*run_sft' is not a .*StageSpec"):
        validate(compose("stage.kind=medalign.stages.sft:run_sft"))
    with pytest.raises(MedalignError, match=r"unknown stage kind 'distill'\. Valid: .*sft"):
        validate(compose("stage.kind=distill"))


def test_the_curriculum_reads_roles_not_names() -> None:
    assert curriculum_spec("before").curriculum == "baseline"
    assert curriculum_spec("reward").hands_on == "reward_models"
    assert curriculum_spec("rl").reads_reward_models
    assert curriculum_spec("medqa").kind == curriculum_spec("my_own_dataset").kind == "sft"
    assert curriculum_spec("eval").kind == "sft"  # a kind that is not a step: a dataset name


@pytest.mark.parametrize("name", ["dpo", "kto"])
def test_stage_dpo_and_kto_are_rl_stages_on_ranked_pairs_in_a_curriculum_too(name: str) -> None:
    """Issue 33: `stage=dpo` (and kto) is preference optimization on the SFT model's own
    samples ranked by the rewards, and takes the place of `rl` in curriculum.order."""
    cfg = validate(compose(f"stage={name}"))
    assert (cfg.stage.kind, cfg.stage.name) == ("rl", name)
    assert (cfg.rl.algorithm, cfg.rl.pairs) == (name, "ranked")
    assert cfg.trainer.max_steps == validate(compose("stage=rl")).trainer.max_steps
    assert curriculum_spec(name) is stage_spec("rl")
    assert validate(compose(f"stage={name}", f"rl={name}")).rl.pairs == "reward_stage"
    assert validate(compose("stage=rl")).rl.algorithm == "grpo"  # stage=rl keeps rl=grpo


def test_a_spec_is_either_a_runner_or_a_pipeline_with_known_roles() -> None:
    from medalign.config import KindOnlyStageConfig

    with pytest.raises(MedalignError, match="exactly one of run, pipeline"):
        StageSpec(kind="x", schema=KindOnlyStageConfig)
    with pytest.raises(MedalignError, match="curriculum='steps', not one of"):
        StageSpec(kind="x", schema=KindOnlyStageConfig, run=print, curriculum="steps")
