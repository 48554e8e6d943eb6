"""No code compares a stage kind to a literal kind name outside that kind's own module:
what a kind does is read from its StageSpec's roles (medalign/stages/spec.py), so a kind
from a plugin is treated like a built-in one (issue #34). The checker walks every
comparison in medalign/ whose one side is a kind's name (a string, or a tuple/list/set
of them) and whose other side reads a stage kind (`x.kind`, a name `kind` / `*_kind`,
`stage_kind(...)`, `OmegaConf.select(cfg, "stage.kind")`) or the curriculum's order
(`x.order`). A manifest's own `kind` field ("stage" | "curriculum", read with
`.get("kind")`) is another thing and is not a stage kind."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "medalign"

# (file under medalign/, kind) -> why it may name the kind. Only shrinks.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def kinds() -> set[str]:
    from medalign.registry import names

    return set(names("stage"))


def own_module(kind: str) -> str:
    """The module that registers `kind`'s StageSpec (its `SPEC`), relative to medalign/."""
    import sys

    from medalign.stages.spec import stage_spec

    spec = stage_spec(kind)
    for name, module in list(sys.modules.items()):
        if name.startswith("medalign") and getattr(module, "SPEC", None) is spec:
            return str(Path(module.__file__).relative_to(PACKAGE))
    raise AssertionError(f"no medalign module holds SPEC for {kind}")


def _names_kind(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in ("kind", "order"):
        return True
    if isinstance(node, ast.Name) and (node.id in ("kind", "order") or node.id.endswith("_kind")):
        return True
    if isinstance(node, ast.Call):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called == "stage_kind":
            return True
        texts = [a.value for a in node.args if isinstance(a, ast.Constant)]
        return called == "select" and "stage.kind" in texts
    return False


def _literals(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [v for elt in node.elts for v in _literals(elt)]
    return []


def comparisons(source: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, kind) for every comparison of a stage kind (or the order) to a kind name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if not any(_names_kind(side) for side in sides):
            continue
        for side in sides:
            found += [(node.lineno, v) for v in _literals(side) if v in known]
    return found


def test_the_checker_sees_each_form() -> None:
    source = (
        "if cfg.stage.kind == 'rl': pass\n"
        "if kind in ('sft', 'curriculum'): pass\n"
        "if 'rl' in cfg.curriculum.order: pass\n"
        "if stage_kind(name) != 'sft': pass\n"
        "if OmegaConf.select(cfg, 'stage.kind') == 'sft': pass\n"
        "if manifest.get('kind') == 'curriculum': pass\n"  # a manifest's kind: not flagged
        "if mode == 'rl': pass\n"  # not a kind
    )
    assert comparisons(source, {"rl", "sft", "curriculum"}) == [
        (1, "rl"),
        (2, "sft"),
        (2, "curriculum"),
        (3, "rl"),
        (4, "sft"),
        (5, "sft"),
    ]


def test_no_kind_name_is_compared_outside_its_own_module() -> None:
    known = kinds()
    assert {"sft", "eval", "rl", "reward", "curriculum"} <= known
    own = {kind: own_module(kind) for kind in known}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        for line, kind in comparisons(path.read_text(), known):
            if rel in (own[kind], "stages/spec.py") or (rel, kind) in EXCEPTIONS:
                continue
            found.append(f"medalign/{rel}:{line}: compares a stage kind to {kind!r}")
    assert not found, "read the kind's StageSpec roles instead:\n" + "\n".join(found)


def test_every_exception_is_still_needed() -> None:
    known = kinds()
    present = {
        (str(path.relative_to(PACKAGE)), kind)
        for path in PACKAGE.rglob("*.py")
        for _, kind in comparisons(path.read_text(), known)
    }
    stale = [pair for pair in EXCEPTIONS if pair not in present]
    assert not stale, f"exceptions the code no longer needs (remove them): {stale}"
