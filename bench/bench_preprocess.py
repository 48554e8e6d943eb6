"""Preprocessing at real data scale: time to the first training step and peak memory,
medalign (first run, then a cache hit) vs a plain TRL SFTTrainer script on the same rows;
a 4-job sweep's preprocessing; `stage=eval` end to end vs lm-evaluation-harness.

    python bench/bench_preprocess.py [rows ...]        # default 20000 80000 180000
    BENCH_SKIP_EVAL=1 python bench/bench_preprocess.py 20000

Rows are synthetic MedMCQA rows in the original file format, built from the real rows of
../shared/data (bench/synthetic.py). Each side runs in its own process under
bench/first_step.py, which prints the time the first training step begins; peak memory
is the largest sum of PSS (shared pages split between the processes that share them) over
the process and its children (tokenization workers), sampled every 200 ms, and the
largest RSS of the main process alone. Writes bench/preprocess_results.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import synthetic  # noqa: E402

STEPS = 5
SIZES = [20000, 80000, 180000]
ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "WANDB_MODE": "disabled",
    "PYTHONPATH": str(REPO),
}

PLAIN_TRL = r"""
import json, sys
from datasets import Dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer
rows_file, model_dir, out, steps = sys.argv[1:]
with open(rows_file) as f:
    rows = [json.loads(line) for line in f]
args = SFTConfig(output_dir=out, max_steps=int(steps), per_device_train_batch_size=8,
                 learning_rate=2e-3, logging_steps=5, bf16=False, use_cpu=True, report_to=[],
                 save_strategy="no", gradient_checkpointing=False, max_length=1024)
trainer = SFTTrainer(model=model_dir, args=args, train_dataset=Dataset.from_list(rows),
                     peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                            target_modules="all-linear", task_type="CAUSAL_LM"))
trainer.train()
"""


def run_measured(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run `cmd` (under first_step.py); wall time, time to first step, peak tree RSS."""
    import psutil

    started = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        peak = main_peak = 0
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                main_peak = max(main_peak, parent.memory_info().rss)
                total = 0
                for child in [parent, *parent.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_full_info().pss
                peak = max(peak, total)
            except psutil.Error:
                pass
            time.sleep(0.2)
    wall = time.time() - started
    text = log.read_text()
    first = [float(line.split()[1]) for line in text.splitlines() if line.startswith("FIRST_STEP")]
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "first_step_s": round(first[0] - started, 2) if first else None,
        "peak_rss_mb": round(peak / 1e6, 1),  # PSS summed over the process tree
        "peak_main_rss_mb": round(main_peak / 1e6, 1),
    }


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, **ENV, "MEDALIGN_CACHE": str(cache), **extra}


def _medalign(data_root: Path, run_dir: Path, *extra: str, multirun: bool = False) -> list[str]:
    cmd = [sys.executable, str(HERE / "first_step.py"), "-m", "medalign"]
    cmd += ["-m"] if multirun else []
    cmd += [
        "stage=medmcqa",
        f"data_root={data_root}",
        f"trainer.max_steps={STEPS}",
        "logger=none",
        f"hydra.{'sweep' if multirun else 'run'}.dir={run_dir}",
        *extra,
    ]
    return cmd


def _rows_file(data_root: Path, out: Path) -> Path:
    """The prompt/completion rows medalign trains on (after decontamination), as JSONL."""
    from medalign.compose import compose
    from medalign.config import validate
    from medalign.data.formatting import sft_rows
    from medalign.data.loading import load_training_data

    cfg = validate(compose(["stage=medmcqa", f"data_root={data_root}"]))
    rows = sft_rows([(p.records, p.config) for p in load_training_data(cfg).parts])
    with out.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return out


def measure_size(n: int, tmp: Path, model_dir: str, model_cache: Path) -> dict[str, Any]:
    root = synthetic.medmcqa_root(tmp / f"data{n}", n)
    rows = _rows_file(root, tmp / f"rows{n}.jsonl")
    plain_script = tmp / "plain_trl.py"
    plain_script.write_text(PLAIN_TRL)
    env = _env(model_cache)
    cache = tmp / f"tokcache{n}"
    result: dict[str, Any] = {"rows": n}
    cmd = [sys.executable, str(HERE / "first_step.py"), str(plain_script), str(rows), model_dir]
    result["plain_trl"] = run_measured(
        [*cmd, str(tmp / f"plain{n}"), str(STEPS)], env, tmp / f"plain{n}.log"
    )
    for label in ("medalign_first", "medalign_cached"):
        result[label] = run_measured(
            _medalign(root, tmp / f"runs/{label}{n}", f"preprocess.cache_dir={cache}"),
            env,
            tmp / f"{label}{n}.log",
        )
        manifest = tmp / f"runs/{label}{n}/manifest.json"
        if manifest.is_file():
            data = json.loads(manifest.read_text())["stages"][0].get("data", {})
            result[label]["preprocess_s"] = data.get("preprocess_s")
            result[label]["cache_hit"] = data.get("tokenized_cache", {}).get("hit")
            result[label]["train_rows"] = data.get("rows")
    plain = result["plain_trl"]["first_step_s"]
    for label in ("medalign_first", "medalign_cached"):
        ours = result[label]["first_step_s"]
        result[label]["vs_plain"] = round(ours / plain, 3) if ours and plain else None
    return result


