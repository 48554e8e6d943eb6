"""rl.use_vllm=true: the installed vllm must lie in the range TRL's vLLM integration declares.

    from medalign.models.vllm_range import check_trl_vllm
    check_trl_vllm()      # before any model loads (models/switches.py calls it)

Why: TRL's `[vllm]` extra names the vllm releases its GRPO/RLOO generation is built and
tested against (trl 1.16.0: `vllm>=0.22.0,<=0.31.0`). Outside that range TRL only warns
at import and the run fails later, deep inside a step (weight sync, sampling API), after
the models have loaded. medalign stops at start-up in one line naming both versions.

Both versions are read from the installed packages' metadata (importlib.metadata), so
the check costs milliseconds and follows TRL when it widens its range. A local build tag
(`0.31.0+cu130`) counts as its release, as TRL's own check does.
"""

from __future__ import annotations

from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from medalign.errors import MedalignError


def installed_version(package: str) -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def trl_vllm_range() -> tuple[str, SpecifierSet] | None:
    """(trl's version, the vllm specifier of its `[vllm]` extra); None when TRL is not
    installed or declares no such extra."""
    trl = installed_version("trl")
    if trl is None:
        return None
    for text in metadata.requires("trl") or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.name.lower() == "vllm" and req.marker and req.marker.evaluate({"extra": "vllm"}):
            return trl, req.specifier
    return None


def vllm_outside_range(vllm: str, spec: SpecifierSet) -> bool:
    """True when `vllm` (its release, without a local build tag) is outside `spec`."""
    try:
        release = Version(Version(vllm).base_version)
    except InvalidVersion:
        return True
    return not spec.contains(release, prereleases=True)


def check_trl_vllm(switch: str = "rl.use_vllm=true") -> None:
    """Raise MedalignError when the installed vllm is outside TRL's declared range.
    Nothing to check without vllm (models/switches.py reports it missing) or without a
    range declared by TRL."""
    vllm = installed_version("vllm")
    declared = trl_vllm_range()
    if vllm is None or declared is None:
        return
    trl, spec = declared
    if vllm_outside_range(vllm, spec):
        raise MedalignError(
            f"{switch}: vllm {vllm} is installed, but trl {trl} supports vllm{spec} (its "
            "[vllm] extra); install a vllm in that range (`make install-gpu` pins one: "
            "constraints-gpu.txt)"
        )
