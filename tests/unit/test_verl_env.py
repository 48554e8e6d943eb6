"""The verl job's own environment (medalign/rl_engines/verl_env.py): requirements.txt
within what verl's and vllm's wheels declare, a README that says how to create it, and
run.sh refusing in one line to start in a Python without verl or with a transformers
outside verl's range (a fake environment: dist-info folders on PYTHONPATH, python -S).

The declared requirements are recorded below with where they were read; the `network`
tests re-read them from the package index and resolve requirements.txt with
`pip install --dry-run` (`pytest -m network tests/unit/test_verl_env.py`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from medalign.rl_engines.verl import VERL_VERSION, verl_command
from medalign.rl_engines.verl_env import VERL_ENVIRONMENTS, requirements_text, write_env
from medalign.rl_engines.verl_scripts import write_scripts
from tests.package_index import declared, index_metadata

# vllm 0.24.0's Requires-Dist on the packages verl's [vllm] extra pins (its wheel's
# METADATA via `pip install --dry-run --no-deps --report`, December 2026)
VLLM_024_REQUIRES = {
    "torch": "==2.11.0",
    "torchvision": "==0.26.0",
    "torchaudio": "==2.11.0",
    "transformers": ">=5.5.3",
}
# verl 0.9.1's [vllm] extra, read the same way (the pins requirements.txt repeats)
VERL_091_VLLM_EXTRA = {
    "torch": "==2.11.0",
    "torchvision": "==0.26.0",
    "torchaudio": "==2.11.0",
    "vllm": "==0.24.0",
    "transformers": "==5.9.0",
}


def _requirements(text: str) -> dict[str, Requirement]:
    reqs = [Requirement(x) for x in text.splitlines() if x.strip() and not x.startswith("#")]
    return {r.name.lower(): r for r in reqs}


def test_the_requirements_hold_what_verl_and_vllm_declare() -> None:
    env = VERL_ENVIRONMENTS[VERL_VERSION]
    reqs = _requirements(requirements_text(VERL_VERSION))
    assert str(reqs["verl"].specifier) == f"=={VERL_VERSION}" and reqs["verl"].extras == {"vllm"}
    pins = {name: Version(str(r.specifier)[2:]) for name, r in reqs.items() if name != "verl"}
    assert {n: f"=={v}" for n, v in pins.items()} == VERL_091_VLLM_EXTRA
    assert pins["transformers"] in SpecifierSet(env["transformers"])
    for name, spec in VLLM_024_REQUIRES.items():
        assert pins[name] in SpecifierSet(spec), f"vllm 0.24.0 needs {name}{spec}"
    # the point of a separate environment: medalign's own transformers cannot run verl
    for constraints in ("constraints.txt", "constraints-gpu.txt"):
        line = next(
            x
            for x in (Path(__file__).parents[2] / constraints).read_text().splitlines()
            if x.startswith("transformers==")
        )
        mine = Version(line.split("#")[0].strip().split("==")[1])
        assert mine not in SpecifierSet(env["transformers"]), (constraints, mine)


def test_the_job_says_which_environment_runs_it(tmp_path: Path) -> None:
    write_env(tmp_path, VERL_VERSION)
    readme = (tmp_path / "README.md").read_text()
    assert "verl's own environment, not medalign's" in readme
    assert "pip install -r requirements.txt" in readme and "PYTHON=" in readme
    assert f"verl {VERL_VERSION}" in readme
    assert VERL_ENVIRONMENTS[VERL_VERSION]["transformers"] in readme


def _fake_env(root: Path, **versions: str) -> Path:
    """A folder of dist-info metadata only: what importlib.metadata sees of a Python
    with these packages installed."""
    root.mkdir(parents=True, exist_ok=True)
    for name, version in versions.items():
        info = root / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root


def _check(job: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-S", str(job / "check_env.py")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)},
    )


@pytest.mark.parametrize(
    "transformers",
    ["5.5.2", "5.5.3", "5.6.0", "5.6.1", "5.9.0", "5.9.0+cu130", "5.10.4", "5.11.0", "5.24.0"],
)
def test_check_env_follows_verls_transformers_range(tmp_path: Path, transformers: str) -> None:
    """The job's check (standard library only, no packaging in verl's env is assumed)
    agrees with packaging's reading of verl's specifier."""
    write_env(tmp_path, VERL_VERSION)
    site = _fake_env(tmp_path / "site", verl=VERL_VERSION, transformers=transformers)
    done = _check(tmp_path, site)
    allowed = Version(transformers) in SpecifierSet(VERL_ENVIRONMENTS[VERL_VERSION]["transformers"])
    assert (done.returncode == 0) is allowed, done.stderr
    if allowed:
        assert done.stdout.strip() == VERL_VERSION
    else:
        assert f"has transformers {transformers}; verl {VERL_VERSION} needs" in done.stderr


STUB = """#!/usr/bin/env bash
# verl's Python, faked: check_env.py runs for real on the fake site; the verl command is recorded
if [[ "$1" == *check_env.py ]]; then exec {python} -S "$@"; fi
printf '%s\\n' "$@" > "$STUB_OUT"
"""


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """run.sh, check_env.py and the rest of a job's scripts (no data: not needed here)."""
    from medalign.config import validate
    from medalign.rl_engines.verl_sizing import verl_sizes
    from tests.conftest import compose

    job = tmp_path_factory.mktemp("verl_job")
    cfg = validate(compose("stage=rl", "rl.engine=verl", "rl=grpo", "logger=none"))
    sizes = verl_sizes(cfg)
    write_env(job, VERL_VERSION)
    variables = {"MODEL_PATH": "/m", "MEDALIGN_ROOT": ""}
    write_scripts(job, verl_command(cfg, sizes=sizes), sizes, variables, VERL_VERSION, "x")
    return job