def measure_sweep(n: int, tmp: Path, model_cache: Path, jobs: int = 4) -> dict[str, Any]:
    """A 4-job sweep over the same data: total preprocessing time, cache on and off."""
    root = tmp / f"data{n}"
    if not root.is_dir():
        synthetic.medmcqa_root(root, n)
    ranks = ",".join(str(4 * 2**k) for k in range(jobs))
    out: dict[str, Any] = {"rows": n, "jobs": jobs}
    for label, extra in (
        ("cache", [f"preprocess.cache_dir={tmp / 'sweepcache'}"]),
        ("no_cache", ["preprocess.cache=false"]),
    ):
        sweep_dir = tmp / f"sweep_{label}"
        cmd = _medalign(root, sweep_dir, f"lora.r={ranks}", *extra, multirun=True)
        measured = run_measured(cmd, _env(model_cache), tmp / f"sweep_{label}.log")
        times = []
        for manifest in sorted(sweep_dir.rglob("manifest.json")):
            data = json.loads(manifest.read_text())["stages"][0].get("data", {})
            times.append(data.get("preprocess_s"))
        out[label] = {
            **measured,
            "preprocess_s_per_job": times,
            "preprocess_s_total": round(sum(t or 0 for t in times), 2),
        }
    return out


IMPORTS = "import transformers.trainer_callback, datasets, peft; from trl import SFTTrainer"


def measure_import_floor(runs: int = 3) -> float:
    """Median seconds to import what both sides import before any row is read (torch,
    transformers, datasets, peft, trl): no run of either side starts training sooner."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS], env=_env(Path(tempfile.gettempdir())),
                       check=True, capture_output=True)  # fmt: skip
        times.append(time.perf_counter() - started)
    return round(sorted(times)[len(times) // 2], 2)


def main(sizes: list[int]) -> dict[str, Any]:
    from medalign.config import ModelConfig
    from medalign.models.load import model_source

    results: dict[str, Any] = {"steps": STEPS, "cpus": os.cpu_count(), "sizes": []}
    results["import_floor_s"] = measure_import_floor()
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as name:
        tmp = Path(name)
        model_cache = Path(os.environ.get("MEDALIGN_CACHE", tmp / "models"))
        os.environ["MEDALIGN_CACHE"] = str(model_cache)
        model_dir = model_source(ModelConfig())  # built once, outside the timings
        for n in sizes:
            print(f"  {n} rows ...", flush=True)
            results["sizes"].append(measure_size(n, tmp, model_dir, model_cache))
            _save(results)
        first = results["sizes"]
        if len(first) >= 2:
            a, b = first[0], first[-1]
            for side in ("medalign_first", "medalign_cached", "plain_trl"):
                grown = b[side]["peak_rss_mb"] - a[side]["peak_rss_mb"]
                results.setdefault("bytes_per_row", {})[side] = round(
                    grown * 1e6 / (b["rows"] - a["rows"]), 1
                )
        if not os.environ.get("BENCH_SKIP_SWEEP"):
            print("  4-job sweep ...", flush=True)
            results["sweep"] = measure_sweep(sizes[0], tmp, model_cache)
            _save(results)
        if not os.environ.get("BENCH_SKIP_EVAL"):
            from bench_eval_e2e import measure_eval

            print("  stage=eval vs lm-eval ...", flush=True)
            results["eval"] = measure_eval(tmp, model_cache)
            _save(results)
    return results


def _save(results: dict[str, Any]) -> None:
    (HERE / "preprocess_results.json").write_text(json.dumps(results, indent=2) + "\n")


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| training rows | plain TRL: first step | peak RSS | medalign first run: first step "
        "| × plain | peak RSS | medalign cached: first step | × plain | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.get("sizes", []):
        p, f, c = r["plain_trl"], r["medalign_first"], r["medalign_cached"]
        lines.append(
            f"| {r['rows']:,} | {p['first_step_s']} s | {p['peak_rss_mb'] / 1e3:.2f} GB "
            f"| {f['first_step_s']} s | {f['vs_plain']} | {f['peak_rss_mb'] / 1e3:.2f} GB "
            f"| {c['first_step_s']} s | {c['vs_plain']} | {c['peak_rss_mb'] / 1e3:.2f} GB |"
        )
    if "import_floor_s" in results:
        floor = results["import_floor_s"]
        ratios = ", ".join(
            f"{r['rows']:,} rows {floor / r['plain_trl']['first_step_s']:.3f}"
            for r in results.get("sizes", [])
            if r["plain_trl"].get("first_step_s")
        )
        lines += [
            "",
            f"Import floor (torch, transformers, datasets, peft, trl; both sides pay it before "
            f"reading a row): {floor} s, as a fraction of the plain script's time: {ratios}.",
        ]
    if "bytes_per_row" in results:
        lines += ["", f"Peak-memory growth, bytes per training row: {results['bytes_per_row']}"]
    if "sweep" in results:
        s = results["sweep"]
        lines += [
            "",
            f"Sweep of {s['jobs']} jobs on {s['rows']:,} rows: preprocessing "
            f"{s['cache']['preprocess_s_total']} s in all with the cache "
            f"({s['cache']['preprocess_s_per_job']}), {s['no_cache']['preprocess_s_total']} s "
            f"without; sweep wall {s['cache']['wall_s']} s vs {s['no_cache']['wall_s']} s.",
        ]
    if "eval" in results:
        from bench_eval_e2e import markdown as eval_markdown

        lines += ["", eval_markdown(results["eval"])]
    return "\n".join(lines)


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or SIZES
    print(markdown(main(sizes)))
