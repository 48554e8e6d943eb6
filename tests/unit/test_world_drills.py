"""The copy drills (medalign/world/drills.py) and the world model's copy phase: drills that
can only be predicted by copying, that state no fact, and a default world model whose
cache key the new settings leave alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medalign.config import validate
from medalign.world.drills import copy_drills, echo_drills
from medalign.world.knowledge import build_world
from medalign.world.model import world_model_digest
from tests.conftest import compose


def test_an_echo_drill_says_the_same_fresh_words_twice() -> None:
    drills = echo_drills(200, seed=0)
    assert drills == echo_drills(200, seed=0) and drills != echo_drills(200, seed=1)
    assert len(set(drills)) > 195  # drawn fresh: nothing to memorize
    for drill in drills:
        first, again = re.fullmatch(r"Say: (.+)\. Again: (.+)\.", drill).groups()
        assert first == again and 3 <= len(first.split()) <= 8


def test_copy_drills_repeat_a_span_and_state_no_fact_of_the_world() -> None:
    world = build_world(0, 40)
    drills = copy_drills(world, 600, seed=0)
    kinds = {d.split(":")[0] for d in drills}
    assert kinds == {"Say", "Options"} | {d.split(":")[0] for d in drills if "Restated" in d}
    diseases = [d.name for d in world.diseases]
    triples = {", ".join(d.findings[:2]) + " and " + d.findings[2] for d in world.diseases}
    restated = [d for d in drills if "Restated: a patient with " in d]
    lookups = [d for d in drills if d.startswith("Options: ")]
    assert min(len(restated), len(lookups)) > 150  # about a third each
    for drill in restated:
        case = re.search(r"comes to the physician with (.+?)\. Laboratory", drill).group(1)
        assert drill.endswith(f"Restated: a patient with {case}.")
        assert case not in triples  # no disease has that triple: nothing to recall
    for drill in lookups:
        options = dict(re.findall(r"([A-D]): (\w+)", drill.split(". ")[0]))
        name, letter = re.search(r"\. (\w+) is option ([A-D])\.$", drill).groups()
        assert options[letter] == name and set(options.values()) <= set(world.drugs)
    assert not any(name in drill for drill in drills for name in diseases)


def test_the_default_world_model_keeps_its_cache_key_and_the_copy_phase_gets_its_own() -> None:
    """copy=null (model=world) is the model cached before the copy phase existed."""
    default = validate(compose("model=world")).model
    copying = validate(compose("model=world_copy")).model
    fewer = validate(compose("model=world_copy", "model.world.copy.echo_steps=10")).model
    assert world_model_digest(default) == "6c01ed34732c"
    assert copying.world.copy.echo_steps == 1250 and copying.world.pretrain_steps == 1500
    digests = {world_model_digest(m) for m in (default, copying, fewer)}
    assert len(digests) == 3


@pytest.mark.slow
def test_the_copy_phase_builds_through_two_real_pretraining_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """model=world_copy: the plain world model first, then echo drills one a row, then the
    textbook beside copy drills, each a real `stage=pretrain` run kept with the model."""
    import json

    from medalign.models.builders import cache_root
    from medalign.world.model import build_world_model

    monkeypatch.setenv("MEDALIGN_CACHE", str(tmp_path / "cache"))
    cfg = validate(
        compose(
            "model=world_copy",
            "model.tiny.vocab_size=2048",
            "model.world.diseases=24",
            "model.world.pretrain_steps=2",
            "model.world.copy.echo_steps=3",
            "model.world.copy.drills_per_pass=20",
            "model.world.copy.read_steps=4",
        )
    ).model
    assert cache_root() == tmp_path / "cache"
    model = Path(build_world_model(cfg))
    for run, steps, rows in (("copy_run", 3, 3 * 32), ("pretrain_run", 4, None)):
        metrics = json.loads((model / run / "metrics.json").read_text())
        assert metrics["train/steps"] == steps
        if rows:  # one drill a row: as many rows as drills
            assert metrics["pretrain/blocks"] == metrics["pretrain/documents"] == rows
    config = (model / "copy_run" / "config.yaml").read_text()
    assert "packing: false" in config and "lr_scheduler_type: constant" in config
    models = (tmp_path / "cache" / "models").glob("world-*")
    plain = [p for p in models if p != model]
    assert len(plain) == 1  # the plain world model it started from, cached on its own
    steps = json.loads((plain[0] / "pretrain_run" / "metrics.json").read_text())["train/steps"]
    assert steps == 2
    assert build_world_model(cfg) == str(model)  # cached: built once
