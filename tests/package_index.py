"""What a wheel declares, read from the package index without installing it: pip's
resolver report (`pip install --dry-run --no-deps --report`), which uses the index's
metadata files where it serves them. For the `network` tests that check the requirements
recorded in tests/unit/test_gpu_constraints.py and test_verl_env.py.

    meta = index_metadata(tmp_path, "vllm===0.31.0")      # {name: METADATA as JSON}
    declared(meta["vllm"])["torch"]                       # SpecifierSet('==2.13.0')

`===` (arbitrary equality) names the exact upload: torch===2.13.0 is PyPI's build, not a
local `2.13.0+cpu` wheel that `==2.13.0` would also match.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet


def index_metadata(tmp: Path, *wanted: str) -> dict[str, dict]:
    """{normalized name: metadata} of each `wanted` requirement; skips the test with
    pip's reason when the index does not answer."""
    report = tmp / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
         "--quiet", "--report", str(report), *wanted],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode:
        pytest.skip(f"package index not reachable: {done.stderr.strip()[-300:]}")
    items = json.loads(report.read_text())["install"]
    return {_norm(i["metadata"]["name"]): i["metadata"] for i in items}


def declared(metadata: dict, extra: str | None = None) -> dict[str, SpecifierSet]:
    """{name: specifier} of the Requires-Dist lines that apply on Linux x86-64 CPython
    3.11: the base install's (extra None), or only those an extra adds."""
    env = {"platform_system": "Linux", "platform_machine": "x86_64", "python_version": "3.11"}
    out = {}
    for text in metadata.get("requires_dist") or []:
        req = Requirement(text)
        marker = req.marker
        if extra is None:
            applies = marker is None or marker.evaluate({**env, "extra": ""})
        else:
            applies = (
                marker is not None
                and marker.evaluate({**env, "extra": extra})
                and not marker.evaluate({**env, "extra": ""})
            )
        if applies:  # a name listed twice (numba: numpy>=1.22 and numpy<2.5,>=1.22): both
            name = _norm(req.name)
            out[name] = out.get(name, SpecifierSet()) & req.specifier
    return out


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
