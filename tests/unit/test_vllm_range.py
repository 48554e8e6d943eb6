"""rl.use_vllm=true with a vllm outside the range trl's [vllm] extra declares: one line at
start-up naming both versions (medalign/models/vllm_range.py). This machine has no vllm:
the installed version is monkeypatched; TRL's range is read from the installed trl."""

from __future__ import annotations

from importlib import metadata

import pytest
from packaging.specifiers import SpecifierSet

from medalign.config import validate
from medalign.errors import MedalignError
from medalign.models import switches, vllm_range
from tests.conftest import compose


def _installed(versions: dict[str, str | None]):
    real = metadata.version

    def version(package: str) -> str:
        if package in versions:
            if versions[package] is None:
                raise metadata.PackageNotFoundError(package)
            return versions[package]
        return real(package)

    return version


def test_trls_declared_range_is_read_from_its_metadata() -> None:
    trl, spec = vllm_range.trl_vllm_range()
    assert trl == metadata.version("trl")
    if trl == "1.16.0":  # the pinned trl (constraints.txt, constraints-gpu.txt)
        assert spec == SpecifierSet(">=0.22.0,<=0.31.0")
    assert "0.22.0" in spec


@pytest.mark.parametrize(
    ("vllm", "outside"),
    [
        ("0.31.0", False),
        ("0.22.0", False),
        ("0.31.0+cu130", False),  # a local build of a release in range
        ("0.27.1", False),
        ("0.33.0", True),
        ("0.31.1", True),
        ("0.21.0", True),
        ("0.32.0rc1", True),
        ("not-a-version", True),
    ],
)
def test_the_range_logic(vllm: str, outside: bool) -> None:
    assert vllm_range.vllm_outside_range(vllm, SpecifierSet(">=0.22.0,<=0.31.0")) is outside


def test_use_vllm_outside_trls_range_stops_in_one_line_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trl, spec = vllm_range.trl_vllm_range()
    monkeypatch.setattr(switches, "_has", lambda module: True)  # a vllm is importable
    monkeypatch.setattr(vllm_range.metadata, "version", _installed({"vllm": "0.33.0"}))
    cfg = validate(compose("stage=rl", "rl=grpo", "rl.use_vllm=true"))
    with pytest.raises(MedalignError) as caught:
        switches.check_switches(cfg, cuda=True)
    message = str(caught.value)
    assert "\n" not in message
    assert "vllm 0.33.0 is installed" in message and f"trl {trl} supports vllm{spec}" in message
    # in range: no complaint; not installed: the missing-package line, not this one
    monkeypatch.setattr(vllm_range.metadata, "version", _installed({"vllm": "0.31.0"}))
    switches.check_switches(cfg, cuda=True)
    monkeypatch.setattr(vllm_range.metadata, "version", _installed({"vllm": None}))
    monkeypatch.setattr(switches, "_has", lambda module: False)
    with pytest.raises(MedalignError, match="needs the vllm package"):
        switches.check_switches(cfg, cuda=True)


def test_planning_a_vllm_run_needs_no_vllm_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """stage=plan plans for plan.gpu: the installed vllm (if any) is not the run's."""
    monkeypatch.setattr(vllm_range.metadata, "version", _installed({"vllm": "0.33.0"}))
    cfg = validate(compose("stage=plan", "rl=grpo", "rl.use_vllm=true"))
    switches.check_switches(cfg, cuda=False)


def test_no_range_declared_no_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_range.metadata, "version", _installed({"vllm": "9.9.9"}))
    monkeypatch.setattr(vllm_range.metadata, "requires", lambda name: ["numpy>=1"])
    vllm_range.check_trl_vllm()
    monkeypatch.setattr(vllm_range.metadata, "version", _installed({"vllm": "9.9.9", "trl": None}))
    vllm_range.check_trl_vllm()
