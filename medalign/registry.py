"""Short names for the components medalign owns, with a dotted-path escape hatch.

    @register("reward_fn", "brevity")
    def brevity(completions, **columns): ...

    get("reward_fn", "brevity")                   # the registered function
    get("reward_fn", "my_pkg.rewards:brevity")    # any importable object
    get("stage", "sft")                           # a StageSpec (medalign/stages/spec.py)

Modules that register are imported on the first lookup of their kind (see `_PROVIDERS`),
and so are installed plugin packages (entry-point group `medalign.plugins`: `load_plugins`),
so the registry itself never imports torch: config validation stays fast. This is also
how a lower layer reaches a higher one without importing it (medalign/layers.py): data/,
eval/ and rewards/ look Tasks up here by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from medalign.errors import MedalignError

T = TypeVar("T")

# kind -> modules whose import registers that kind's components; "pkg.*": every module
# in that package, so a new Task or stage is one file in medalign/tasks/ or
# medalign/stages/, listed nowhere else (plugins: `load_plugins`).
_PROVIDERS: dict[str, tuple[str, ...]] = {
    "stage": ("medalign.stages.*", "medalign.curriculum"),
    "task": ("medalign.tasks.*",),
    "rl_algorithm": ("medalign.stages.rl_algorithms",),
    "model_builder": (
        *("medalign.models.builders", "medalign.models.random_init", "medalign.world.model"),
    ),
    "chat_template": ("medalign.models.chat_templates",),
    "reward_fn": ("medalign.rewards.functions",),
    "config_resolver": ("medalign.world.store",),
}
_REGISTRY: dict[str, dict[str, Any]] = {}
_BASES: dict[str, tuple[type, bool]] = {}  # kind -> (its base class, instances of it?)


def register(kind: str, name: str) -> Callable[[T], T]:
    """Register the decorated object as `name` of `kind`; a duplicate name is a bug."""

    def decorate(obj: T) -> T:
        table = _REGISTRY.setdefault(kind, {})
        if name in table and table[name] is not obj:
            first, second = table[name].__module__, getattr(obj, "__module__", "?")
            raise MedalignError(
                f"{kind} {name!r} is registered twice, by {first} and by {second}: a plugin "
                "must give its components names of their own"
            )
        table[name] = obj
        return obj

    return decorate


def register_base(kind: str, base: type, instances: bool = False) -> None:
    """Every `kind` component is a subclass (a Task) or an instance (a StageSpec) of
    `base`: a dotted path to anything else is refused at lookup. Called by the module
    that defines the base (tasks/base.py, stages/spec.py)."""
    _BASES[kind] = (base, instances)


def names(kind: str) -> list[str]:
    """The registered names of `kind`, sorted."""
    _load_providers(kind)
    return sorted(_REGISTRY.get(kind, {}))


def get(kind: str, name: str) -> Any:
    """Look up `name` of `kind`; fall back to `module:attr` or `module.attr` import."""
    _load_providers(kind)
    table = _REGISTRY.get(kind, {})
    if name in table:
        found = table[name]
    elif "." in name or ":" in name:
        found = _import_dotted(kind, name)
    else:
        known = ", ".join(sorted(table)) or "(none)"
        raise MedalignError(
            f"unknown {kind} {name!r}. Registered {kind} names: {known}; "
            "or give an importable path like 'my_package.module:function'."
        )
    if kind in _BASES:
        base, instances = _BASES[kind]
        ok = (
            isinstance(found, base)
            if instances
            else (isinstance(found, type) and issubclass(found, base))
        )
        if not ok:
            what = "" if instances else " class"
            raise MedalignError(f"{kind} {name!r} is not a {base.__module__}.{base.__name__}{what}")
    return found


PLUGIN_GROUP = "medalign.plugins"  # entry points: modules that register components
_plugins_loaded = False


def _load_providers(kind: str) -> None:
    for module in _PROVIDERS.get(kind, ()):
        if module.endswith(".*"):
            _import_package(module[:-2])
        else:
            importlib.import_module(module)
    load_plugins()


def _import_package(name: str) -> None:
    """Import every module of package `name` (its registrations run on import)."""
    import pkgutil

    package = importlib.import_module(name)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{name}.{info.name}")


def load_plugins() -> None:
    """Import every installed plugin once: a package that declares

        [project.entry-points."medalign.plugins"]
        my_plugin = "my_plugin.components"

    has that module imported on the first lookup of any kind, and whatever it registers
    (Tasks, reward functions, RL algorithms, model builders) is found by name, exactly
    like medalign's own. Its config files join the tree through the `medalign.conf`
    entry point (medalign/_plugins/hydra_plugins/medalign_searchpath)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for point in entry_points(group=PLUGIN_GROUP):
        try:
            point.load()
        except Exception as exc:  # a broken plugin: one line naming it, not a traceback
            source = point.dist.name if point.dist is not None else "?"
            raise MedalignError(
                f"plugin {point.name!r} ({point.value}, from the package {source}) cannot be "
                f"imported: {type(exc).__name__}: {exc}"
            ) from exc


def _import_dotted(kind: str, path: str) -> Any:
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise MedalignError(f"cannot import {kind} {path!r}: {exc}") from exc
