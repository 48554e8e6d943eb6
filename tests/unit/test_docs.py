"""The documentation says what the code does (issue 23).

- docs/reference/config.md is what docs/gen_config_reference.py generates from the YAML;
- every `python -m medalign ...` command in a fenced `bash` block of README.md or docs/
  composes and validates, and passes the start-up checks, as the CLI would before
  loading anything;
- a block after `<!-- runnable -->` runs, each command with `debug=fast` added, in an
  empty temporary directory, offline (`<!-- runnable: slow -->`: under `make test-slow`).

A failure names the page and the line of the block.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medalign.checks import check_components
from medalign.config import check_overrides, validate
from tests.conftest import REPO, compose

DOCS = REPO / "docs"
MARKER = re.compile(r"^<!-- runnable(?:: (?P<kind>slow))? -->$")
PLACEHOLDER = re.compile(r"<[^<>\n]+>")  # <date>, <sft run>: the reader fills them in
PYTHONS = re.compile(r"^(\.venv/bin/)?python3?$")
# Hydra's own flags, with the number of values each takes; any other flag fails the test.
HYDRA_FLAGS = {"-m": 0, "--multirun": 0, "--cfg": 1, "-c": 1, "--help": 0, "-h": 0}
MEDALIGN_FLAGS = {"--verbose": 0}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    info: str
    text: str
    runnable: str | None  # None | "default" | "slow"

    @property
    def where(self) -> str:
        page = self.page.relative_to(REPO) if self.page.is_relative_to(REPO) else self.page
        return f"{page}:{self.line}"


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def blocks(page: Path, text: str | None = None) -> list[Block]:
    """The fenced blocks of a Markdown page, each with the runnable marker before it."""
    lines = (page.read_text(encoding="utf-8") if text is None else text).splitlines()
    out, i = [], 0
    while i < len(lines):
        marker = MARKER.match(lines[i].strip())
        if marker:
            fence = lines[i + 1] if i + 1 < len(lines) else ""
            if fence.strip() != "```bash":
                raise ValueError(f"{page}:{i + 1}: a runnable marker must precede a ```bash block")
        if lines[i].startswith("```"):
            info, start = lines[i][3:].strip(), i
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            previous = MARKER.match(lines[i - 1].strip()) if i else None
            kind = (previous.group("kind") or "default") if previous else None
            out.append(Block(page, start + 1, info, "\n".join(lines[i + 1 : end]), kind))
            i = end
        i += 1
    return out


def bash_blocks() -> list[Block]:
    return [b for page in pages() for b in blocks(page) if b.info == "bash"]


def commands(block: Block) -> list[list[str]]:
    """The block's commands as argv lists: `\\` continuations joined, comments dropped,
    each `<placeholder>` made one shell word."""
    text = re.sub(r"\\\n", " ", block.text)
    out = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        line = PLACEHOLDER.sub(lambda m: "PLACEHOLDER" + re.sub(r"\W", "_", m.group(0)), line)
        argv = shlex.split(line, comments=True)
        if argv:
            out.append(argv)
    return out


ENV_WORD = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def env_prefix(argv: list[str]) -> dict[str, str]:
    """The `NAME=value` words before the program (`MEDALIGN_CONFIG_PATH=... python ...`)."""
    out = {}
    for word in argv:
        if not ENV_WORD.match(word):
            break
        name, _, value = word.partition("=")
        out[name] = value
    return out


def medalign_args(argv: list[str]) -> list[str] | None:
    """The arguments of `python -m medalign ...` (also after `accelerate launch ... -m`,
    or after `NAME=value` words), or None for any other command."""
    argv = argv[len(env_prefix(argv)) :]
    for i in range(len(argv) - 1):
        if argv[i] == "-m" and argv[i + 1] == "medalign":
            program = Path(argv[0]).name
            if PYTHONS.match(argv[0]) or program == "accelerate":
                return argv[i + 2 :]
    return None


def overrides_of(args: list[str], where: str) -> tuple[list[str], bool]:
    """(the overrides, whether it is a multirun), Hydra's and medalign's flags removed."""
    out, multirun, i = [], False, 0
    flags = {**HYDRA_FLAGS, **MEDALIGN_FLAGS}
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            assert arg in flags, f"{where}: unknown flag {arg} (add it to HYDRA_FLAGS?)"
            multirun |= arg in ("-m", "--multirun")
            i += 1 + flags[arg]
            continue
        out.append(arg)
        i += 1
    return out, multirun


def sweep_variants(overrides: list[str]) -> list[list[str]]:
    """A multirun's comma lists composed one value at a time (every other key at its
    first value), so each value is checked without the whole cartesian product."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    first = list(overrides)
    sweeps = []
    for n, override in enumerate(parsed):
        if override.is_sweep_override():
            head = overrides[n].split("=", 1)[0]
            values = [f"{head}={v}" for v in override.sweep_string_iterator()]
            first[n] = values[0]
            sweeps += [(n, v) for v in values[1:]]
    return [first, *([*first[:n], v, *first[n + 1 :]] for n, v in sweeps)]


