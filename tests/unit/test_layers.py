"""Every import in medalign/ goes down the layers of medalign/layers.py (LAYERS): to the
importer's own unit or to a unit on a lower line, at module level and inside functions
alike. The only imports allowed up (or sideways, to a sibling) are listed in EXCEPTIONS,
each with its reason; an exception the code no longer needs fails too, so the list only
shrinks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from medalign.layers import LAYERS, layer

PACKAGE = Path(__file__).resolve().parents[2] / "medalign"

# (importing module, imported module) -> why this import may break the order. Empty since
# issue 23: data/, eval/ and rewards/ reach Tasks through the registry, and the helpers
# that pointed up moved down (eval/cells.py, eval/refusal.py, models/inference.py
# reward_model_fn, models/init_from.py sft_base) or up (stages/eval.py evaluate_saved).
# Prefer moving code to adding a line here.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """medalign.data.loading -> data; medalign.config -> config."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[str, int, bool]]:
    """(imported medalign module, line, at module level) for every import in `source`,
    whether at the top, under `if`/`try`, or inside a function or class (not at module
    level)."""
    tree = ast.parse(source)
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    nested = {
        id(inner)
        for scope in ast.walk(tree)
        if isinstance(scope, scopes)
        for inner in ast.walk(scope)
        if inner is not scope
    }
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            if base == "medalign":  # from medalign import eval: the unit is the name
                targets = [f"medalign.{a.name}" for a in node.names if _is_unit(a.name)]
            elif base:
                targets = [base]
        for target in targets:
            if target == "medalign" or target.startswith("medalign."):
                found.append((target, node.lineno, id(node) not in nested))
    return sorted(found, key=lambda f: f[1])


def _is_unit(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        here = unit(module)
        for target, line, at_top in imports(path.read_text(), module, path.name == "__init__.py"):
            there = unit(target)
            if not there or there == here or layer(there) < layer(here):
                continue
            if (module, target) in EXCEPTIONS:
                continue
            where = "module level" if at_top else "in a function"
            out.append(
                f"{path.relative_to(PACKAGE.parent)}:{line}: {module} ({here}, layer "
                f"{layer(here)}) imports {target} ({there}, layer {layer(there)}), {where}"
            )
    return out


def test_every_unit_has_exactly_one_layer() -> None:
    units = {unit(module_name(p)) for p in PACKAGE.rglob("*.py")} - {""}
    listed = [u for line in LAYERS for u in line]
    assert len(listed) == len(set(listed)), "a unit is on two lines of LAYERS"
    assert units == set(listed), (
        f"without a layer: {sorted(units - set(listed))}; "
        f"in LAYERS but gone: {sorted(set(listed) - units)}"
    )


def test_imports_go_down_the_layers() -> None:
    found = violations()
    assert not found, "imports against medalign/layers.py:\n" + "\n".join(found)


def test_every_exception_is_still_needed() -> None:
    present = set()
    for path in PACKAGE.rglob("*.py"):
        module = module_name(path)
        for target, _, _ in imports(path.read_text(), module, path.name == "__init__.py"):
            present.add((module, target))
    stale = [pair for pair in EXCEPTIONS if pair not in present]
    assert not stale, f"exceptions the code no longer needs (remove them): {stale}"


def test_the_checker_sees_every_kind_of_import() -> None:
    source = (
        "from medalign.config import RunConfig\n"
        "try:\n    import medalign.tasks.base\nexcept ImportError:\n    pass\n"
        "def f():\n    from medalign.stages.sft import run_sft\n"
        "class C:\n    def g(self):\n        from . import metrics\n"
        "        from .. import registry\n"
    )
    assert imports(source, "medalign.eval.x") == [
        ("medalign.config", 1, True),
        ("medalign.tasks.base", 3, True),
        ("medalign.stages.sft", 7, False),
        ("medalign.eval", 10, False),
        ("medalign.registry", 11, False),
    ]


def test_an_unknown_unit_is_named() -> None:
    with pytest.raises(KeyError, match="medalign.nowhere has no layer"):
        layer("nowhere")


# Lookups that reach through the registry: registry.get/names with a constant kind, and
# the helpers that wrap one lookup kind.
WRAPPERS = {
    "stage_spec": "stage",
    "specs": "stage",
    "the_one": "stage",
    "curriculum_spec": "stage",
    "get_task": "task",
}


def lookups(source: str) -> set[str]:
    """The registry kinds `source` looks up by name (get/names with a constant kind, or a
    wrapper of one kind), wherever in the module."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else ""
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            called = func.attr if func.value.id == "registry" else ""
        if called in ("get", "names") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
        elif called in WRAPPERS:
            found.add(WRAPPERS[called])
    return found


def reaches() -> dict[tuple[str, str], list[str]]:
    """(unit, kind) -> the modules of that unit whose lookups of `kind` reach a unit on a
    line above (or beside) it: one that registers that kind (registry._PROVIDERS)."""
    from medalign.registry import _PROVIDERS

    out: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        here = unit(module)
        if here in ("", "registry"):
            continue
        for kind in lookups(path.read_text()):
            providers = {unit(p.removesuffix(".*")) for p in _PROVIDERS.get(kind, ())}
            if any(p != here and layer(p) >= layer(here) for p in providers):
                out.setdefault((here, kind), []).append(module)
    return out


def test_every_reach_through_the_registry_is_declared() -> None:
    from medalign.layers import REACHES

    found = reaches()
    undeclared = {k: v for k, v in found.items() if k not in REACHES}
    assert not undeclared, (
        "lookups that reach up the layers through the registry, not in medalign/layers.py "
        f"REACHES (pass the value down, or add the line with its reason): {undeclared}"
    )
    stale = [k for k in REACHES if k not in found]
    assert not stale, f"REACHES lines no lookup needs (remove them): {stale}"


def test_the_reach_checker_sees_lookups_and_wrappers() -> None:
    source = (
        "from medalign.registry import get\n"
        "def f():\n    return get('task', 'medqa'), names('stage')\n"
        "x = registry.get('reward_fn', 'a'); y = stage_spec('sft'); z = {}.get('task')\n"
    )
    assert lookups(source) == {"task", "stage", "reward_fn"}


def test_the_docs_show_the_order_layers_py_enforces() -> None:
    """docs/concepts.md and docs/architecture.md give LAYERS' order, bottom to top."""
    order = " -> ".join(", ".join(f"`{u}`" for u in line) for line in LAYERS)
    docs = PACKAGE.parent / "docs"
    for page in ("concepts.md", "architecture.md"):
        text = " ".join((docs / page).read_text().split())
        assert order + "." in text, f"docs/{page} does not show medalign/layers.py's order"
