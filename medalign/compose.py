"""Compose the config tree the way the CLI does, from Python (curriculum stages, resume,
tests). The tree ships inside the package (medalign/conf), so this works from a wheel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")


def register_resolvers() -> None:
    """The registered config interpolations (registry kind `config_resolver`), e.g.
    `${world_root:<seed>,<diseases>}`: the synthetic world's folder in the cache, written
    on first use (medalign/world/store.py)."""
    from omegaconf import OmegaConf

    from medalign.registry import get, names

    for name in names("config_resolver"):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, get("config_resolver", name))


def compose(overrides: list[str]) -> Any:
    """The full DictConfig for `overrides` (Hydra's compose API, no run directory)."""
    register_resolvers()
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name="config", overrides=overrides)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def catalogue(name: str) -> Any:
    """The DatasetConfig of `datasets.<name>` as the default config composes it."""
    from medalign.config import validate

    return validate(compose([])).datasets[name]