def check_command(args: list[str], where: str) -> None:
    """What the CLI checks before anything loads: medalign's typo and moved-key check,
    Hydra's composition, the dataclass validation, and the start-up checks (names in the
    registry, ranges, combinations) where the command names no placeholder path."""
    overrides, multirun = overrides_of(args, where)
    concrete = not any("PLACEHOLDER" in o for o in overrides)
    if "eval.backend=lm_eval" in overrides and importlib.util.find_spec("lm_eval") is None:
        concrete = False  # its block installs the lm_eval extra first; `make test` has none
    for variant in sweep_variants(overrides) if multirun else [overrides]:
        check_overrides(variant)
        typed = validate(compose(*variant))
        if concrete:
            check_components(typed)


def _documented_commands() -> list[Any]:
    """Each medalign command of the docs, once: the same arguments and environment
    written in several places compose the same config (the first place names it)."""
    seen: set[tuple] = set()
    out = []
    for block in bash_blocks():
        for n, argv in enumerate(commands(block)):
            args = medalign_args(argv)
            key = (tuple(args or ()), tuple(sorted(env_prefix(argv).items())))
            if args is None or key in seen:
                continue
            seen.add(key)
            out.append(pytest.param(block, argv, id=f"{block.where}:{n}"))
    return out


COMMANDS = _documented_commands()


@pytest.mark.parametrize(("block", "argv"), COMMANDS)
def test_every_documented_command_composes_and_validates(
    block: Block, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # an env prefix's relative paths are the repo's
    for name, value in env_prefix(argv).items():
        monkeypatch.setenv(name, value)
    check_command(medalign_args(argv) or [], block.where)


def test_the_docs_hold_commands_to_check() -> None:
    assert len(COMMANDS) >= 80  # a parser that found none would pass everything
    runnable = [b for b in bash_blocks() if b.runnable]
    assert {b.runnable for b in runnable} == {"default", "slow"}


# -- runnable blocks ---------------------------------------------------------------------
def runnable_argv(argv: list[str]) -> list[str]:
    """The command as the test runs it: this environment's python and tools, and
    `debug=fast` added to a medalign command that does not choose a debug config (as its
    first override: Hydra takes no override after a flag such as `--cfg job`)."""
    program = argv[0]
    if PYTHONS.match(program):
        program = sys.executable
    elif program.startswith(".venv/bin/"):
        program = str(Path(sys.executable).parent / program.removeprefix(".venv/bin/"))
    out = [program, *argv[1:]]
    args = medalign_args(argv)
    if args is not None and not any(a.startswith("debug=") for a in args):
        at = len(out) - len(args)
        out[at:at] = ["debug=fast"]
    return out


def run_block(block: Block, cwd: Path, timeout: int = 600) -> None:
    """Run each command of a runnable block in `cwd`, in order; fail on the first that
    does not exit 0, with its output."""
    assert not PLACEHOLDER.search(block.text), f"{block.where}: a runnable block has a placeholder"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env |= {"WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    # A cache of its own (a block may clear it), sharing the session's built models.
    shared = Path(os.environ.get("MEDALIGN_CACHE") or cwd / ".shared-cache") / "models"
    shared.mkdir(parents=True, exist_ok=True)
    (cwd / ".cache").mkdir()
    (cwd / ".cache" / "models").symlink_to(shared, target_is_directory=True)
    env["MEDALIGN_CACHE"] = str(cwd / ".cache")
    for argv in commands(block):
        assert argv[0] != "make", f"{block.where}: `make` in a runnable block"
        assert not env_prefix(argv), f"{block.where}: an env prefix in a runnable block"
        done = subprocess.run(
            runnable_argv(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
        output = (done.stdout + done.stderr)[-3000:]
        assert done.returncode == 0, (
            f"{block.where}: {shlex.join(argv)} exited {done.returncode}\n{output}"
        )


RUNNABLE = [b for b in bash_blocks() if b.runnable]


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.where) for b in RUNNABLE if b.runnable == "default"]
)
def test_runnable_block_runs(block: Block, tmp_path: Path) -> None:
    run_block(block, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.where) for b in RUNNABLE if b.runnable == "slow"]
)
def test_slow_runnable_block_runs(block: Block, tmp_path: Path) -> None:
    run_block(block, tmp_path, timeout=1200)


