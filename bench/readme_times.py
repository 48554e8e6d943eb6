"""Every time the README states, measured as a new user meets it: a clean clone, nothing
warm (a new virtual environment, a fresh MEDALIGN_CACHE and HF_HOME), this machine.

    python bench/readme_times.py                 # ~10 min on 2 cores -> readme_times.json
    python bench/readme_times.py --skip-install  # reuse the clone's .venv if it has one

Measures, in order, in one clone: `make install`, `make test`, `make curriculum` (the first
on fresh caches: the tiny model is built and the data tokenized), and `make curriculum`
again (caches warm). Each with the load average before and after, so a figure taken
on a busy machine says so. The README quotes the latest figures; bench/RESULTS.md
records them with the machine (`make bench` reads this file).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "readme_times.json"


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> dict:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    return {
        "command": " ".join(command),
        "seconds": round(seconds, 1),
        "returncode": done.returncode,
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "tail": tail,
    }


def measure(skip_install: bool = False, clone: Path | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="medalign-readme-times-"))
    clone = clone or work / "medalign"
    if not clone.exists():
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {
        **os.environ,
        "MEDALIGN_CACHE": str(work / "cache"),
        "HF_HOME": str(work / "hf"),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
    }
    env.pop("VIRTUAL_ENV", None)
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
        },
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True
        ).stdout.strip(),
    }
    if not skip_install:
        results["make_install"] = timed(["make", "install"], clone, env)
    results["make_test"] = timed(["make", "test"], clone, env)
    results["make_curriculum_first"] = timed(["make", "curriculum"], clone, env)
    results["make_curriculum_again"] = timed(["make", "curriculum"], clone, env)
    return results


def markdown(results: dict) -> str:
    lines = [
        f"Clean clone of {results['commit']}, fresh MEDALIGN_CACHE and HF_HOME; "
        f"{results['machine']['cpus']} CPUs, {results['machine']['date']}.",
        "",
        "| command | seconds | exit | load before / after |",
        "|---|---:|---:|---|",
    ]
    for key in ("make_install", "make_test", "make_curriculum_first", "make_curriculum_again"):
        if key in results:
            r = results[key]
            name = key.replace("make_", "make ").replace("_", " ")
            lines.append(
                f"| {name} | {r['seconds']} | {r['returncode']} "
                f"| {r['load_before']} / {r['load_after']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    found = measure(skip_install="--skip-install" in sys.argv)
    OUT.write_text(json.dumps(found, indent=2) + "\n")
    print(markdown(found))
