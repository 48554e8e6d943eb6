"""Start-up: `python -m medalign --help` and `--cfg job` against a bare Hydra app with the
same config tree (target: within 1.5x; no torch import on these paths).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CASES = {"--help": ["--help"], "stage=medqa --cfg job": ["stage=medqa", "--cfg", "job"]}


def _time(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(repeats: int = 7) -> list[dict]:
    rows = []
    for name, args in CASES.items():
        ours = _time([sys.executable, "-m", "medalign", *args], repeats)
        bare = _time([sys.executable, str(HERE / "bare_hydra_app.py"), *args], repeats)
        rows.append(
            {
                "command": name,
                "medalign_s": round(ours, 3),
                "bare_hydra_s": round(bare, 3),
                "ratio": round(ours / bare, 2),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| command | medalign (s) | bare Hydra (s) | ratio |", "|---|---:|---:|---:|"]
    lines += [
        f"| `{r['command']}` | {r['medalign_s']} | {r['bare_hydra_s']} | {r['ratio']}x |"
        for r in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(measure()))
