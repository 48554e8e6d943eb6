"""`make bench`: run every benchmark, write bench/results.json and bench/RESULTS.md.

Figures carry the machine they ran on; a slow figure never fails a test.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_compare  # noqa: E402
import bench_curriculum  # noqa: E402
import bench_data  # noqa: E402
import bench_eval  # noqa: E402
import bench_lmeval  # noqa: E402
import bench_plan  # noqa: E402
import bench_preprocess  # noqa: E402
import bench_sft  # noqa: E402
import bench_startup  # noqa: E402
import readme_times  # noqa: E402

OUT = Path(__file__).resolve().parent


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main() -> None:
    print("start-up ...", flush=True)
    startup = bench_startup.measure()
    print("SFT throughput vs plain TRL, and scaling ...", flush=True)
    sft = bench_sft.measure()
    print("data loading and formatting ...", flush=True)
    data = bench_data.measure()
    print("MCQ scoring, ours vs naive per-choice ...", flush=True)
    mcq = bench_eval.measure()
    print("MCQ scoring vs lm-evaluation-harness ...", flush=True)
    lmeval = bench_lmeval.measure()
    print("stage=compare: 3 runs x 7,000 questions ...", flush=True)
    compare = bench_compare.measure()
    print("the whole curriculum ...", flush=True)
    curriculum = bench_curriculum.measure()
    print("the planner vs measured, published and (with CUDA) GPU figures ...", flush=True)
    plan = bench_plan.measure()
    print("preprocessing at 20k/80k/180k rows, a sweep, stage=eval vs lm-eval ...", flush=True)
    preprocess = bench_preprocess.main(bench_preprocess.SIZES)
    results = {
        "machine": machine(),
        "startup": startup,
        "sft": sft,
        "data": data,
        "mcq_eval": mcq,
        "curriculum": curriculum,
        "compare": compare,
        "plan": plan,
        "preprocess": preprocess,
        "gpu": plan["gpu"],
    }
    times = OUT / "readme_times.json"  # bench/readme_times.py: ~10 min, run on its own
    if times.is_file():
        results["readme_times"] = json.loads(times.read_text())
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    md = [
        "# medalign benchmarks",
        "",
        f"Machine: {results['machine']}",
        "",
        "## The README's times (bench/readme_times.py, a clean clone)",
        "",
        readme_times.markdown(results["readme_times"])
        if "readme_times" in results
        else "not measured: run python bench/readme_times.py",
        "",
        "## Start-up (median of 7)",
        "",
        bench_startup.markdown(startup),
        "",
        "## SFT throughput: medalign vs a plain TRL script",
        "",
        bench_sft.markdown(sft),
        "",
        "## Data loading and formatting",
        "",
        bench_data.markdown(data),
        "",
        "## MCQ evaluation (MedQA 4 options, tiny model, CPU)",
        "",
        bench_eval.markdown(mcq),
        "",
        "## MCQ evaluation vs lm-evaluation-harness (same model, same questions)",
        "",
        bench_lmeval.markdown(lmeval),
        "",
        "## stage=compare: paired tests at full evaluation size",
        "",
        bench_compare.markdown(compare),
        "",
        "## The whole curriculum",
        "",
        bench_curriculum.markdown(curriculum),
        "",
        "## Plan before you train: the planner vs measurements",
        "",
        bench_plan.markdown(plan),
        "",
        "## Real data scale: tokenization, the cache, evaluation start-up",
        "",
        bench_preprocess.markdown(preprocess),
        "",
        "## GPU",
        "",
        bench_plan.gpu_markdown(results["gpu"]),
        "",
    ]
    (OUT / "RESULTS.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