def _run_sh(job: Path, tmp_path: Path, site: Path | None, python: str | None = None):
    """run.sh with PYTHON a stub (or `python`) that sees only the fake site `site`."""
    stub = tmp_path / "python"
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(0o755)
    record = tmp_path / "argv.txt"
    record.unlink(missing_ok=True)
    env = {"PATH": "/usr/bin:/bin", "STUB_OUT": str(record), "PYTHON": python or str(stub)}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    done = subprocess.run(["bash", str(job / "run.sh")], capture_output=True, text=True, env=env)
    return done, record


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ({"transformers": "5.9.0"}, "run.sh: no verl in "),
        ({"verl": VERL_VERSION, "transformers": "5.24.0"}, "has transformers 5.24.0; verl"),
        ({"verl": VERL_VERSION}, "has transformers None; verl"),
    ],
)
def test_run_sh_refuses_an_environment_that_cannot_run_verl(
    job: Path, tmp_path: Path, versions: dict, expected: str
) -> None:
    done, record = _run_sh(job, tmp_path, _fake_env(tmp_path / "site", **versions))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert "README.md" in done.stderr
    assert not record.exists()  # verl was never started


def test_run_sh_without_any_python_stops_in_one_line(job: Path, tmp_path: Path) -> None:
    done, record = _run_sh(job, tmp_path, None, python=str(tmp_path / "no-such-python"))
    assert done.returncode == 1 and done.stderr.startswith("run.sh: ")
    assert done.stderr.count("\n") == 1 and not record.exists()


def test_run_sh_starts_verl_in_its_environment(job: Path, tmp_path: Path) -> None:
    site = _fake_env(tmp_path / "site", verl=VERL_VERSION, transformers="5.9.0")
    done, record = _run_sh(job, tmp_path, site)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the checked verl version: no warning
    assert record.read_text().splitlines()[:2] == ["-m", "verl.trainer.main_ppo"]
    other = _fake_env(tmp_path / "other", verl="0.9.0", transformers="5.9.0")
    done, _ = _run_sh(job, tmp_path, other)
    assert done.returncode == 0 and "verl 0.9.0 is installed" in done.stderr


@pytest.mark.network
def test_the_recorded_requirements_are_the_wheels(tmp_path: Path) -> None:
    meta = index_metadata(tmp_path, f"verl==={VERL_VERSION}", "vllm===0.24.0")
    env = VERL_ENVIRONMENTS[VERL_VERSION]
    verl = meta["verl"]
    assert SpecifierSet(verl["requires_python"]) == SpecifierSet(env["python"])
    assert declared(verl)["transformers"] == SpecifierSet(env["transformers"])
    extra = declared(verl, "vllm")
    assert {n: SpecifierSet(s) for n, s in VERL_091_VLLM_EXTRA.items()} == {
        n: extra[n] for n in VERL_091_VLLM_EXTRA
    }
    vllm = declared(meta["vllm"])
    assert {n: vllm[n] for n in VLLM_024_REQUIRES} == {
        n: SpecifierSet(s) for n, s in VLLM_024_REQUIRES.items()
    }


@pytest.mark.network
@pytest.mark.slow
def test_the_job_requirements_resolve(tmp_path: Path) -> None:
    """pip resolves the whole of requirements.txt (verl, vllm, torch and all they pull)
    for this Python, without installing; minutes: the index is asked for every
    dependency's metadata."""
    (tmp_path / "requirements.txt").write_text(requirements_text(VERL_VERSION))
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), "-r", str(tmp_path / "requirements.txt")],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if "ResolutionImpossible" not in done.stderr and done.returncode:
        pytest.skip(f"package index not reachable: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    got = {
        i["metadata"]["name"].lower(): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    assert got["verl"] == VERL_VERSION
    for name, spec in VERL_091_VLLM_EXTRA.items():
        assert got[name] == spec[2:], (name, got.get(name))