# -- the checks can fail -----------------------------------------------------------------
PAGE = """Text.

<!-- runnable -->
```bash
.venv/bin/python -m medalign lora.rr=16   # a typo
```
"""


def test_a_broken_runnable_command_fails_its_test(tmp_path: Path) -> None:
    (block,) = blocks(tmp_path / "page.md", PAGE)
    assert block.runnable == "default"
    assert runnable_argv(commands(block)[0])[1:] == ["-m", "medalign", "debug=fast", "lora.rr=16"]
    with pytest.raises(AssertionError, match=r"lora.rr=16 exited [12]\b"):
        run_block(block, tmp_path)


def test_a_stale_key_fails_the_composition_check() -> None:
    from medalign.errors import MedalignError

    with pytest.raises(MedalignError, match="unknown key 'max_stpes'"):
        check_command(["stage=medqa", "trainer.max_stpes=5"], "page.md:1")
    with pytest.raises(MedalignError, match="this key moved"):
        check_command(["stage=medqa", "stage.max_steps=5"], "page.md:1")
    with pytest.raises(Exception, match="lora.r"):  # the second value of a sweep is checked
        check_command(["-m", "lora.r=8,sixteen"], "page.md:1")
    with pytest.raises(MedalignError, match="eval_steps"):  # a start-up check
        check_command(["stage=medqa", "trainer.eval_steps=10", "trainer.max_steps=5"], "p:1")


def test_a_marker_must_precede_a_bash_block(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must precede a ```bash block"):
        blocks(tmp_path / "page.md", "<!-- runnable -->\n```yaml\na: 1\n```\n")
    slow = blocks(tmp_path / "page.md", "<!-- runnable: slow -->\n```bash\nls\n```\n")
    assert [b.runnable for b in slow] == ["slow"]


def test_placeholders_make_one_word_and_continuations_join(tmp_path: Path) -> None:
    text = "```bash\npython -m medalign stage=rl init_from=<sft run> \\\n    rl.beta=0  # note\n```"
    (block,) = blocks(tmp_path / "page.md", text)
    assert commands(block) == [
        ["python", "-m", "medalign", "stage=rl", "init_from=PLACEHOLDER_sft_run_", "rl.beta=0"]
    ]


# -- the generated config reference ------------------------------------------------------
def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", DOCS / "gen_config_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_config_reference_is_generated_from_the_yaml() -> None:
    generated = _generator().render()
    checked_in = (DOCS / "reference" / "config.md").read_text(encoding="utf-8")
    assert checked_in == generated, "run: python docs/gen_config_reference.py"


def test_the_config_reference_shows_every_option_key_and_comment() -> None:
    text = _generator().render()
    for path in (REPO / "medalign" / "conf").rglob("*.yaml"):
        group = path.parent.relative_to(REPO / "medalign" / "conf")
        if str(group) != ".":
            assert f"### `{group}/{path.stem}`" in text
    assert "| `lora.r` | `8` |" in text
    assert "| `trainer.validation_split` | `auto` | auto: the dataset's own dev split" in text
    assert "| `hydra.launcher.partition` | `null` | your cluster's GPU partition |" in text


def test_the_generator_refuses_a_key_it_cannot_place(tmp_path: Path, monkeypatch) -> None:
    gen = _generator()
    conf = tmp_path / "conf"
    (conf / "lora").mkdir(parents=True)
    (conf / "config.yaml").write_text("defaults:\n  - lora: default\n")
    # a key OmegaConf reads that a line parser could miss: a flow mapping inside a list
    (conf / "lora" / "default.yaml").write_text("r: 8   # rank\nalpha: 16\n")
    monkeypatch.setattr(gen, "CONF", conf)
    assert "| `lora.r` | `8` | rank |" in gen.render()
    (conf / "lora" / "default.yaml").write_text("r: 8\nextra:\n- {a: 1}\n")
    with pytest.raises(ValueError, match="cannot read"):
        gen.render()


def test_the_concepts_tree_names_every_option_of_every_group() -> None:
    """docs/concepts.md's config tree lists each selectable option (a new-user trial found
    4 of 14 models and 2 of 4 LoRA options there)."""
    text = (REPO / "docs" / "concepts.md").read_text()
    tree = text[text.index("## The config tree") :].split("```")[1]
    conf = REPO / "medalign" / "conf"
    missing = [
        f"{group}/{path.stem}"
        for group in ("model", "quant", "lora", "dataset", "trainer", "stage", "reward", "rl")
        for path in sorted((conf / group).glob("*.yaml"))
        if not path.stem.startswith("_") and not re.search(rf"\b{re.escape(path.stem)}\b", tree)
    ]
    assert missing == []
