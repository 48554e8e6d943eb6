"""Shared fixtures: offline, isolated environment; composed configs; a shared tiny model.

Every test runs with HF_HUB_OFFLINE=1, W&B disabled unless a test asks for offline,
and a temp HF_HOME. The tiny model cache is shared by the session (built once).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "medalign" / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _offline_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(tmp_path_factory.mktemp("hf_home"))
    os.environ["MEDALIGN_CACHE"] = str(tmp_path_factory.mktemp("medalign_cache"))
    os.environ["WANDB_MODE"] = "disabled"
    os.environ["WANDB_SILENT"] = "true"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def compose(*overrides: str):
    """Compose conf/config.yaml with `overrides`, as the CLI would (no model loaded)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from medalign.compose import complete_catalogue, register_resolvers, use_hydra_plugins

    use_hydra_plugins()
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return complete_catalogue(hydra_compose(config_name="config", overrides=list(overrides)))


def options(group: str) -> list[str]:
    """The selectable options of a config group (file names without .yaml; `_x` are bases)."""
    return sorted(p.stem for p in (CONF / group).glob("[!_]*.yaml"))


_CATALOGUE: dict = {}


def dataset_cfg(name: str, **changes: object):
    """The DatasetConfig of conf/dataset/<name>.yaml (the composed catalogue entry
    `datasets.<name>`) with `changes` applied."""
    import dataclasses

    from medalign.config import validate

    if not _CATALOGUE:
        _CATALOGUE.update(validate(compose()).datasets)
    return dataclasses.replace(_CATALOGUE[name], **changes)


_DEFAULTS: list = []


def default(schema: type, **changes: object):
    """A fresh `schema` (ModelConfig, TinyModelConfig, QuantConfig ...) holding what the
    default config composes for it, with `changes` applied: the dataclasses declare no
    values (medalign.config), the YAML is the one place a default lives."""
    import copy
    import dataclasses

    from medalign.config import validate

    if not _DEFAULTS:
        _DEFAULTS.append(validate(compose()))

    def find(node: object) -> object:
        if type(node) is schema:
            return node
        for f in dataclasses.fields(node) if dataclasses.is_dataclass(node) else ():
            found = find(getattr(node, f.name))
            if found is not None:
                return found
        return None

    found = find(_DEFAULTS[0])
    assert found is not None, f"the default config holds no {schema.__name__}"
    return dataclasses.replace(copy.deepcopy(found), **changes)


def task_for(name: str, **changes: object):
    """The Task of dataset `name` (its catalogue config with `changes`)."""
    from medalign.data.loading import get_task

    return get_task(dataset_cfg(name, **changes))


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data sample not present: {path} (../shared/data is optional)")
    return path


def with_dataset(dcfg, *overrides: str):
    """The validated RunConfig of `overrides` whose training dataset is `dcfg`."""
    import dataclasses

    from medalign.config import validate

    return dataclasses.replace(validate(compose(*overrides)), dataset=dcfg)


def loglik_pairs(name: str, records) -> list[tuple[str, list[str]]]:
    """(context, choices) of each record, from dataset `name`'s Task (lm-eval's items)."""
    task = task_for(name)
    return [(item.context, item.choices) for item in map(task.loglik_item, records)]


def start_cli(*args: str) -> subprocess.Popen[str]:
    """`python -m medalign ARGS` in its own session (so a test can kill its whole tree),
    stdout and stderr together."""
    return subprocess.Popen(
        [sys.executable, "-m", "medalign", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish_cli(proc: subprocess.Popen[str], timeout: int = 600) -> str:
    """Wait for a `start_cli` process; its output, asserting it exited 0."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def tree_digest(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under `folder` (but those named in `skip`), by relative path:
    what a test compares to prove a run directory was left untouched."""
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs mounted at `path` with `options` (size=512k, ro ...) for the block; the
    test is skipped where mounting needs a privilege this machine does not give."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
