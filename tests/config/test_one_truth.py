"""One declaration per config key (issue 23): the YAML under conf/ holds every value, the
dataclasses in medalign.config hold types and choices and no value, so a default cannot
live in two places and drift. The tests: no dataclass declares a value; a key the YAML
leaves without a value is refused naming it, and one it adds is refused too; and every
option of every group validates, so the two agree on the keys
(tests/config/test_compose.py::test_every_group_option_validates)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from omegaconf import OmegaConf

import medalign.config as C
from medalign.config import validate
from medalign.errors import MedalignError
from tests.conftest import compose

# A per-stage tweak of curriculum.stages.<name>: each key null ("inherit") unless a stage
# sets it, so an entry names only what it changes. The one schema whose keys have values.
PARTIAL_BY_DESIGN = {C.CurriculumStageStep}
SCHEMAS = [
    obj
    for _, obj in inspect.getmembers(C, inspect.isclass)
    if dataclasses.is_dataclass(obj) and obj.__module__ == C.__name__
]


def test_there_are_schemas_to_check() -> None:
    assert {C.ModelConfig, C.TrainerConfig, C.RunConfig, C.CurriculumStageStep} <= set(SCHEMAS)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_no_dataclass_declares_a_value(schema: type) -> None:
    valued = [
        f.name
        for f in dataclasses.fields(schema)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    if schema in PARTIAL_BY_DESIGN:
        nulls = {f.name: f.default for f in dataclasses.fields(schema) if f.name != "overrides"}
        assert set(nulls.values()) == {None}, nulls
        return
    assert valued == [], f"{schema.__name__} declares values for {valued}: they belong in conf/"


def test_a_key_the_yaml_leaves_without_a_value_is_refused_by_name() -> None:
    cfg = compose()
    OmegaConf.set_struct(cfg, False)
    del cfg.trainer["warmup_steps"]
    with pytest.raises(MedalignError, match=r"config trainer\.warmup_steps: no value"):
        validate(cfg)
    nested = compose()
    OmegaConf.set_struct(nested, False)
    del nested.model.tiny["seed"]
    with pytest.raises(MedalignError, match=r"config model\.tiny\.seed: no value"):
        validate(nested)


def test_a_key_the_schema_lacks_is_refused_by_name() -> None:
    cfg = compose()
    OmegaConf.set_struct(cfg, False)
    cfg.lora["rank"] = 8
    with pytest.raises(MedalignError, match=r"config lora\.rank: unknown key"):
        validate(cfg)
