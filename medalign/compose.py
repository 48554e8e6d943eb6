"""Compose the config tree the way the CLI does, from Python (curriculum stages, resume,
tests). The tree ships inside the package (medalign/conf), so this works from a wheel."""

from __future__ import annotations

import os
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

    with _hydra_context():
        return complete_catalogue(hydra_compose(config_name="config", overrides=overrides))


# Keys that name datasets of the catalogue (lists, or a mapping's keys).
DATASET_KEYS = (
    *("eval.datasets", "dataset.mix", "dataset.decontaminate_against", "rl.datasets"),
    *("reward.datasets", "reward.safety_datasets", "curriculum.order"),
)


def dataset_names() -> list[str]:
    """Every dataset YAML on the config search path (conf/dataset/, plugin packages,
    $MEDALIGN_CONFIG_PATH), but the `_` bases: the catalogue a config can name."""
    from hydra.core.global_hydra import GlobalHydra

    use_hydra_plugins()
    with _hydra_context():
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

    named = [cfg.dataset.name]
    for key in DATASET_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        named += list(value.keys() if hasattr(value, "keys") else value or [])
    lacking = [  # not in the catalogue yet, or only a partial +datasets.<name> entry
        name
        for name in dict.fromkeys(str(n) for n in named)
        if "format" not in (cfg.datasets.get(name) or {})
    ]
    if not lacking:  # the usual case: no group listing, no composition
        return cfg
    available = set(dataset_names())
    with open_dict(cfg):
        for name in lacking:
            if name not in available:
                continue  # unknown: the start-up checks name it, with the closest
            entry = cfg.datasets.get(name)
            declared = hydra_compose(config_name="config", overrides=[f"dataset={name}"]).dataset
            cfg.datasets[name] = OmegaConf.merge(declared, entry) if entry else declared
    return cfg


def catalogue(name: str) -> Any:
    """The DatasetConfig of `datasets.<name>` as the default config composes it."""
    return defaults().datasets[name]


def defaults() -> Any:
    """The RunConfig the YAML composes with no override: the one place a default lives
    (the dataclasses in medalign.config declare types and choices, never values)."""
    from medalign.config import validate

    return validate(compose([]))


def check_choices(overrides: list[str]) -> None:
    """Before Hydra, two mistakes Hydra would answer with a multi-line error: a config
    group option that does not exist (`dataset=quizbnak`: one line, the closest name and
    the options, never the `_` bases), and `datasets.<name>.<key>=...` for a dataset the
    default config does not list (its entry is added when the config names the dataset,
    so the override needs Hydra's `+`: the line says so, exactly)."""

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from medalign.errors import MedalignError, did_you_mean

    for folder in os.environ.get("MEDALIGN_CONFIG_PATH", "").split(os.pathsep):
        if folder.strip() and not Path(folder).expanduser().is_dir():
            raise MedalignError(f"MEDALIGN_CONFIG_PATH: {folder} is not a folder")
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # Hydra reports malformed overrides itself, with position.
        return
    use_hydra_plugins()
    with _hydra_context():
        loader = GlobalHydra.instance().config_loader()
        groups = set(loader.list_groups(""))
        listed = None
        for text, override in zip(overrides, parsed, strict=True):
            key = override.key_or_group
            if override.is_sweep_override() or override.is_delete() or override.package:
                continue
            if key in groups and isinstance(override.value(), str):
                options = [o for o in loader.get_group_options(key) if not o.startswith("_")]
                value = override.value()
                if value not in options and value != "null":
                    raise MedalignError(
                        f"{key}={value}: no such {key} config.{did_you_mean(value, options)} "
                        "The options: "
                        f"{', '.join(options)} (conf/{key}/, plugin packages, "
                        "$MEDALIGN_CONFIG_PATH)"
                    )
            if key == "dataset" and isinstance(override.value(), str):
                _check_own_name(override.value())
            parts = key.split(".")
            if "task_args" in parts[:-1] and not override.is_add():
                _check_task_arg(text, parts, overrides)
            if not override.is_add() and (where := _open_map(parts)) is not None:
                _check_map_keys(text, parts, where, override.value(), overrides)
            if parts[0] == "datasets" and len(parts) > 2 and not override.is_add():
                if listed is None:
                    from hydra import compose as hydra_compose

                    listed = set(hydra_compose(config_name="config").datasets)
                if parts[1] not in listed and parts[1] in dataset_names():
                    raise MedalignError(
                        f"{text}: datasets.{parts[1]} is added to the catalogue when the "
                        f"config names it, so set its keys with a +: +{text}"
                    )


