"""Built models in the cache (issue 37): an entry carries a digest of its files, checked on
load; a damaged one is rebuilt with a warning; a build killed midway leaves nothing that
is believed; two processes building the same entry build it once. On the tiny builder
(the world model goes through the same `build_into_cache`, too slow to build here)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medalign.models.cache import ENTRY
from tests.conftest import REPO, default


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("MEDALIGN_CACHE", str(root))
    return root


def tiny_cfg():
    from medalign.config import ModelConfig

    return default(ModelConfig, name="tiny", builder="tiny")


def test_a_truncated_safetensors_is_rebuilt_with_a_warning(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import AutoModelForCausalLM

    from medalign.models.builders import build_tiny

    folder = Path(build_tiny(tiny_cfg()))
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING):
        again = Path(build_tiny(tiny_cfg()))
    assert again == folder
    assert weights.read_bytes() == whole  # the same seed rebuilds the same bytes
    assert any("model.safetensors" in r.message and "rebuil" in r.message for r in caplog.records)
    AutoModelForCausalLM.from_pretrained(folder)


def test_an_edited_file_of_the_same_size_is_caught_too(cache: Path) -> None:
    from medalign.models.builders import build_tiny

    folder = Path(build_tiny(tiny_cfg()))
    config = folder / "config.json"
    text = config.read_text()
    config.write_text(text.replace('"hidden_act": "silu"', '"hidden_act": "gelu"'))
    assert config.read_text() != text
    build_tiny(tiny_cfg())
    assert config.read_text() == text


def test_an_entry_records_every_file_it_holds(cache: Path) -> None:
    from medalign.models.builders import build_tiny

    folder = Path(build_tiny(tiny_cfg()))
    record = json.loads((folder / ENTRY).read_text())
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert set(record["files"]) == on_disk - {ENTRY}


def test_an_entry_built_before_digests_is_adopted_when_whole_and_rebuilt_when_cut(
    cache: Path,
) -> None:
    from medalign.models.builders import build_tiny

    folder = Path(build_tiny(tiny_cfg()))
    (folder / ENTRY).unlink()  # as the previous version left it
    assert Path(build_tiny(tiny_cfg())) == folder and (folder / ENTRY).is_file()
    (folder / ENTRY).unlink()
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[:-100])
    build_tiny(tiny_cfg())
    assert weights.read_bytes() == whole


CHILD = """
import os, sys, time
from pathlib import Path
import medalign.models.builders as builders
real = builders.write_random_llama
def counted(tiny, corpus, out):
    with open(os.environ["BUILDS"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(float(os.environ.get("BUILD_SLEEP", "0")))
    real(tiny, corpus, out)
builders.write_random_llama = counted
from tests.conftest import default
from medalign.config import ModelConfig
print(builders.build_tiny(default(ModelConfig, name="tiny", builder="tiny")), flush=True)
"""


def child(cache: Path, builds: Path, sleep: float) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MEDALIGN_CACHE": str(cache),
        "BUILDS": str(builds),
        "BUILD_SLEEP": str(sleep),
        "PYTHONPATH": str(REPO),
    }
    return subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def built(models: Path) -> list[Path]:
    """The folders in the cache's models/ (entries and staging), not its locks."""
    return [p for p in models.iterdir() if p.is_dir() and p.name != ".locks"]


@pytest.mark.slow  # two processes and a lock: with the kill tests, in make test-slow
def test_two_processes_building_the_same_entry_build_it_once(cache: Path, tmp_path: Path) -> None:
    builds = tmp_path / "builds.txt"
    first, second = child(cache, builds, 8.0), child(cache, builds, 8.0)  # overlapping
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert outs[0][0] == outs[1][0]
    assert len(builds.read_text().splitlines()) == 1, builds.read_text()
    models = cache / "models"
    assert built(models) == [Path(outs[0][0].strip())]


@pytest.mark.slow  # a kill test: make test-slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_build_killed_midway_leaves_nothing_believed_and_the_rerun_builds_it(
    cache: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    builds = tmp_path / "builds.txt"
    proc = child(cache, builds, 60.0)
    deadline = time.time() + 120
    while not builds.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert builds.exists(), proc.stderr.read() if proc.poll() is not None else "no build"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    models = cache / "models"
    assert not [p for p in built(models) if not p.name.startswith(".")]
    again = child(cache, builds, 0.0)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    folder = Path(out.strip())
    assert (folder / ENTRY).is_file()
    assert built(models) == [folder]  # staging swept


def test_a_damaged_world_in_the_cache_is_rewritten(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The world's data root is a cache entry like the models built from it."""
    from medalign.world.store import world_root

    root = Path(world_root(0, 8))
    textbook = root / "corpus" / "textbook.txt"
    whole = textbook.read_text()
    textbook.write_text(whole[:100])
    with caplog.at_level(logging.WARNING):
        assert Path(world_root(0, 8)) == root
    assert textbook.read_text() == whole
    assert any("textbook.txt" in r.message for r in caplog.records)
