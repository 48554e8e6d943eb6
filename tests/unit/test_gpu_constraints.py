"""constraints-gpu.txt (`make install-gpu`): every package pinned, a CUDA torch that vllm
accepts, the training stack as in constraints.txt except where vllm forbids it (each
exception listed here with its reason), and the Makefile using the file. No network:
the declared requirements are recorded below with where they were read.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
GPU_FILE = REPO / "constraints-gpu.txt"

# vllm 0.33.0's declared requirements on packages medalign also pins: the Requires-Dist
# lines of vllm-0.33.0.dist-info/METADATA in vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64
# .whl (PyPI), read with `pip download vllm==0.33.0 --no-deps` in December 2026.
VLLM_VERSION = "0.33.0"
VLLM_REQUIRES = {
    "torch": "==2.14.0",
    "torchvision": "==0.29.0",
    "torchaudio": "==2.11.0",
    "numba": "==0.65.0",
    "transformers": ">=5.16.1,<5.21.0",
    "tokenizers": ">=0.23.2",
    "safetensors": ">=0.6.2",
}
# Read the same way from the other wheels' METADATA (December 2026).
DECLARED = {
    "torch": {"triton": "~=3.8.0"},  # torch 2.14.0
    "transformers": {"tokenizers": ">=0.23.1,<0.24.0", "safetensors": ">=0.8.0"},  # 5.20.2
    "numba": {"numpy": ">=1.22,<2.5"},  # 0.65.0
    # mistral-common 1.11.6 to 1.13.1 (vllm: mistral_common[image]>=1.11.6), Python <= 3.12;
    # found by `pip install --dry-run -c constraints-gpu.txt` (ResolutionImpossible at 2.4.6)
    "mistral-common": {"numpy": ">=1.25,<2.4"},
    "trl": {"transformers": ">=4.56.2", "accelerate": ">=1.10.1", "datasets": ">=4.7.0"},
    "liger-kernel": {"torch": ">=2.1.2", "triton": ">=2.3.1"},  # 0.8.5
    "bitsandbytes": {"torch": ">=2.4,<3"},  # 0.50.2
}
# trl 1.16.0 declares `vllm>=0.22.0,<=0.31.0` in its [vllm] extra (not installed) and
# warns at import about any other vllm (trl/import_utils.py is_vllm_available): a known,
# documented conflict (docs/operations/gpus.md), not a resolver error.
TRL_VLLM_EXTRA = ">=0.22.0,<=0.31.0"

# Shared packages whose GPU pin differs from constraints.txt, and why.
GPU_EXCEPTIONS = {
    "torch": "vllm 0.33.0 requires torch==2.14.0 (a CUDA 13 build on PyPI); the CPU path "
    "keeps the local 2.13.0 CPU build",
    "transformers": "vllm 0.33.0 requires transformers<5.21.0; 5.20.2 is the newest below",
    "numpy": "vllm 0.33.0 needs mistral-common[image]>=1.11.6, whose releases cap numpy<2.4 "
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


def test_torch_is_the_cuda_build_vllm_requires(gpu) -> None:
    cpu = _pins(REPO / "constraints.txt")
    assert gpu["torch"] != cpu["torch"], "the GPU file pins the CPU torch"
    assert "+cpu" not in gpu["torch"]
    assert gpu["vllm"] == f"=={VLLM_VERSION}"
    assert gpu["liger-kernel"] == "==0.8.5"


def test_vllm_and_the_other_declared_requirements_hold(gpu) -> None:
    failures = []
    for owner, needs in {"vllm": VLLM_REQUIRES, **DECLARED}.items():
        for name, spec in needs.items():
            if name in gpu and _version(gpu[name]) not in SpecifierSet(spec):
                failures.append(f"{owner} needs {name}{spec}, pinned {gpu[name]}")
    assert not failures, failures
    assert _version(gpu["vllm"]) not in SpecifierSet(TRL_VLLM_EXTRA)  # still the conflict


def test_shared_packages_agree_with_constraints_txt(gpu) -> None:
    cpu = _pins(REPO / "constraints.txt")
    differ = {n for n in gpu.keys() & cpu.keys() if gpu[n] != cpu[n]}
    assert differ == set(GPU_EXCEPTIONS), (
        f"differ from constraints.txt: {sorted(differ)}; documented: {sorted(GPU_EXCEPTIONS)}"
    )
    text = GPU_FILE.read_text()
    for name in GPU_EXCEPTIONS:  # the file says why on the pin's own line
        line = next(x for x in text.splitlines() if x.lower().startswith(name + "=="))
        assert "differs" in line and "vllm" in line, line


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


def _make_n(target: str, *args: str) -> str:
    proc = subprocess.run(
        ["make", "-n", target, *args], cwd=REPO, capture_output=True, text=True, check=True
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
