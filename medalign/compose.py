"""Compose the config tree the way the CLI does, from Python (curriculum stages, resume,
tests). The tree ships inside the package (medalign/conf), so this works from a wheel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")


def register_resolvers() -> None:
    """Config interpolations of medalign's own: `${world_root:<seed>,<diseases>}` is the
    synthetic world's folder in the cache, written on first use (medalign/world/store.py)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("world_root"):
        OmegaConf.register_new_resolver("world_root", _world_root)


def _world_root(seed: int, diseases: int) -> str:
    from medalign.world.store import world_root

    return world_root(int(seed), int(diseases))


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
