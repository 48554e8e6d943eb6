"""The wheel carries the config tree, and an installed wheel answers from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the tracked files (setuptools writes build/ in-tree)."""
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    for name in listed:
        path = REPO / name
        if path.is_file() and not path.is_symlink():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return next(out.glob("medalign-*.whl"))


@pytest.mark.slow
def test_wheel_contains_every_yaml_and_the_example_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tree = REPO / "medalign" / "conf"
    for yaml in tree.rglob("*.yaml"):
        assert f"medalign/conf/{yaml.relative_to(tree)}" in names, yaml
    assert "medalign/tasks/assets/pubmedqa_test_pmids.json" in names
    assert "medalign/data/examples/mmlu_medical/test/anatomy_test.csv" in names


@pytest.mark.slow
def test_installed_wheel_runs_from_an_unrelated_directory(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import medalign; print(medalign.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(target))  # the wheel, not the checkout
    script = target / "bin" / "medalign"
    helped = subprocess.run(
        [str(script), "--help"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "stage=" in helped.stdout, helped.stderr
    job = subprocess.run(
        [str(script), "stage=medqa", "--cfg", "job"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr
    assert "name: medqa" in job.stdout and "options: 4" in job.stdout
