"""`stage=eval` end to end vs lm-evaluation-harness end to end, at the full evaluation-set
sizes (MedQA-4 test 1,273, MedMCQA dev 4,183, PubMedQA test 500), on the same rows and
the same (tiny) model; each a fresh process, timed from launch to exit.

    python bench/bench_eval_e2e.py          # prints the table; bench_preprocess.py calls it

The rows are synthetic in the real file formats (bench/synthetic.py: real rows of
../shared/data, repeated with their question words shuffled). lm-eval reads them through
its own task YAMLs (bench_lmeval.py's `_task_yaml`: only the data source changes) with
`lm-eval run --model hf ... --log_samples`; medalign through its loaders with
`stage=eval`. Predictions are compared question by question (argmax of lm-eval's
log-likelihoods vs medalign's predicted letter / decision).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import synthetic  # noqa: E402

SIZES = {"medqa": 1273, "medmcqa": 4183, "pubmedqa": 500}
LM_EVAL_TASK = {"medqa": "medqa_4options", "medmcqa": "medmcqa", "pubmedqa": "pubmedqa"}
CHOICES = {"medqa": "ABCD", "medmcqa": "ABCD", "pubmedqa": ["yes", "no", "maybe"]}


def _files(folder: Path, scale: float = 1.0) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    n = {k: max(1, int(v * scale)) for k, v in SIZES.items()}
    medqa = synthetic.write_jsonl(folder / "medqa.jsonl", synthetic.medqa_rows(n["medqa"]))
    rows = synthetic.medmcqa_rows(n["medmcqa"], seed=7, prefix="dev")
    medmcqa = synthetic.write_jsonl(folder / "medmcqa.json", rows)
    pubmedqa = folder / "pubmedqa.json"
    pubmedqa.write_text(json.dumps(synthetic.pubmedqa_rows(n["pubmedqa"])))
    return {"medqa": medqa, "medmcqa": medmcqa, "pubmedqa": pubmedqa}


def _timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    started = time.perf_counter()
    with log.open("w") as out:
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=HERE.parent)
    return rc, round(time.perf_counter() - started, 2)


def _medalign(files: dict[str, Path], run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "medalign",
        "stage=eval",
        "logger=none",
        "eval.datasets=[medqa,medmcqa,pubmedqa]",
        *(f"datasets.{name}.path={path}" for name, path in files.items()),
        "datasets.medqa.options=4",
        "eval.splits={pubmedqa:all}",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def _lm_eval_tasks(files: dict[str, Path], folder: Path) -> Path:
    import lm_eval.tasks
    from bench_lmeval import DATASETS

    from medalign.eval.harness import local_task_yaml

    installed = Path(lm_eval.tasks.__file__).parent
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        task = LM_EVAL_TASK[name]
        task_folder, yaml_name, module, _, reader, _, _ = DATASETS[task]
        docs = folder / f"{task}.jsonl"
        docs.write_text("".join(json.dumps(d) + "\n" for d, _ in reader(path, 10**9)))
        task_dir = folder / "tasks" / task
        task_dir.mkdir(parents=True, exist_ok=True)
        if module:
            shutil.copy(installed / task_folder / module, task_dir / module)
        (task_dir / f"{task}.yaml").write_text(
            local_task_yaml(installed / task_folder / yaml_name, f"medalign_{task}", docs)
        )
    return folder / "tasks"


def _lm_eval_scores(out: Path) -> dict[str, list[list[float]]]:
    """Per dataset, per question (doc order): lm-eval's log-likelihood of each choice."""
    scores = {}
    for name, task in LM_EVAL_TASK.items():
        files = sorted(out.rglob(f"samples_medalign_{task}_*.jsonl"))
        if files:
            samples = [json.loads(line) for line in files[-1].read_text().splitlines() if line]
            samples.sort(key=lambda s: s["doc_id"])
            scores[name] = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    return scores


