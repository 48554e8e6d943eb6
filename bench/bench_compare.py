"""stage=compare at full evaluation size: 3 runs x ~7,000 questions, 10,000 resamples.

    PYTHONPATH=. python bench/bench_compare.py          # this module alone (prints markdown)
    make bench                                          # with every other benchmark

The question counts are the evaluation sets' real sizes (PubMedQA test 500, MedMCQA dev
4,183, MedQA test 1,273, MMLU-medical test 1,089: 7,045). Each run's predictions.jsonl
carries what the built-in log-likelihood scorer writes per question (acc, acc_norm,
brier, loglik). Measured in-process, after the imports (the time beyond start-up), for
every metric and for accuracy alone; and the whole command, start-up included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SIZES = {"pubmedqa": 500, "medmcqa": 4183, "medqa": 1273, "mmlu_medical": 1089}


def write_runs(root: Path, runs: int = 3) -> list[Path]:
    rng = np.random.default_rng(0)
    difficulty = {d: rng.random(n) for d, n in SIZES.items()}
    folders = []
    for k in range(runs):
        folder = root / f"run{k}"
        (folder / "eval").mkdir(parents=True)
        with (folder / "eval" / "predictions.jsonl").open("w") as out:
            for dataset, n in SIZES.items():
                correct = difficulty[dataset] < 0.35 + 0.03 * k
                for i in range(n):
                    p = float(np.clip(rng.normal(0.4 + 0.3 * correct[i], 0.1), 0.01, 0.99))
                    row = {
                        "dataset": dataset,
                        "id": f"{dataset}-{i}",
                        "scores": {
                            "acc": float(correct[i]),
                            "acc_norm": float(correct[i] if rng.random() > 0.1 else 1 - correct[i]),
                            "brier": (1 - p) ** 2 + p**2 / 3,
                            "loglik": float(np.log(p)),
                        },
                    }
                    out.write(json.dumps(row) + "\n")
        results = {d: {"n": n, "split": "test", "fingerprint": "f" + d} for d, n in SIZES.items()}
        (folder / "eval" / "results.json").write_text(json.dumps(results))
        (folder / "config.yaml").write_text(f"seed: 42\nlora:\n  r: {8 * (k + 1)}\n")
        folders.append(folder)
    return folders


def in_process(folders: list[Path], metrics: list[str] | None) -> dict[str, float]:
    from medalign.compare.engine import CompareSettings, compare_groups
    from medalign.compare.report import write_comparison
    from medalign.compare.runs import group_by_seed, resolve_entry

    start = time.perf_counter()
    runs = [r for f in folders for r in resolve_entry(str(f))]
    read = time.perf_counter()
    table = compare_groups(group_by_seed(runs), 0, CompareSettings(metrics=metrics))
    tested = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        write_comparison(Path(out), table, plot=True)
    done = time.perf_counter()
    return {
        "rows": len(table["rows"]),
        "read_s": round(read - start, 3),
        "statistics_s": round(tested - read, 3),
        "write_s": round(done - tested, 3),
        "total_s": round(done - start, 3),
    }


def cli(folders: list[Path]) -> float:
    with tempfile.TemporaryDirectory() as out:
        runs = ",".join(str(f) for f in folders)
        command = [
            sys.executable,
            "-m",
            "medalign",
            "stage=compare",
            f"compare.runs=[{runs}]",
            "logger=none",
            f"hydra.run.dir={out}/compare",
        ]
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True, capture_output=True, env=os.environ)
        return round(time.perf_counter() - start, 3)


def measure() -> dict:
    with tempfile.TemporaryDirectory() as root:
        folders = write_runs(Path(root))
        in_process(folders, ["acc"])  # warm the imports (scipy, matplotlib)
        return {
            "questions": sum(SIZES.values()),
            "runs": len(folders),
            "resamples": 10_000,
            "every_metric": in_process(folders, None),
            "accuracy_only": in_process(folders, ["acc"]),
            "cli_s": cli(folders),
            "load": os.getloadavg()[0],
        }


def markdown(result: dict) -> str:
    lines = [
        f"{result['runs']} runs x {result['questions']} questions (4 datasets), "
        f"{result['resamples']} resamples; load average {result['load']:.2f}.",
        "",
        "| metrics | rows | read s | statistics s | write (md, json, png) s | total s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("every_metric", "accuracy_only"):
        r = result[name]
        lines.append(
            f"| {name.replace('_', ' ')} | {r['rows']} | {r['read_s']} | {r['statistics_s']} "
            f"| {r['write_s']} | {r['total_s']} |"
        )
    lines += [
        "",
        f"The whole command (`python -m medalign stage=compare ...`): {result['cli_s']} s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(measure()))
