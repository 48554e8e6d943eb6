"""The YAML tree and the typed configs say the same thing (issue 23): every default a
dataclass declares equals what the default config composes (or conf/dataset/_base.yaml
for the keys every dataset shares), so no dead default can drift from the live one."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from medalign.config import GROUP_SCHEMAS, DatasetConfig
from tests.conftest import CONF, compose

OPTION_SPECIFIC = {"model", "dataset"}  # the default option's own values (tiny, pubmedqa)


def _diff(prefix: str, declared, composed) -> list[str]:
    if isinstance(declared, dict) and isinstance(composed, dict):
        out = []
        for key in sorted(set(declared) | set(composed), key=str):
            if key not in declared or key not in composed:
                where = "the dataclass" if key not in declared else "the YAML"
                out.append(f"{prefix}.{key}: missing in {where}")
            else:
                out += _diff(f"{prefix}.{key}", declared[key], composed[key])
        return out
    return [] if declared == composed else [f"{prefix}: {declared!r} vs YAML {composed!r}"]


@pytest.mark.parametrize("group", sorted(set(GROUP_SCHEMAS) - OPTION_SPECIFIC))
def test_every_dataclass_default_is_the_composed_default(group: str) -> None:
    composed = OmegaConf.to_container(compose(), resolve=True)[group]
    declared = OmegaConf.to_container(OmegaConf.structured(GROUP_SCHEMAS[group]))
    assert _diff(group, declared, composed) == []


def test_every_shared_dataset_key_has_one_default() -> None:
    base = OmegaConf.to_container(OmegaConf.load(CONF / "dataset" / "_base.yaml"))
    declared = OmegaConf.to_container(OmegaConf.structured(DatasetConfig))
    mismatched = [
        f"dataset.{k}: {declared.get(k)!r} vs _base.yaml {v!r}"
        for k, v in base.items()
        if v != "???" and declared.get(k) != v
    ]
    assert mismatched == []