def _medalign_scores(run_dir: Path) -> dict[str, list[list[float]]]:
    """Per dataset, per question (file order): medalign's log-likelihood of each choice."""
    scores: dict[str, list[list[float]]] = {}
    path = run_dir / "eval" / "predictions.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            name = row["dataset"]
            scores.setdefault(name, []).append([row["loglik"][c] for c in CHOICES[name]])
    return scores


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def compare(ours: dict[str, list[list[float]]], theirs: dict[str, list[list[float]]]) -> dict:
    """Same argmax per question, and the largest log-likelihood difference, per dataset."""
    out = {}
    for name, rows in theirs.items():
        mine = ours.get(name, [])
        same = sum(_argmax(a) == _argmax(b) for a, b in zip(mine, rows, strict=False))
        pairs = zip(mine, rows, strict=False)
        diffs = [abs(x - y) for a, b in pairs for x, y in zip(a, b, strict=True)]
        out[name] = {
            "same_predictions": f"{same}/{len(rows)}",
            "max_loglik_diff": max(diffs) if diffs else None,
        }
    return out


def measure_eval(tmp: Path, model_cache: Path, scale: float = 1.0) -> dict[str, Any]:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return {"status": "not measured: lm-eval not installed (pip install -e '.[bench]')"}
    from medalign.config import ModelConfig
    from medalign.models.load import model_source

    env = {
        **os.environ,
        "MEDALIGN_CACHE": str(model_cache),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        "TQDM_DISABLE": "1",
        "WANDB_MODE": "disabled",
        "PYTHONPATH": str(HERE.parent),
    }
    os.environ["MEDALIGN_CACHE"] = str(model_cache)
    model_dir = model_source(ModelConfig())
    folder = tmp / "eval_e2e"
    files = _files(folder / "data", scale)
    result: dict[str, Any] = {"questions": {k: len(_rows(k, p)) for k, p in files.items()}}
    for label, extra in (("medalign", []), ("medalign_no_plots", ["eval.plots=false"])):
        run_dir = folder / label
        rc, wall = _timed(_medalign(files, run_dir, *extra), env, folder / f"{label}.log")
        result[label] = {"rc": rc, "wall_s": wall}
    tasks = _lm_eval_tasks(files, folder / "lm_eval")
    out = folder / "lm_eval_out"
    cmd = [
        sys.executable, "-m", "lm_eval", "run", "--model", "hf",
        "--model_args", f"pretrained={model_dir},dtype=float32",
        "--tasks", ",".join(f"medalign_{t}" for t in LM_EVAL_TASK.values()),
        "--include_path", str(tasks), "--batch_size", "16", "--device", "cpu",
        "--log_samples", "--output_path", str(out),
    ]  # fmt: skip
    rc, wall = _timed(cmd, env, folder / "lm_eval.log")
    result["lm_eval"] = {"rc": rc, "wall_s": wall}
    result["agreement"] = compare(_medalign_scores(folder / "medalign"), _lm_eval_scores(out))
    if result["lm_eval"]["wall_s"]:
        for label in ("medalign", "medalign_no_plots"):
            result[label]["vs_lm_eval"] = round(result[label]["wall_s"] / wall, 3)
    return result


def _rows(name: str, path: Path) -> list:
    if name == "pubmedqa":
        return list(json.loads(path.read_text()))
    return [line for line in path.read_text().splitlines() if line.strip()]


def markdown(result: dict[str, Any]) -> str:
    if "status" in result:
        return result["status"]
    m, q, lm = result["medalign"], result["medalign_no_plots"], result["lm_eval"]
    agree = ", ".join(
        f"{k} {v['same_predictions']} (max diff {v['max_loglik_diff']:.1e})"
        for k, v in result["agreement"].items()
        if v["max_loglik_diff"] is not None
    )
    return "\n".join(
        [
            "| stage=eval, end to end | questions | medalign | medalign eval.plots=false "
            "| lm-eval | × lm-eval | same predictions (max log-likelihood difference) |",
            "|---|---|---:|---:|---:|---:|---|",
            f"| MedQA-4 + MedMCQA + PubMedQA | {result['questions']} | {m['wall_s']} s "
            f"| {q['wall_s']} s | {lm['wall_s']} s | {m.get('vs_lm_eval')} "
            f"({q.get('vs_lm_eval')} no plots) | {agree} |",
        ]
    )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as name:
        cache = Path(os.environ.get("MEDALIGN_CACHE", Path(name) / "models"))
        scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
        res = measure_eval(Path(name), cache, scale)
        (HERE / "eval_e2e_results.json").write_text(json.dumps(res, indent=2) + "\n")
        print(markdown(res))
