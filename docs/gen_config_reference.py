"""Write docs/reference/config.md from the config tree: every group, option and key, with
the comments the YAML files carry.

    python docs/gen_config_reference.py            # rewrite docs/reference/config.md
    python docs/gen_config_reference.py --check    # exit 1 if the checked-in page is stale

The YAML files are the declaration (their comments are the documentation), so the page is
generated from them, never edited by hand. A small line parser keeps the comments that a
YAML loader drops; every key it finds is checked against what OmegaConf loads from the same
file, so a layout it misreads fails here instead of leaving a key out of the page.
Needs only omegaconf (installed with medalign).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

DOCS = Path(__file__).resolve().parent
CONF = DOCS.parent / "medalign" / "conf"
OUT = DOCS / "reference" / "config.md"

KEY = re.compile(
    r"""^(?P<indent> *)(?P<key>"[^"]+"|'[^']+'|[^\s#:'"-][^:#]*?)\s*:(?:\s+|$)(?P<rest>.*)$"""
)
ITEM = re.compile(r"^(?P<indent> *)- (?P<rest>.*)$")


@dataclass
class Row:
    path: tuple[str, ...]
    value: str  # as written in the file ("" for a mapping; "|" text in `text`)
    comment: list[str] = field(default_factory=list)
    text: str | None = None  # a block scalar's text


@dataclass
class ConfigFile:
    rel: str  # path under conf/, e.g. model/tiny.yaml
    header: list[str]  # the leading comment block, '#' stripped
    package: str | None  # `# @package <x>`
    defaults: list[tuple[str, str]]  # (entry, its comment)
    rows: list[Row]


def split_comment(text: str) -> tuple[str, str]:
    """`value  # comment` -> (value, comment), a '#' inside quotes left alone."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def parse(path: Path) -> ConfigFile:
    lines = path.read_text(encoding="utf-8").splitlines()
    header: list[str] = []
    package = None
    i = 0
    while i < len(lines) and lines[i].lstrip().startswith("#"):
        body = lines[i].lstrip()[1:]
        body = body[1:] if body.startswith(" ") else body
        if body.startswith("@package"):
            package = body.split(None, 1)[1].strip()
        else:
            header.append(body.rstrip())
        i += 1
    defaults: list[tuple[str, str]] = []
    rows: list[Row] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    pending: list[str] = []  # comment lines before the next key
    last: Row | None = None
    last_col: int | None = None  # the column of `last`'s inline comment
    in_defaults = False
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        indent = len(line) - len(line.lstrip(" "))
        if stripped.startswith("#"):
            body = stripped[1:].strip()
            # Indented to where the previous key's own comment starts: it continues it.
            if last is not None and last_col is not None and not pending and indent >= last_col:
                last.comment.append(body)
            else:
                pending.append(body)
            continue
        item = ITEM.match(line)
        if item and not in_defaults:
            raise ValueError(f"{path}: line {i}: cannot read {line!r} (a block list)")
        if item:
            value, comment = split_comment(item.group("rest"))
            defaults.append((value, " ".join([*pending, *([comment] if comment else [])])))
            pending = []
            continue
        match = KEY.match(line)
        if not match:
            raise ValueError(f"{path}: line {i}: cannot read {line!r}")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = match.group("key").strip().strip("\"'")
        value, comment = split_comment(match.group("rest"))
        if not stack and key == "defaults" and not value:
            in_defaults, pending, last, last_col = True, [], None, None
            continue
        in_defaults = False
        row = Row((*[k for _, k in stack], key), value, [*pending, *([comment] if comment else [])])
        pending = []
        if value in ("|", ">", "|-", ">-"):
            block = []
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
                block.append(lines[i])
                i += 1
            width = min((_indent(b) for b in block if b.strip()), default=0)
            row.text = "\n".join(b[width:] for b in block).rstrip()
        rows.append(row)
        last, last_col = row, (line.rfind("# " + comment) if comment else None)
        if not value:
            stack.append((indent, key))
    return ConfigFile(str(path.relative_to(CONF)), header, package, defaults, rows)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def check(config: ConfigFile) -> None:
    """Every key the parser found exists in the file as OmegaConf loads it, and every key
    OmegaConf loads was found (itself, or inside a value the page shows whole)."""
    loaded = OmegaConf.to_container(OmegaConf.load(CONF / config.rel))
    assert isinstance(loaded, dict)
    if len(loaded.get("defaults") or []) != len(config.defaults):
        raise ValueError(f"{config.rel}: read {len(config.defaults)} defaults entries")
    found = {row.path for row in config.rows}
    for row in config.rows:
        node = loaded
        for key in row.path:
            if not isinstance(node, dict) or key not in node:
                raise ValueError(f"{config.rel}: parsed a key {'.'.join(row.path)} not in the file")
            node = node[key]
    for path in _leaves(loaded):
        if path[0] == "defaults":
            continue
        if not any(path[:n] in found for n in range(1, len(path) + 1)):
            raise ValueError(f"{config.rel}: key {'.'.join(path)} missing from the page")


def _leaves(node: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict) and node:
        return [p for k, v in node.items() for p in _leaves(v, (*prefix, str(k)))]
    return [prefix]


# -- rendering --------------------------------------------------------------------------
def prose(text: str) -> str:
    """Comment text for a Markdown table cell: code spans kept, the rest escaped."""
    out = []
    for n, part in enumerate(text.split("`")):
        if n % 2:
            out.append(f"`{part.replace('|', '&#124;')}`")
        else:
            part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            for ch in "\\*_[]|":
                part = part.replace(ch, "\\" + ch)
            out.append(part)
    if text.count("`") % 2:  # an unpaired backtick: no code span at all
        return prose(text.replace("`", "'"))
    return "".join(out)


def code(value: str) -> str:
    if not value:
        return ""
    value = value.replace("|", "&#124;")
    ticks = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def text_block(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return ["```text", *lines, "```", ""] if lines else []


def prefix(config: ConfigFile) -> str:
    """What a key of this file is called on the command line: `lora.r`, `hydra.run.dir`;
    a `# @package _global_` file's keys are already paths from the root."""
    group = str(Path(config.rel).parent)
    package = config.package or ("" if group == "." else group.replace("/", "."))
    return "" if package == "_global_" else package + "." if package else ""


