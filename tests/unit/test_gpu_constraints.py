"""constraints-gpu.txt (`make install-gpu`): every package pinned, the vllm inside the
range trl's [vllm] extra declares, the torch and transformers that vllm requires, the
training stack as in constraints.txt except where vllm forbids it (each exception listed
here with its reason), and the Makefile using the file. Offline: the declared
requirements are recorded below with where they were read; the `network` tests re-read
them from the package index and resolve the whole GPU install with `pip install
--dry-run` (`pytest -m network tests/unit/test_gpu_constraints.py`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.package_index import declared, index_metadata

REPO = Path(__file__).resolve().parents[2]
GPU_FILE = REPO / "constraints-gpu.txt"

# trl 1.16.0's [vllm] extra (trl-1.16.0.dist-info/METADATA): the vllm releases its GRPO/
# RLOO vLLM integration is built and tested for. The GPU pins' vllm is the newest inside.
TRL_VERSION = "1.16.0"
TRL_VLLM_EXTRA = ">=0.22.0,<=0.31.0"
# vllm 0.31.0's declared requirements on packages medalign also pins: the Requires-Dist
# of its wheel's METADATA (PyPI, read with `pip install --dry-run --no-deps --report`,
# December 2026; test_the_recorded_requirements_are_the_wheels re-reads them).
VLLM_VERSION = "0.31.0"
VLLM_REQUIRES = {
    "torch": "==2.13.0",
    "torchvision": "==0.28.0",
    "torchaudio": "==2.11.0",
    "numba": "==0.65.0",
    "transformers": ">=5.10.4,<5.18.0",
    "tokenizers": ">=0.21.1",
    "safetensors": ">=0.6.2",
    "huggingface-hub": ">=1.31.0",
}
# Read the same way from the other wheels' METADATA (December 2026).
DECLARED = {
    ("torch", "2.13.0"): {"triton": "==3.7.1"},  # PyPI's CUDA 13 build (torch===2.13.0)
    ("transformers", "5.17.0"): {
        "tokenizers": ">=0.23.1,<0.24.0",
        "safetensors": ">=0.8.0",
        "huggingface-hub": ">=1.5.0,<2.0",
    },
    ("numba", "0.65.0"): {"numpy": ">=1.22,<2.5"},
    ("torchvision", "0.28.0"): {"torch": "==2.13.0"},
    ("datasets", "5.2.0"): {"huggingface-hub": ">=1.31.0,<3.0"},
    ("trl", "1.16.0"): {
        "transformers": ">=4.56.2",
        "accelerate": ">=1.10.1",
        "datasets": ">=4.7.0",
    },
    ("liger-kernel", "0.8.5"): {"torch": ">=2.1.2", "triton": ">=2.3.1"},
    ("bitsandbytes", "0.50.2"): {"torch": ">=2.4,<3"},
}
# mistral-common 1.11.6 to 1.13.1 (vllm: mistral_common[image]>=1.11.6) declare
# numpy>=1.25,<2.4 on Python <= 3.12: found by `pip install --dry-run -c
# constraints-gpu.txt` (ResolutionImpossible at numpy 2.4.6)
MISTRAL_NUMPY = ">=1.25,<2.4"

# Shared packages whose GPU pin differs from constraints.txt, and why.
GPU_EXCEPTIONS = {
    "transformers": "vllm 0.31.0 requires transformers>=5.10.4,<5.18.0; 5.17.0 is the newest "
    "below (make test-gpu-pins runs the suite on it)",
    "numpy": "vllm 0.31.0 needs mistral-common[image]>=1.11.6, whose releases cap numpy<2.4 "
    "(Python <= 3.12); 2.3.5 is the newest below",
}


def _pins(path: Path) -> dict[str, str]:
    """{normalized name: the line's requirement text} of a constraints file."""
    pins = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            req = Requirement(text)
            pins[re.sub(r"[-_.]+", "-", req.name).lower()] = str(req.specifier)
    return pins


def _version(pin: str) -> Version:
    assert pin.startswith("==") and "," not in pin, pin
    return Version(pin[2:])


@pytest.fixture(scope="module")
def gpu() -> dict[str, str]:
    return _pins(GPU_FILE)


def test_every_package_is_pinned_exactly(gpu) -> None:
    assert gpu, "constraints-gpu.txt pins nothing"
    loose = {name: spec for name, spec in gpu.items() if not re.fullmatch(r"==[^,*]+", spec)}
    assert not loose, f"not pinned with ==: {loose}"
    for name in ("torch", "vllm", "liger-kernel", "flash-attn", "transformers", "trl", "peft"):
        assert name in gpu, name


def test_vllm_is_the_newest_trl_supports(gpu) -> None:
    """The old pin, vllm 0.33.0, lay outside trl's declared range."""
    spec = SpecifierSet(TRL_VLLM_EXTRA)
    assert gpu["trl"] == f"=={TRL_VERSION}"
    assert gpu["vllm"] == f"=={VLLM_VERSION}"
    assert _version(gpu["vllm"]) in spec
    assert max(spec.filter(["0.31.0", "0.32.0", "0.33.0", "0.34.0"])) == VLLM_VERSION


def test_torch_is_the_version_vllm_requires(gpu) -> None:
    """vllm 0.31.0 requires torch 2.13.0, the CPU path's version: a GPU machine gets PyPI's
    CUDA build of it, this machine its local +cpu build (make test-gpu-pins)."""
    cpu = _pins(REPO / "constraints.txt")
    assert gpu["torch"] == VLLM_REQUIRES["torch"] == cpu["torch"]
    assert "+cpu" not in gpu["torch"]
    assert gpu["liger-kernel"] == "==0.8.5"


def test_vllm_and_the_other_declared_requirements_hold(gpu) -> None:
    failures = []
    owners = {("vllm", VLLM_VERSION): VLLM_REQUIRES, **DECLARED}
    for (owner, version), needs in owners.items():
        assert gpu[owner] == f"=={version}", f"recorded {owner} {version}, pinned {gpu[owner]}"
        for name, spec in needs.items():
            if name in gpu and _version(gpu[name]) not in SpecifierSet(spec):
                failures.append(f"{owner} needs {name}{spec}, pinned {gpu[name]}")
    if _version(gpu["numpy"]) not in SpecifierSet(MISTRAL_NUMPY):
        failures.append(f"mistral-common needs numpy{MISTRAL_NUMPY}, pinned {gpu['numpy']}")
    assert not failures, failures


def test_shared_packages_agree_with_constraints_txt(gpu) -> None:
    cpu = _pins(REPO / "constraints.txt")
    differ = {n for n in gpu.keys() & cpu.keys() if gpu[n] != cpu[n]}
    assert differ == set(GPU_EXCEPTIONS), (
        f"differ from constraints.txt: {sorted(differ)}; documented: {sorted(GPU_EXCEPTIONS)}"
    )
    text = GPU_FILE.read_text()
    for name in GPU_EXCEPTIONS:  # the file says why on the pin's own line
        line = next(x for x in text.splitlines() if x.lower().startswith(name + "=="))
        assert "differs" in line and "vllm 0.31.0" in line, line


def test_pyproject_accepts_the_gpu_pins(gpu) -> None:
    """medalign's own lower bounds (and the gpu extra) must admit every GPU pin, or
    `pip install -e .[dev,gpu] -c constraints-gpu.txt` cannot resolve."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+ (vllm needs 3.11 anyway)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["gpu"]
    reqs += project["optional-dependencies"]["dev"]
    extra = {Requirement(r).name for r in project["optional-dependencies"]["gpu"]}
    assert {"vllm", "liger-kernel"} <= extra and "flash-attn" not in extra  # optional
    for text in reqs:
        req = Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in gpu:
            assert _version(gpu[name]) in req.specifier, f"{text} vs {name}{gpu[name]}"


def _top_level_env() -> dict[str, str]:
    """The environment of a make run from a shell: under `make test` MAKELEVEL and
    MAKEFLAGS would make these a sub-make, whose lines say make[1] (and its -n echoes)."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}


def _make_n(target: str, *args: str) -> str:
    proc = subprocess.run(
        ["make", "-n", target, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env=_top_level_env(),
    )
    return proc.stdout


def test_make_install_gpu_uses_the_file() -> None:
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    out = _make_n("install-gpu", "VENV=/nonexistent-venv")
    lines = [x for x in out.splitlines() if "pip install" in x]
    assert lines and all("-c constraints-gpu.txt" in x for x in lines), out
    assert any(x.rstrip().endswith(" torch") for x in lines), "CUDA torch installed first"
    assert any('".[dev,gpu]"' in x for x in lines)
    assert not any("flash-attn" in x for x in lines)  # optional: only with FLASH_ATTN=1
    with_flash = _make_n("install-gpu", "VENV=/nonexistent-venv", "FLASH_ATTN=1")
    assert "-c constraints-gpu.txt --no-build-isolation flash-attn" in with_flash
    cpu = _make_n("install", "VENV=/nonexistent-venv")
    assert "constraints-gpu" not in cpu and "-c constraints.txt" in cpu
    assert "torch==2.13.0" in cpu  # the CPU path is unchanged


def test_after_install_gpu_no_target_swaps_torch_back(tmp_path) -> None:
    """A GPU venv (both stamps, newer than the files they depend on): `make test` runs the
    suite without reinstalling, and `make bench` installs its extra under the GPU pins."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for stamp in (".installed", ".installed-gpu"):
        (venv / stamp).touch()
    test = _make_n("test", f"VENV={venv}")
    assert "pip install" not in test and "pytest" in test
    bench = [x for x in _make_n("bench", f"VENV={venv}").splitlines() if "pip install" in x]
    assert bench and all("-c constraints-gpu.txt" in x for x in bench), bench
    (venv / ".installed-gpu").unlink()  # a CPU venv: the CPU pins
    cpu_bench = _make_n("bench", f"VENV={venv}")
    assert "-c constraints.txt" in cpu_bench and "constraints-gpu" not in cpu_bench


def test_the_gpu_extra_is_trls_vllm_range() -> None:
    tomllib = pytest.importorskip("tomllib")
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    vllm = next(Requirement(r) for r in extra["optional-dependencies"]["gpu"] if "vllm" in r)
    assert vllm.specifier == SpecifierSet(TRL_VLLM_EXTRA)


def _make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=_top_level_env(),
    )


@pytest.mark.parametrize("smi", ["missing", "no devices"])
def test_make_install_gpu_without_cuda_stops_in_one_line(tmp_path: Path, smi: str) -> None:
    """Before anything is written: no venv, no stamp, nothing installed."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    fake = tmp_path / "nvidia-smi"
    if smi == "no devices":  # a driver without a GPU: what nvidia-smi -L says then
        fake.write_text("#!/usr/bin/env bash\necho 'No devices were found'\nexit 6\n")
        fake.chmod(0o755)
    venv = tmp_path / "venv"
    done = _make(tmp_path, "install-gpu", f"VENV={venv}", f"NVIDIA_SMI={fake}")
    assert done.returncode != 0
    lines = [x for x in done.stderr.splitlines() if not x.startswith("make: ***")]  # make's own
    assert len(lines) == 1 and "no CUDA GPU on this machine" in lines[0], done.stderr
    assert "nothing installed" in lines[0] and "make install" in lines[0]
    assert done.stdout == "" and not venv.exists()


def test_make_install_gpu_checks_cuda_before_anything_else() -> None:
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    lines = _make_n("install-gpu", "VENV=/nonexistent-venv").splitlines()
    assert "-L" in lines[0] and "no CUDA GPU" in lines[0]
    assert "venv" in lines[1] and "pip install" in lines[2]


def test_make_test_gpu_pins_installs_the_gpu_pins_with_a_cpu_torch(tmp_path: Path) -> None:
    """A separate venv: torch and -e ".[dev]" under constraints-gpu.txt (no vllm: a CUDA
    package), `pip check`, then `make test`'s own command with that venv's Python."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    venv = tmp_path / "pins"
    install = _make_n(f"{venv}/.installed-gpu-pins", f"GPU_PINS_VENV={venv}").splitlines()
    pips = [x for x in install if "pip install" in x]
    assert len(pips) == 2 and all(f"{venv}/bin/python" in x for x in pips), install
    assert all("-c constraints-gpu.txt" in x for x in pips)
    assert pips[0].rstrip().endswith(" torch") and pips[1].rstrip().endswith('-e ".[dev]"')
    assert any(x.endswith("pip check") for x in install)
    assert "constraints.txt" not in " ".join(install) and "gpu]" not in " ".join(install)
    (venv / "bin").mkdir(parents=True)
    for stamp in (".installed", ".installed-gpu-pins"):
        (venv / stamp).touch()
    run = _make_n("test-gpu-pins", f"GPU_PINS_VENV={venv}")
    pytest_lines = [x for x in run.splitlines() if "-m pytest" in x]
    assert "pip install" not in run and len(pytest_lines) == 1, run
    makefile = (REPO / "Makefile").read_text()
    test_recipe = re.search(r"^test:.*\n\t(.+)$", makefile, re.M).group(1)
    expected = test_recipe.replace("$(PY)", f"{venv}/bin/python").replace("$(ARGS)", "")
    assert pytest_lines[0].rstrip() == expected.rstrip()
    assert ".venv-gpu-pins/" in (REPO / ".gitignore").read_text().splitlines()


@pytest.mark.network
def test_the_recorded_requirements_are_the_wheels(tmp_path: Path) -> None:
    wanted = [f"vllm==={VLLM_VERSION}", f"trl==={TRL_VERSION}", "mistral-common===1.13.1"]
    wanted += [f"{name}==={version}" for name, version in DECLARED]
    meta = index_metadata(tmp_path, *wanted)
    got = declared(meta["vllm"])
    assert {n: got[n] for n in VLLM_REQUIRES} == {
        n: SpecifierSet(s) for n, s in VLLM_REQUIRES.items()
    }
    assert declared(meta["trl"], "vllm")["vllm"] == SpecifierSet(TRL_VLLM_EXTRA)
    assert declared(meta["mistral-common"])["numpy"] == SpecifierSet(MISTRAL_NUMPY)
    for (owner, _), needs in DECLARED.items():
        got = declared(meta[owner])
        assert {n: got[n] for n in needs} == {n: SpecifierSet(s) for n, s in needs.items()}, owner


@pytest.mark.network
@pytest.mark.slow
def test_the_gpu_install_resolves(tmp_path: Path) -> None:
    """`make install-gpu`'s packages, resolved by pip against the index without installing
    (about 5 minutes: every dependency's metadata). torch===2.13.0: PyPI's CUDA build."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), "-c", str(GPU_FILE), "torch===2.13.0", "-e", ".[dev,gpu]"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if "ResolutionImpossible" not in done.stderr and done.returncode:
        pytest.skip(f"package index not reachable: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    got = {
        re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    pins = _pins(GPU_FILE)
    for name in ("vllm", "torch", "transformers", "huggingface-hub", "numpy", "trl", "peft"):
        assert f"=={got[name]}" == pins[name], (name, got[name])