def _open_map(parts: list[str]) -> int | None:
    """How many of `parts` name an open mapping of the schema (reward.weights,
    curriculum.stages, dataset.mix ...: any key may be added to it), or None."""
    import dataclasses
    import types
    from typing import get_args, get_origin, get_type_hints

    from medalign.config import GROUP_SCHEMAS

    schema: Any = GROUP_SCHEMAS.get(parts[0])
    for depth, part in enumerate(parts[1:], start=2):
        if schema is None:
            return None
        hint = get_type_hints(schema).get(part)
        kinds = get_args(hint) if get_origin(hint) is types.UnionType else (hint,)
        if any(get_origin(k) is dict for k in kinds):
            return depth
        schema = hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None
    return None


def _check_map_keys(
    text: str, parts: list[str], depth: int, value: Any, overrides: list[str]
) -> None:
    """A key the mapping does not have, set without Hydra's `+`: one line saying so
    (Hydra would print its struct error), where a `+` is what the docs ask for."""
    from hydra import compose as hydra_compose
    from omegaconf import DictConfig, OmegaConf

    from medalign.errors import MedalignError

    where = ".".join(parts[:depth])
    others = [o for o in overrides if o != text]
    try:
        node = OmegaConf.select(hydra_compose(config_name="config", overrides=others), where)
    except Exception:  # noqa: BLE001 - another override is wrong: Hydra says which
        return
    if not isinstance(node, DictConfig):
        return
    if len(parts) > depth:
        new = [parts[depth]] if parts[depth] not in node else []
    else:
        new = [k for k in value if k not in node] if isinstance(value, dict) else []
    if new:
        raise MedalignError(
            f"{text}: {where} has no key {new[0]!r} yet, and a new key needs Hydra's +: +{text}"
        )


def _check_own_name(choice: str) -> None:
    """`dataset=<file>`: the YAML's `name:` is its file's name, as for the catalogue."""
    from hydra import compose as hydra_compose

    from medalign.errors import MedalignError

    if choice == "null":
        return
    try:
        name = hydra_compose(config_name="config", overrides=[f"dataset={choice}"]).dataset.name
    except Exception:  # noqa: BLE001 - Hydra reports a broken YAML itself, with its file
        return
    if name != choice:
        raise MedalignError(misnamed(f"dataset={choice}", name, choice))


def misnamed(where: str, name: str, stem: str) -> str:
    """The line for a dataset YAML whose `name:` is not its file's (the catalogue's rule)."""
    return (
        f"{where}: its YAML says name: {name}; a dataset's name is its file's name "
        f"(dataset/{stem}.yaml): set name: {stem}"
    )


def _check_task_arg(text: str, parts: list[str], overrides: list[str]) -> None:
    """`dataset.task_args.<key>=...` for a key the dataset's YAML does not declare: one
    line with the closest declared key (Hydra would print its struct error), or the `+`
    that adds a key a Task of your own reads."""
    from hydra import compose as hydra_compose
    from omegaconf import OmegaConf

    from medalign.errors import MedalignError, did_you_mean

    where = ".".join(parts[: parts.index("task_args") + 1])
    others = [o for o in overrides if o != text and "task_args" not in o]
    try:
        node = OmegaConf.select(hydra_compose(config_name="config", overrides=others), where)
    except Exception:  # noqa: BLE001 - another override is wrong: Hydra says which
        return
    if node is None or parts[-1] in node or len(parts) != where.count(".") + 2:
        return
    declared = [str(k) for k in node]
    raise MedalignError(
        f"{text}: {where} has no key {parts[-1]!r}.{did_you_mean(parts[-1], declared)} "
        f"Its keys: {', '.join(declared) or 'none'}; a key your own Task reads takes a +: +{text}"
    )


def _hydra_context() -> Any:
    """Hydra initialized on medalign's config tree (or the one already initialized)."""
    import contextlib

    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return contextlib.nullcontext()
    return initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3")
