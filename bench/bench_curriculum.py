"""The whole curriculum on the tiny default: wall time and peak memory per stage.

Runs `python -m medalign experiment=curriculum` as a user would (W&B off), then reads
its manifest: seconds per stage, and the process's peak resident memory when each stage
ended (peak so far: the CPU process's high-water mark only grows).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "medalign",
                "experiment=curriculum",
                "logger=none",
                f"hydra.run.dir={tmp}/run",
            ],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        manifest = json.loads(Path(tmp, "run", "manifest.json").read_text())
    stages = [
        {
            "stage": s["name"],
            "seconds": s.get("seconds"),
            "peak_rss_mb": s.get("peak_rss_mb"),
            "train_steps_per_s": (s.get("metrics") or {}).get("train/steps_per_s"),
        }
        for s in manifest["stages"]
    ]
    return {"wall_seconds": round(wall, 1), "stages": stages, "results": manifest["results"]}


def markdown(result: dict) -> str:
    lines = [
        f"`make curriculum` (tiny model): **{result['wall_seconds']} s** wall time",
        "",
        "| stage | seconds | train steps/s | peak RSS so far (MB) |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {s['stage']} | {s['seconds']} | {s['train_steps_per_s'] or ''} | {s['peak_rss_mb']} |"
        for s in result["stages"]
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(measure()))
