"""A curriculum stage whose kind hands on an adapter must have written it: a runner that
records the path without saving (docs/extend/stage.md's example, copied with its `...`)
is caught when that stage ends, not when the next stage fails to load it after training."""

from __future__ import annotations

from pathlib import Path

import pytest

from medalign.config import validate
from medalign.errors import MedalignError
from tests.conftest import compose


def _advance(tmp_path: Path, adapter: Path) -> dict:
    from medalign.curriculum import _advance
    from medalign.stages.spec import curriculum_spec

    cfg = validate(compose("experiment=curriculum", "logger=none"))
    state: dict = {"start": None, "trained": [], "reward_models": {}, "merged": None}
    stage_dir = tmp_path / "curriculum" / "1-pubmedqa"
    entry = {"name": "pubmedqa", "adapter": str(adapter), "base_model": "unused"}
    _advance(cfg, curriculum_spec("pubmedqa"), entry, stage_dir, state)
    return state


def test_a_stage_that_recorded_an_adapter_it_never_wrote_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "curriculum" / "1-pubmedqa" / "adapter"
    empty.mkdir(parents=True)
    with pytest.raises(MedalignError, match=r"'pubmedqa' \(stage kind 'sft'.*adapter_config"):
        _advance(tmp_path, empty)


def test_a_written_adapter_is_handed_on(tmp_path: Path) -> None:
    adapter = tmp_path / "curriculum" / "1-pubmedqa" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    assert _advance(tmp_path, adapter)["start"] is not None