def render_file(config: ConfigFile, heading: str) -> list[str]:
    out = [heading, "", f"File: `medalign/conf/{config.rel}`", ""]
    out += text_block(config.header)
    if config.package:
        out += [f"`# @package {config.package}`: its keys are the paths below.", ""]
    if config.defaults:
        out += ["Defaults list:", ""]
        out += [f"- {code(d)}" + (f": {prose(c)}" if c else "") for d, c in config.defaults]
        out += [""]
    rows = [r for r in config.rows if r.value or r.comment]
    if rows:
        out += ["| key | value | comment |", "|---|---|---|"]
        for row in rows:
            value = "(text below)" if row.text is not None else code(row.value)
            key = prefix(config) + ".".join(row.path)
            out.append(f"| `{key}` | {value} | {prose(' '.join(row.comment))} |")
        out.append("")
    for row in config.rows:
        if row.text is not None:
            key = prefix(config) + ".".join(row.path)
            out += [f"`{key}`:", "", *text_block(row.text.splitlines())]
    return out


def groups() -> list[str]:
    """Every config group (a folder of YAML options), in the root defaults list's order,
    then any others (hydra/launcher, hydra/sweeper)."""
    found = sorted(
        str(d.relative_to(CONF)) for d in CONF.rglob("*") if d.is_dir() and any(d.glob("*.yaml"))
    )
    order = [_group_of(entry) for entry, _ in parse(CONF / "config.yaml").defaults]
    first = [g for g in dict.fromkeys(order) if g in found]
    return first + [g for g in found if g not in first]


def _group_of(entry: str) -> str:
    entry = entry.removeprefix("optional ")
    return entry.split(":")[0].split("@")[0].strip()


def root_choices() -> dict[str, str]:
    """group -> the option the root defaults list selects."""
    out = {}
    for entry, _ in parse(CONF / "config.yaml").defaults:
        if ":" in entry and "@" not in entry:
            group, option = (s.strip() for s in entry.removeprefix("optional ").split(":", 1))
            out[group] = option
    return out


def render() -> str:
    root = parse(CONF / "config.yaml")
    check(root)
    chosen = root_choices()
    out = [
        "# Config reference",
        "",
        "<!-- Generated by docs/gen_config_reference.py from medalign/conf/: do not edit."
        " `make docs` fails when this page and the YAML disagree. -->",
        "",
        "Every group, option and key of medalign's config tree, with the comments its YAML",
        "files carry (generated from `medalign/conf/`; `conf/` is a link to it). Pick an option",
        "with `group=option`, change a key with `group.key=value`; every key is declared, so no",
        "`+key` is needed. `python -m medalign --cfg job` prints the composed result. How the",
        "tree fits together: [Concepts](../concepts.md#the-config-tree).",
        "",
        "Groups:",
        "",
    ]
    names = groups()
    out += [f"- [`{g}`](#{_anchor(g)})" for g in names]
    out += [""]
    out += render_file(root, "## The root: `config.yaml`")
    for group in names:
        folder = CONF / group
        files = sorted(folder.glob("*.yaml"))
        options = [f.stem for f in files if not f.stem.startswith("_")]
        bases = [f.stem for f in files if f.stem.startswith("_")]
        out += [f"## `{group}` {{ #{_anchor(group)} }}", ""]
        default = chosen.get(group)
        pick = f"`{group}=<option>`"
        out += [
            f"Options ({pick}): "
            + ", ".join(f"`{o}`" for o in options)
            + (f". Default: `{default}`." if default and default != "null" else ".")
            + (
                f" Shared base, not an option: {', '.join(f'`{b}`' for b in bases)}."
                if bases
                else ""
            ),
            "",
        ]
        for f in files:
            config = parse(f)
            check(config)
            out += render_file(config, f"### `{group}/{f.stem}`")
    return "\n".join(out).rstrip() + "\n"


def _anchor(group: str) -> str:
    return "group-" + group.replace("/", "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the page is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run python docs/gen_config_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
