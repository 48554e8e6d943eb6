"""Compose the config tree the way the CLI does, from Python (curriculum stages, resume,
tests). The tree ships inside the package (medalign/conf), so this works from a wheel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")
HYDRA_PLUGINS = str(Path(__file__).resolve().parent / "_plugins")


def use_hydra_plugins() -> None:
    """Put medalign's Hydra plugins (the resumable sweeper, the search path that adds
    plugin packages' and $MEDALIGN_CONFIG_PATH's configs) where Hydra looks: the
    `hydra_plugins` namespace, found on sys.path however medalign is installed."""
    import sys

    if HYDRA_PLUGINS not in sys.path:
        sys.path.append(HYDRA_PLUGINS)


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
    use_hydra_plugins()
    register_resolvers()
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return complete_catalogue(hydra_compose(config_name="config", overrides=overrides))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return complete_catalogue(hydra_compose(config_name="config", overrides=overrides))


# Keys that name datasets of the catalogue (lists, or a mapping's keys).
DATASET_KEYS = (
    *("eval.datasets", "dataset.mix", "dataset.decontaminate_against", "rl.datasets"),
    *("reward.datasets", "reward.safety_datasets", "curriculum.order"),
)


def dataset_names() -> list[str]:
    """Every dataset YAML on the config search path (conf/dataset/, plugin packages,
    $MEDALIGN_CONFIG_PATH), but the `_` bases: the catalogue a config can name."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    use_hydra_plugins()
    if not GlobalHydra.instance().is_initialized():
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return dataset_names()
    options = GlobalHydra.instance().config_loader().get_group_options("dataset")
    return sorted(name for name in options if not name.startswith("_"))


def complete_catalogue(cfg: Any) -> Any:
    """Add to `datasets.*` every dataset the config names that conf/config.yaml does not
    list, composed from its YAML in the `dataset` group (conf/dataset/, a plugin
    package's conf, $MEDALIGN_CONFIG_PATH). The catalogue is thus every dataset YAML
    there is: `eval.datasets=[my_exam]` or `curriculum.order=[pubmedqa,my_exam]` needs no
    line in conf/config.yaml. A partial entry given with `+datasets.<name>.<key>=...`
    keeps its keys over the YAML's. Called where a config is composed (here and in
    medalign.cli), inside an initialized Hydra."""
    from hydra import compose as hydra_compose
    from omegaconf import OmegaConf, open_dict

    available = set(dataset_names())
    named = [cfg.dataset.name]
    for key in DATASET_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        named += list(value.keys() if hasattr(value, "keys") else value or [])
    with open_dict(cfg):
        for name in dict.fromkeys(str(n) for n in named):
            entry = cfg.datasets.get(name)
            if name not in available or (entry is not None and "format" in entry):
                continue  # unknown (start-up checks name it) or already in the catalogue
            declared = hydra_compose(config_name="config", overrides=[f"dataset={name}"]).dataset
            cfg.datasets[name] = OmegaConf.merge(declared, entry) if entry else declared
    return cfg


def catalogue(name: str) -> Any:
    """The DatasetConfig of `datasets.<name>` as the default config composes it."""
    from medalign.config import validate

    return validate(compose([])).datasets[name]
